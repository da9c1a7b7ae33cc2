"""The engine's steps as processes (`python -m distroless.steps …`) against the CLI's verbs: one
implementation each, so the same inputs give the same bytes whichever front door runs them."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from imagerepo import image_yaml, make_repo

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}


def run(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)
    if check:
        assert r.returncode == 0, r.stderr
    return r


@pytest.fixture(scope="module")
def locked(tmp_path_factory, peers) -> Path:
    """A signed repository on disk, a config over it and the CLI's lock."""
    root = tmp_path_factory.mktemp("steps")
    repo, pub = make_repo(root, peers.busybox)
    (root / "image.yaml").write_text(image_yaml(str(repo), pub, ["busybox"]))
    run("distroless", "image", "lock", "image.yaml", "--cache-dir", "cache", cwd=root)
    return root


def test_steps_never_reach_the_cli() -> None:
    for module in ("steps.py", "packagesteps.py"):
        text = (ROOT / "distroless" / module).read_text()
        assert "distroless.cli" not in text and "from distroless import cli" not in text, module


def test_resolve_step_writes_the_cli_lock(locked) -> None:
    run("distroless.steps", "resolve", "--config", "image.yaml", "--cache-dir", "cache", "--out", "step.lock.json",
        cwd=locked)
    assert (locked / "step.lock.json").read_bytes() == (locked / "image.lock.json").read_bytes()


def test_pack_and_apk_index_steps_equal_the_cli(tmp_path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "hello.txt").write_text("hello\n")
    key = ROOT / "examples" / "bazel" / "demo.rsa"
    # several dependencies, one per occurrence as the Bazel rule passes them (each must be kept)
    flags = ["--name", "hello", "--version", "1.0-r0", "--license", "MIT", "--depends", "busybox",
             "--depends", "musl>=1.2", "--provides", "cmd:hello=1.0-r0", "--signing-key", str(key)]
    run("distroless", "package", "create", "src", *flags, "-o", "cli.apk", cwd=tmp_path)
    run("distroless.steps", "--source-date-epoch=1700000000", "pack", "--file", f"hello.txt={tmp_path / 'src/hello.txt'}",
        "--", *flags, "-o", "step.apk", cwd=tmp_path)
    assert (tmp_path / "step.apk").read_bytes() == (tmp_path / "cli.apk").read_bytes()
    from distroless.apk import package

    assert package.read(tmp_path / "step.apk").package.depends == ["busybox", "musl>=1.2"]
    run("distroless", "package", "index", "cli.apk", "-o", "cli-index.tar.gz", "--signing-key", str(key), cwd=tmp_path)
    run("distroless.steps", "apk-index", "--apk", "step.apk", "-o", "step-index.tar.gz", "--signing-key", str(key),
        cwd=tmp_path)
    assert (tmp_path / "step-index.tar.gz").read_bytes() == (tmp_path / "cli-index.tar.gz").read_bytes()


def _apks(root: Path) -> list[str]:
    import json

    lock = json.loads((root / "image.lock.json").read_text())
    return [str(root / p["url"]) for p in lock["contents"]["packages"]]


def test_metadata_step_from_apks_equals_from_expansions(locked, tmp_path) -> None:
    common = ["--source-date-epoch=1700000000", "metadata", "--config", "image.yaml", "--lock", "image.lock.json",
              "--arch", "amd64", "--config-arch", "amd64"]
    run("distroless.steps", *common, "--apk", *_apks(locked), "--out", str(tmp_path / "a"), cwd=locked)
    expanded = []
    for i, apk in enumerate(_apks(locked)):
        run("distroless.steps", "expand", "--apk", apk, "--out", str(tmp_path / f"x{i}"), cwd=locked)
        expanded.append(str(tmp_path / f"x{i}"))
    run("distroless.steps", *common, "--expanded", *expanded, "--out", str(tmp_path / "b"), cwd=locked)
    for name in ("metadata.tar", "image.json", "sbom.spdx.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    with tarfile.open(tmp_path / "a" / "metadata.tar") as tf:
        names = {m.name: m for m in tf}
    assert names["dev/null"].ischr() and (names["dev/null"].devmajor, names["dev/null"].devminor) == (1, 3)
    assert "lib/apk/db/installed" in names or "usr/lib/apk/db/installed" in names
    assert "bin/busybox" not in names  # a package's own file, unchanged: its layer has it


def test_metadata_step_refuses_a_stale_lock_and_a_wrong_package(locked, tmp_path) -> None:
    changed = tmp_path / "image.yaml"
    changed.write_text((locked / "image.yaml").read_text() + "annotations:\n  a: b\n")
    r = run("distroless.steps", "metadata", "--config", str(changed), "--config-name", "image.yaml", "--lock",
            str(locked / "image.lock.json"), "--lock-name", "image.lock.json", "--arch", "amd64", "--apk",
            *_apks(locked), "--out", str(tmp_path / "out"), cwd=locked, check=False)
    assert r.returncode == 1
    assert "image.lock.json: the configuration changed since it was locked" in r.stderr
    assert "re-lock with `distroless image lock image.yaml`" in r.stderr
    r = run("distroless.steps", "metadata", "--config", "image.yaml", "--lock", "image.lock.json", "--arch", "amd64",
            "--apk", *reversed(_apks(locked)), "--out", str(tmp_path / "out"), cwd=locked, check=False)
    assert r.returncode == 1 and "checksum" in r.stderr.lower(), r.stderr


def test_metadata_step_refuses_too_few_packages_before_reading_any(locked, tmp_path) -> None:
    apks = _apks(locked)
    r = run("distroless.steps", "metadata", "--config", "image.yaml", "--lock", "image.lock.json", "--arch", "amd64",
            "--apk", *apks[:-1], "--work", str(tmp_path), "--out", str(tmp_path / "out"), cwd=locked, check=False)
    assert r.returncode == 1
    assert f"{len(apks) - 1} packages given, the lock has {len(apks)}" in r.stderr, r.stderr
    assert not any(tmp_path.glob("metadata-*")), "no scratch directory for a refused step"
