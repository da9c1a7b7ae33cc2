"""melange's flags and verbs: --build-date, --package-append, --timeout, --cleanup/--rm, --runner qemu,
--pipeline-dirs, lint (in `package lint` and during builds), sign/sign-index; in real bubblewrap."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from distroless.apk import index as apkindex
from distroless.apk import keys, pack, package
from distroless.apk.model import Package
from distroless.errors import DistrolessError
from distroless.melange.build import BuildOptions, build
from distroless.melange.runner import BuildTimeout, RunnerError
from test_melange_build import SDE, demo_repo, options, signing_key, write_recipe  # noqa: F401 - fixtures


def cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "distroless", *args], cwd=cwd, capture_output=True, text=True,
                          env=e, timeout=600)


SIMPLE = """\
    package: {name: simple, version: 1.0.0, epoch: 0, copyright: [{license: MIT}]}
    pipeline:
      - runs: |
          mkdir -p ${{targets.destdir}}/usr/share/simple
          echo hi > ${{targets.destdir}}/usr/share/simple/hi
    """


# --- build flags ----------------------------------------------------------------------------

def test_build_date_and_source_date_epoch(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, SIMPLE)
    r = cli("package", "build", str(recipe), "--host-toolchain", "--out-dir", "out",
            "--build-date", "2024-01-02T03:04:05Z", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    apk = tmp_path / "out" / "x86_64" / "simple-1.0.0-r0.apk"
    assert package.read(apk).package.build_time == 1704164645
    with tarfile.open(apk) as t:
        assert t.getmember("usr/share/simple/hi").mtime == 1704164645
    r = cli("package", "build", str(recipe), "--host-toolchain", "--out-dir", "out2",
            "--build-date", "2024-01-02T03:04:05Z", cwd=tmp_path, env={"SOURCE_DATE_EPOCH": "1600000000"})
    assert r.returncode == 0, r.stderr
    assert package.read(tmp_path / "out2" / "x86_64" / "simple-1.0.0-r0.apk").package.build_time == 1600000000
    r = cli("package", "build", str(recipe), "--host-toolchain", "--build-date", "yesterday", cwd=tmp_path)
    assert r.returncode == 1 and "--build-date" in r.stderr and "Traceback" not in r.stderr


def test_package_append_joins_the_environment(demo_repo: Path, signing_key: Path, tmp_path: Path) -> None:  # noqa: F811
    recipe = write_recipe(tmp_path, f"""\
        package: {{name: probe, version: 1.0.0, epoch: 0}}
        environment:
          contents:
            repositories: [{demo_repo}]
            keyring: [{signing_key}.pub]
            packages: [demo-baselayout]
        pipeline:
          - runs: |
              test -f /etc/ssl/certs/ca-certificates.crt
              mkdir -p ${{{{targets.destdir}}}}/x && touch ${{{{targets.destdir}}}}/x/ok
        """)
    with pytest.raises(DistrolessError, match="test -f /etc/ssl/certs"):
        build(recipe, options(tmp_path / "a"))
    build(recipe, options(tmp_path / "b", package_append=("ca-certificates-bundle",)))
    assert (tmp_path / "b" / "x86_64" / "probe-1.0.0-r0.apk").exists()


SLEEPY = """\
    package: {name: sleepy, version: 1.0.0, epoch: 0%s}
    pipeline:
      - runs: |
          echo started
          sleep 60
    """


@pytest.mark.parametrize("where", ["flag", "recipe"])
def test_timeout_kills_the_build(tmp_path: Path, where: str) -> None:
    recipe = write_recipe(tmp_path, SLEEPY % (", timeout: 2s" if where == "recipe" else ""))
    start = time.monotonic()
    with pytest.raises(BuildTimeout, match="timed out") as exc:
        build(recipe, options(tmp_path / "out", timeout="2s" if where == "flag" else ""))
    assert time.monotonic() - start < 40
    assert "started" in str(exc.value)
    assert not (tmp_path / "out" / "x86_64" / "sleepy-1.0.0-r0.apk").exists()


def test_qemu_runner_is_refused_before_any_work(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, SIMPLE)
    r = cli("package", "build", str(recipe), "--runner", "qemu", "--out-dir", "out", cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "--runner qemu: not supported" in r.stderr and "bubblewrap" in r.stderr
    assert not (tmp_path / "out").exists()


def test_cleanup_false_keeps_the_build_directory(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, SIMPLE)
    r = cli("package", "build", str(recipe), "--host-toolchain", "--out-dir", "out", "--cleanup=false", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    line = next(ln for ln in r.stderr.splitlines() if "keeping the build directory" in ln)
    kept = Path(line.rsplit(" ", 1)[1])
    try:
        assert (kept / "workspace" / "melange-out" / "simple" / "usr/share/simple/hi").is_file()
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(kept)], check=False)
        shutil.rmtree(kept, ignore_errors=True)


def test_pipeline_dirs_take_a_list(tmp_path: Path) -> None:
    for d in ("p1", "p2"):
        (tmp_path / d).mkdir()
    (tmp_path / "p2" / "mine.yaml").write_text(
        "pipeline:\n  - runs: |\n      mkdir -p ${{targets.contextdir}}/m && echo from-p2 > ${{targets.contextdir}}/m/f\n")
    recipe = write_recipe(tmp_path, """\
        package: {name: usesmine, version: 1.0.0, epoch: 0, copyright: [{license: MIT}]}
        pipeline:
          - uses: mine
        """)
    r = cli("package", "build", str(recipe), "--host-toolchain", "--out-dir", "out", "--pipeline-dirs", "p1,p2",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    with tarfile.open(tmp_path / "out" / "x86_64" / "usesmine-1.0.0-r0.apk") as t:
        assert t.extractfile("m/f").read() == b"from-p2\n"


# --- lint -----------------------------------------------------------------------------------

def make_apk(tmp: Path, name: str, files: dict[str, tuple[bytes, int]], license: str = "MIT") -> Path:
    tree = tmp / f"tree-{name}"
    for rel, (data, mode) in files.items():
        p = tree / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        os.chmod(p, mode)
    tree.mkdir(exist_ok=True)
    out = tmp / f"{name}-1.0-r0.apk"
    pack.pack(tree, Package(name=name, version="1.0-r0", arch="x86_64", license=license), out)
    return out


@pytest.fixture(scope="module")
def unstripped(tmp_path_factory) -> bytes:
    d = tmp_path_factory.mktemp("cc")
    (d / "m.c").write_text("int main(void) { return 0; }\n")
    subprocess.run(["gcc", "-g", "-o", str(d / "m"), str(d / "m.c")], check=True)
    return (d / "m").read_bytes()


def test_lint_findings_and_exit_codes(tmp_path: Path, unstripped: bytes) -> None:
    bad = make_apk(tmp_path, "bad", {
        "usr/bin/suid": (b"#!/bin/sh\n", 0o4755),
        "usr/share/ww": (b"x", 0o666),
        "usr/local/bin/tool": (b"x", 0o755),
        "usr/lib/libx.a": (b"!<arch>\n", 0o644),
        "usr/bin/unstripped": (unstripped, 0o755),
    }, license="")
    r = cli("package", "lint", str(bad), cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    out = r.stdout
    assert "error: [setuidgid]" in out and "usr/bin/suid" in out
    assert "error: [worldwrite]" in out and "usr/share/ww" in out
    for warn in ("usrlocal", "staticarchive", "license", "strip"):
        assert f"warning: [{warn}]" in out, warn
    assert "usr/bin/unstripped" in out
    # -dev packages may ship static archives; stripped binaries pass
    stripped = tmp_path / "stripped"
    stripped.write_bytes(unstripped)
    subprocess.run(["strip", "-g", str(stripped)], check=True)
    good = make_apk(tmp_path, "good-dev", {"usr/lib/libx.a": (b"!<arch>\n", 0o644),
                                           "usr/bin/m": (stripped.read_bytes(), 0o755)})
    r = cli("package", "lint", str(good), cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip().endswith("OK"), r.stdout
    # empty is off by default and fails when required; warnings can be made errors
    empty = make_apk(tmp_path, "nothing", {})
    assert cli("package", "lint", str(empty), cwd=tmp_path).returncode == 0
    r = cli("package", "lint", str(empty), "--lint-require", "empty", cwd=tmp_path)
    assert r.returncode == 1 and "[empty] package is empty" in r.stdout
    r = cli("package", "lint", str(bad), "--lint-require", "license", "--lint-warn", "", cwd=tmp_path)
    assert r.returncode == 1 and "error: [license]" in r.stdout and "setuidgid" not in r.stdout
    r = cli("package", "lint", str(bad), "--lint-require", "nosuch", cwd=tmp_path)
    assert r.returncode == 1 and "unknown linter 'nosuch'" in r.stderr
    r = cli("package", "lint", str(good), "--lint-warn", "duplicate", cwd=tmp_path)
    assert r.returncode == 0 and "skipped: duplicate" in r.stderr


def test_build_runs_required_linters(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, """\
        package: {name: tmpfiles, version: 1.0.0, epoch: 0, copyright: [{license: MIT}]}
        pipeline:
          - runs: mkdir -p ${{targets.destdir}}/tmp && echo x > ${{targets.destdir}}/tmp/leftover
        """)
    with pytest.raises(DistrolessError, match=r"tmpfiles: \[tempdir\]"):
        build(recipe, options(tmp_path / "out"))
    assert not (tmp_path / "out" / "x86_64" / "tmpfiles-1.0.0-r0.apk").exists()
    build(recipe, options(tmp_path / "out", lint_require=(), lint_warn=("tempdir",)))
    assert (tmp_path / "out" / "x86_64" / "tmpfiles-1.0.0-r0.apk").exists()


# --- sign, sign-index -------------------------------------------------------------------------

def test_sign_and_sign_index_melange_style(tmp_path: Path) -> None:
    apk = make_apk(tmp_path, "s", {"usr/share/s": (b"s", 0o644)})
    keys.write_keypair(tmp_path / "local-melange.rsa", keys.generate(2048))
    keys.write_keypair(tmp_path / "melange.rsa", keys.generate(2048))
    keys.write_keypair(tmp_path / "other.rsa", keys.generate(2048))
    # melange's default key for `sign` is local-melange.rsa
    r = cli("package", "sign", apk.name, cwd=tmp_path)
    assert r.returncode == 0 and "local-melange.rsa.pub" in r.stdout, r.stderr
    r = cli("package", "sign", "-k", "other.rsa", apk.name, cwd=tmp_path)
    assert r.returncode == 0 and "other.rsa.pub" in r.stdout, r.stderr
    assert package.verify_file(apk, keys.Keyring.load([tmp_path / "other.rsa.pub"])).verified_by
    (tmp_path / "APKINDEX.tar.gz").write_bytes(apkindex.build([package.read(apk).package]))
    r = cli("package", "sign-index", "APKINDEX.tar.gz", cwd=tmp_path)  # default key melange.rsa
    assert r.returncode == 0 and "melange.rsa.pub" in r.stdout, r.stderr
    r = cli("package", "sign-index", "--signing-key", "other.rsa", "APKINDEX.tar.gz", cwd=tmp_path)
    assert r.returncode == 0 and "already signed" in r.stdout
    assert apkindex.read_file(tmp_path / "APKINDEX.tar.gz", keys.Keyring.load([tmp_path / "melange.rsa.pub"]))
    r = cli("package", "sign-index", "--signing-key", "other.rsa", "-f", "APKINDEX.tar.gz", cwd=tmp_path)
    assert r.returncode == 0 and "other.rsa.pub" in r.stdout
    ix = apkindex.read_file(tmp_path / "APKINDEX.tar.gz", keys.Keyring.load([tmp_path / "other.rsa.pub"]))
    assert ix.verified_by == ["other.rsa.pub"]
    with pytest.raises(DistrolessError):
        apkindex.read_file(tmp_path / "APKINDEX.tar.gz", keys.Keyring.load([tmp_path / "melange.rsa.pub"]))


def test_docker_runner_rm_false_keeps_image_flag_parses() -> None:
    from distroless.cli import build_parser
    ns = build_parser().parse_args(["package", "build", "r.yaml", "--rm=false", "--cleanup"])
    assert ns.rm is False and ns.cleanup is True
    assert BuildOptions(cleanup=False).cleanup is False
    with pytest.raises(RunnerError, match="qemu"):
        from distroless.melange.runner import check_runner
        check_runner("qemu")


def test_build_log_and_persisted_lint_results(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, """\
        package: {name: logged, version: 1.2.3, epoch: 4}
        pipeline:
          - runs: mkdir -p ${{targets.destdir}}/usr/local/bin && echo x > ${{targets.destdir}}/usr/local/bin/t
        subpackages:
          - name: logged-extra
            pipeline:
              - runs: mkdir -p ${{targets.contextdir}}/usr/share/e && echo e > ${{targets.contextdir}}/usr/share/e/f
        """)
    for _ in range(2):  # appended, as melange does
        r = cli("package", "build", str(recipe), "--host-toolchain", "--out-dir", "out", "--create-build-log",
                "--persist-lint-results", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
    assert (tmp_path / "packages.log").read_text().splitlines() == [
        "x86_64|logged|logged|1.2.3-r4", "x86_64|logged|logged-extra|1.2.3-r4"] * 2
    doc = json.loads((tmp_path / "out" / "x86_64" / "lint-logged-1.2.3-r4.json").read_text())
    assert doc["package_name"] == "logged"
    assert doc["findings"]["usrlocal"][0]["details"]["paths"] == ["usr/local/bin/t"]
    assert "license" in doc["findings"]  # no copyright in the recipe
    r = cli("package", "lint", "out/x86_64/logged-extra-1.2.3-r4.apk", "--persist-lint-results", "--out-dir", "lr",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "lr" / "x86_64" / "lint-logged-extra-1.2.3-r4.json").read_text())
    assert set(doc["findings"]) == {"license"}


def test_test_package_append(demo_repo: Path, signing_key: Path, tmp_path: Path) -> None:  # noqa: F811
    recipe = write_recipe(tmp_path, f"""\
        package: {{name: tested, version: 1.0.0, epoch: 0, copyright: [{{license: MIT}}]}}
        pipeline:
          - runs: mkdir -p ${{{{targets.destdir}}}}/usr/share/t && echo t > ${{{{targets.destdir}}}}/usr/share/t/f
        test:
          environment:
            contents:
              repositories: [{demo_repo}]
              keyring: [{signing_key}.pub]
              packages: [demo-baselayout]
          pipeline:
            - runs: test -f /etc/ssl/certs/ca-certificates.crt
        """)
    out = tmp_path / "out"
    r = cli("package", "build", str(recipe), "--host-toolchain", "--out-dir", str(out), "--signing-key",
            str(signing_key), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = cli("package", "test", str(recipe), "--host-toolchain", "--out-dir", str(out), "-k", f"{signing_key}.pub",
            cwd=tmp_path)
    assert r.returncode == 1 and "ca-certificates.crt" in r.stderr
    r = cli("package", "test", str(recipe), "--host-toolchain", "--out-dir", str(out), "-k", f"{signing_key}.pub",
            "--test-package-append", "ca-certificates-bundle", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
