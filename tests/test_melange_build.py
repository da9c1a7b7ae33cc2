"""melange builds in a real bubblewrap sandbox: the demo recipes, reproducibility, SCA,
step failures, sandbox confinement (read-only root, no network) and located recipe errors."""

from __future__ import annotations

import hashlib
import io
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from distroless.apk import index as apkindex
from distroless.apk import keys, package
from distroless.errors import ConfigError
from distroless.melange.build import BuildOptions, build
from distroless.melange.runner import StepFailed
from distroless.melange.sca import analyze, merge_metadata, read_elf, shebang_interpreter
from distroless.melange.schema import PackageOptions
from distroless.melange.test import test_recipe as run_recipe_tests

ROOT = Path(__file__).resolve().parent.parent
RECIPES = ROOT / "examples" / "recipes"
DEMOS = ("demo-baselayout", "demo-hello", "ca-certificates-bundle")
SDE = 1700000000
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module", autouse=True)
def bwrap() -> str:
    found = shutil.which("bwrap")
    if found is None:
        pytest.fail("bubblewrap (bwrap) is not installed: the melange build tests need a real sandbox",
                    pytrace=False)
    return found


@pytest.fixture(scope="module")
def signing_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("keys")
    priv, _ = keys.write_keypair(d / "melange.rsa", keys.generate(2048))
    return priv


def options(out: Path, **kw) -> BuildOptions:
    kw.setdefault("host_toolchain", True)
    kw.setdefault("source_date_epoch", SDE)
    kw.setdefault("log", io.StringIO())
    kw.setdefault("apk_cache_dir", out.parent / "apk-cache")  # the CLI defaults it; the engine never guesses
    return BuildOptions(out_dir=out, **kw)


def build_demos(out: Path, key: Path) -> float:
    start = time.monotonic()
    for name in DEMOS:
        build(RECIPES / f"{name}.yaml", options(out, signing_key=key))
    return time.monotonic() - start


@pytest.fixture(scope="module")
def demo_repo(tmp_path_factory: pytest.TempPathFactory, signing_key: Path) -> Path:
    out = tmp_path_factory.mktemp("demo") / "packages"
    TIMINGS["demos"] = build_demos(out, signing_key)
    print(f"\nbuilt the three demo recipes in {TIMINGS['demos']:.2f}s")
    return out


def write_recipe(tmp: Path, text: str, name: str = "recipe.yaml") -> Path:
    path = tmp / name
    path.write_text(textwrap.dedent(text))
    return path


def pkginfo(path: Path):
    return package.read(path).package


# --- the demo recipes -------------------------------------------------------------------

def test_demo_recipes_build_signed_packages_and_index(demo_repo: Path, signing_key: Path) -> None:
    arch_dir = demo_repo / "x86_64"
    ring = keys.Keyring.load([str(signing_key) + ".pub"])
    names = set()
    for name in DEMOS:
        apk = package.verify_file(arch_dir / f"{name}-0.1.0-r0.apk", ring)
        assert apk.verified_by == ["melange.rsa.pub"]
        assert apk.package.build_time == SDE
        names.add(apk.package.name)
    ix = apkindex.read_file(arch_dir / "APKINDEX.tar.gz", ring)
    assert {p.name for p in ix.packages} == names == set(DEMOS)

    hello = pkginfo(arch_dir / "demo-hello-0.1.0-r0.apk")
    assert hello.provides == ["cmd:demo-hello=0.1.0-r0"]
    assert hello.depends == ["demo-baselayout"]  # static: no so: depends at all
    base = pkginfo(arch_dir / "demo-baselayout-0.1.0-r0.apk")
    assert base.provides == [] and base.depends == []


def test_demo_hello_is_static_and_runs(demo_repo: Path, tmp_path: Path) -> None:
    import tarfile
    with tarfile.open(demo_repo / "x86_64" / "demo-hello-0.1.0-r0.apk") as tar:
        member = tar.getmember("usr/bin/demo-hello")
        assert member.mode == 0o755 and member.uid == 0 and member.gid == 0
        assert member.mtime == SDE
        tar.extract(member, tmp_path)
    binary = tmp_path / "usr/bin/demo-hello"
    info = read_elf(binary)
    assert info is not None and info.interp == "" and info.needed == ()  # statically linked
    import subprocess
    out = subprocess.run([str(binary), "tests"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("Hello from tests!")


def test_demo_baselayout_contents(demo_repo: Path, tmp_path: Path) -> None:
    import tarfile
    with tarfile.open(demo_repo / "x86_64" / "demo-baselayout-0.1.0-r0.apk") as tar:
        passwd = tar.extractfile("etc/passwd").read().decode()
        group = tar.extractfile("etc/group").read().decode()
        osrel = tar.extractfile("etc/os-release").read().decode()
    assert "nonroot:x:65532:65532:" in passwd and passwd.startswith("root:x:0:0:")
    assert "nonroot:x:65532:" in group
    assert "ID=distroless-demo" in osrel


def test_rebuild_is_byte_identical(demo_repo: Path, signing_key: Path, tmp_path: Path) -> None:
    again = tmp_path / "packages"
    build_demos(again, signing_key)
    for name in [f"{n}-0.1.0-r0.apk" for n in DEMOS] + ["APKINDEX.tar.gz"]:
        a = (demo_repo / "x86_64" / name).read_bytes()
        b = (again / "x86_64" / name).read_bytes()
        assert hashlib.sha256(a).hexdigest() == hashlib.sha256(b).hexdigest(), name


def test_demo_recipe_tests_pass_against_the_repo(demo_repo: Path, signing_key: Path) -> None:
    for name in DEMOS:
        outcomes = run_recipe_tests(RECIPES / f"{name}.yaml",
                                    options(demo_repo, keyring_append=(str(signing_key) + ".pub",)))
        assert [o.package for o in outcomes] == [name]


def test_environment_from_a_repository(demo_repo: Path, signing_key: Path, tmp_path: Path) -> None:
    """The engine installs the environment's packages; --env-file values sit under the recipe's."""
    (tmp_path / "build.env").write_text("FROM_FILE=file\nOVERRIDDEN=file\n")
    recipe = write_recipe(tmp_path, f"""\
        package:
          name: env-probe
          version: 1.0.0
          epoch: 0
        environment:
          contents:
            repositories: [{demo_repo}]
            keyring: [{signing_key}.pub]
            packages: [demo-baselayout]
          environment:
            OVERRIDDEN: recipe
        pipeline:
          - runs: |
              grep -q '^nonroot:x:65532' /etc/passwd
              grep -q '^build:x:1000' /etc/passwd
              mkdir -p ${{{{targets.destdir}}}}/usr/share/probe
              echo "$FROM_FILE $OVERRIDDEN $SOURCE_DATE_EPOCH $HOME $(id -u)" \\
                > ${{{{targets.destdir}}}}/usr/share/probe/env
        """)
    out = tmp_path / "out"
    build(recipe, options(out, env_files=(tmp_path / "build.env",)))
    import tarfile
    with tarfile.open(out / "x86_64" / "env-probe-1.0.0-r0.apk") as tar:
        text = tar.extractfile("usr/share/probe/env").read().decode()
    assert text.split() == ["file", "recipe", str(SDE), "/home/build", "1000"]


# --- SCA ------------------------------------------------------------------------------------

SCA_RECIPE = """\
    package:
      name: greet
      version: "1.0"
      epoch: 0
      copyright:
        - license: MIT
    pipeline:
      - name: build
        runs: |
          cat > greet.c <<'EOF'
          #include <stdlib.h>
          const char *greeting(void) { const char *g = getenv("GREETING"); return g ? g : "hi"; }
          EOF
          cat > main.c <<'EOF'
          #include <stdio.h>
          const char *greeting(void);
          int main(void) { puts(greeting()); return 0; }
          EOF
          d=${{targets.destdir}}
          mkdir -p $d/usr/lib/pkgconfig $d/usr/bin $d/opt/vendor
          gcc -shared -fPIC -Wl,-soname,libgreet.so.1 -o $d/usr/lib/libgreet.so.1.0.0 greet.c
          ln -s libgreet.so.1.0.0 $d/usr/lib/libgreet.so.1
          ln -s libgreet.so.1 $d/usr/lib/libgreet.so
          gcc -o $d/usr/bin/greet main.c -L$d/usr/lib -lgreet
          gcc -shared -fPIC -Wl,-soname,libvendored.so.2 -o $d/opt/vendor/libvendored.so.2 greet.c
          printf '#!/usr/bin/env perl\\nprint "x";\\n' > $d/usr/bin/greet-perl
          printf '#!/bin/sh\\necho x\\n' > $d/usr/bin/greet-sh
          chmod 0755 $d/usr/bin/greet-perl $d/usr/bin/greet-sh
          printf 'prefix=/usr\\nlibdir=${prefix}/lib\\nName: greet\\nVersion: 1.0\\nRequires: zlib >= 1.2, libfoo\\nRequires.private: libbar\\nLibs: -L${libdir} -lgreet\\n' \\
            > $d/usr/lib/pkgconfig/greet.pc
    subpackages:
      - name: greet-libs
        pipeline:
          - runs: |
              mkdir -p ${{targets.contextdir}}/usr/lib
              mv ${{targets.destdir}}/usr/lib/libgreet.so.* ${{targets.contextdir}}/usr/lib/
      - name: greet-doc
        options:
          no-provides: true
        pipeline:
          - runs: mkdir -p ${{targets.contextdir}}/usr/share/doc/greet
    """


@pytest.fixture(scope="module")
def sca_build(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("sca")
    recipe = write_recipe(tmp, SCA_RECIPE)
    out = tmp / "out"
    (result,) = build(recipe, options(out, workspace_dir=tmp / "ws"))
    return {p.name: p.package for p in result.packages}, tmp / "ws" / "x86_64" / "workspace" / "melange-out"


def test_sca_shared_library_split(sca_build) -> None:
    pkgs, _ = sca_build
    main, libs = pkgs["greet"], pkgs["greet-libs"]
    # the program needs the library (now in greet-libs), libc and its interpreter
    assert "so:libgreet.so.1" in main.depends
    assert "so:libc.so.6" in main.depends
    assert "so:ld-linux-x86-64.so.2" in main.depends
    assert "cmd:perl" in main.depends  # shebang through env
    assert not any(d.startswith("cmd:sh") for d in main.depends)  # sh is ignored
    assert {"pc:zlib", "pc:libfoo", "pc:libbar"} <= set(main.depends)
    assert "so:libvendored.so.2" not in " ".join(main.depends + main.provides)  # vendored
    assert {"cmd:greet=1.0-r0", "cmd:greet-perl=1.0-r0", "cmd:greet-sh=1.0-r0", "pc:greet=1.0-r0"} <= set(main.provides)
    assert not any(p.startswith("so:") for p in main.provides)
    # the libdev symlink libgreet.so -> libgreet.so.1 (in greet-libs) adds a depend on its SONAME
    assert libs.provides == ["so-ver:libgreet.so.1=1.0-r0", "so:libgreet.so.1=1"]
    assert "so:libc.so.6" in libs.depends
    assert pkgs["greet-doc"].provides == []
    assert main.depends == sorted(set(main.depends))


def test_sca_self_provided_and_options(sca_build, tmp_path: Path) -> None:
    _, outs = sca_build
    merged = tmp_path / "all"
    shutil.copytree(outs / "greet", merged, symlinks=True)
    shutil.copytree(outs / "greet-libs", merged, symlinks=True, dirs_exist_ok=True)
    result = analyze(merged, "1.0-r0")
    assert "so:libgreet.so.1=1" in result.provides
    assert "so:libvendored.so.2=2" in result.vendored
    depends, provides = merge_metadata(["so:libgreet.so.1", "extra"], [], result)
    assert "so:libgreet.so.1" not in depends  # provided by the package itself
    assert "extra" in depends and "so:libc.so.6" in depends
    no_cmd = analyze(merged, "1.0-r0", options=PackageOptions(no_commands=True))
    assert not any(x.startswith("cmd:") for x in no_cmd.depends + no_cmd.provides)
    no_dep = analyze(merged, "1.0-r0", options=PackageOptions(no_depends=True))
    assert no_dep.depends == () and no_dep.provides
    assert analyze(merged, "1.0-r0", options=PackageOptions(no_provides=True)).provides == ()


def test_sca_walks_a_tree_deeper_than_the_recursion_limit(tmp_path: Path) -> None:
    """The package tree walk is iterative (os.walk recurses before Python 3.12). Shown with a
    lowered recursion limit and a tree deeper than it (a tree deeper than the default would
    break every pytest's own clean-up of the shared temporary directory)."""
    deep = tmp_path / "/".join(["d"] * 300)
    deep.mkdir(parents=True)
    (tmp_path / "usr/lib/python3.11/site-packages/pkg").mkdir(parents=True)
    (tmp_path / "usr/bin").mkdir()
    (tmp_path / "usr/bin/run").write_text("#!/bin/bash\n")
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(250)
    try:
        result = analyze(tmp_path, "1.0-r0")
    finally:
        sys.setrecursionlimit(limit)
    assert "cmd:bash" in result.depends and "python-3.11-base" in result.depends


def test_shebang_parsing() -> None:
    assert shebang_interpreter(b"#!/usr/bin/env -S perl -w\n") == "perl"
    assert shebang_interpreter(b"#!/usr/bin/python3.11\n") == "python3.11"
    assert shebang_interpreter(b"#! /bin/bash -e\n") == "bash"
    assert shebang_interpreter(b"\x7fELF") == ""


# --- failures ---------------------------------------------------------------------------------

def test_failing_step_names_chain_command_and_output(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, """\
        package:
          name: fails
          version: 1.0.0
          epoch: 0
        pipeline:
          - name: prepare
            runs: echo fine
          - name: outer
            pipeline:
              - name: inner
                runs: |
                  echo some-output-marker
                  echo to-stderr >&2
                  exit 3
        """)
    with pytest.raises(StepFailed) as exc:
        build(recipe, options(tmp_path / "out"))
    msg = str(exc.value)
    assert "pipeline outer > inner" in msg
    assert "recipe.yaml:" in msg  # where the step is written
    assert "exit status 3" in msg
    assert "exit 3" in msg  # the command
    assert "some-output-marker" in msg and "to-stderr" in msg
    assert not (tmp_path / "out" / "x86_64" / "fails-1.0.0-r0.apk").exists()


def test_cli_build_reports_failure_and_merges_index(tmp_path: Path) -> None:
    """The real entry point (`python -m distroless package build`) in a subprocess: success
    merges the index, a failing step is exit 1 with `distroless: error:` and no traceback."""

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "distroless", "package", "build", *argv],
                              capture_output=True, text=True, timeout=300, cwd=tmp_path)

    out = tmp_path / "out"
    for name in ("demo-baselayout", "ca-certificates-bundle"):
        proc = run(str(RECIPES / f"{name}.yaml"), "--host-toolchain", "--out-dir", str(out))
        assert proc.returncode == 0, proc.stderr
    ix = apkindex.read_file(out / "x86_64" / "APKINDEX.tar.gz", verify=False)
    assert sorted(p.name for p in ix.packages) == ["ca-certificates-bundle", "demo-baselayout"]
    bad = write_recipe(tmp_path, """\
        package: {name: bad, version: 1.0.0, epoch: 0}
        pipeline:
          - name: boom
            runs: echo cli-marker; false
        """)
    proc = run(str(bad), "--host-toolchain", "--out-dir", str(out))
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("distroless: error: ")]
    assert len(errors) == 1 and "pipeline boom" in errors[0] and "recipe.yaml:3:" in errors[0], proc.stderr
    assert "cli-marker" in proc.stderr  # the step's output is shown


def test_writes_outside_the_workspace_fail(tmp_path: Path) -> None:
    marker = f"escape-{tmp_path.name}"
    for target in (f"/etc/{marker}", f"/usr/{marker}", f"/{marker}"):
        recipe = write_recipe(tmp_path, f"""\
            package: {{name: escape, version: 1.0.0, epoch: 0}}
            pipeline:
              - name: inside
                runs: echo ok > inside-the-workspace
              - name: escape
                runs: echo x > {target}
            """)
        with pytest.raises(StepFailed) as exc:
            build(recipe, options(tmp_path / "out"))
        assert "pipeline escape" in str(exc.value)
        assert "Read-only file system" in exc.value.tail
        assert not Path(target).exists()


def test_steps_cannot_read_the_builders_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """bubblewrap's init is the sandbox's pid 1: its /proc/1/environ was the front door's whole
    environment (HTTP_AUTH's password, COSIGN_PASSWORD); it now holds PATH only."""
    secret = f"s3cret-{tmp_path.name}"
    monkeypatch.setenv("HTTP_AUTH", f"basic:realm:user:{secret}")
    recipe = write_recipe(tmp_path, """\
        package: {name: environ, version: 1.0.0, epoch: 0}
        pipeline:
          - runs: |
              d=${{targets.destdir}}/usr/share/probe
              mkdir -p $d
              for p in /proc/[0-9]*; do echo "$p: $(tr '\\0' ' ' < $p/environ 2>&1)"; done > $d/environ
        """)
    build(recipe, options(tmp_path / "out"))
    import tarfile
    with tarfile.open(tmp_path / "out" / "x86_64" / "environ-1.0.0-r0.apk") as tar:
        seen = tar.extractfile("usr/share/probe/environ").read().decode()
    assert "/proc/1: PATH=" in seen, seen  # the probe did read bubblewrap's environment
    assert secret not in seen and "HTTP_AUTH" not in seen, seen


def _host_address() -> str:
    """The host's outbound (non-loopback) IPv4 address: what a network step reaches it by."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("10.255.255.255", 1))  # no packet is sent; this only picks the route
        return s.getsockname()[0]


def test_network_access_fails_unless_enabled(tmp_path: Path) -> None:
    """Without the network a step reaches nothing; with it (its own namespace joined by
    slirp4netns) it reaches other hosts' addresses but still not the host's loopback."""
    server = socket.socket()
    server.bind(("0.0.0.0", 0))
    server.listen(8)
    port = server.getsockname()[1]
    accepted: list[bool] = []

    def serve() -> None:
        try:
            while True:
                conn, _ = server.accept()
                accepted.append(True)
                conn.close()
        except OSError:
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()

    def recipe_for(host: str) -> Path:
        return write_recipe(tmp_path, f"""\
            package: {{name: net, version: 1.0.0, epoch: 0}}
            pipeline:
              - name: connect
                runs: |
                  python3 -c 'import socket; socket.create_connection(("{host}", {port}), timeout=5); print("connected")'
            """)
    try:
        for host, network in (("127.0.0.1", False), (_host_address(), False), ("127.0.0.1", True)):
            with pytest.raises(StepFailed) as exc:
                build(recipe_for(host), options(tmp_path / "out", network=network))
            assert "pipeline connect" in str(exc.value)
            assert "connected" not in exc.value.tail
            assert "Error" in exc.value.tail  # ConnectionRefused / Network is unreachable
        assert not accepted
        # control: with the network, the host's outbound address is reachable like any other's
        build(recipe_for(_host_address()), options(tmp_path / "out", network=True))
        assert accepted == [True]
    finally:
        server.close()


# --- located recipe errors -------------------------------------------------------------------

_HEAD = "package:\n  name: x\n  version: 1.0.0\n  epoch: 0\npipeline:\n"


@pytest.mark.parametrize("steps,error", [
    ("  - name: a\n    rnus: echo typo\n", r"recipe\.yaml:7:\d+: .*unknown key 'rnus'"),
    ("  - name: a\n    runs: echo ${{vars.nope}}\n", r"recipe\.yaml:\d+:\d+: .*vars\.nope"),
    ("  - uses: fetch\n    with:\n      uri: https://example.invalid/x.tar.gz\n      expected-sha256: abc123\n",
     r"recipe\.yaml:\d+:\d+: .*expected-sha256.*64 hex"),
], ids=["unknown-key", "undefined-variable", "malformed-checksum"])
def test_recipe_errors_are_located(tmp_path: Path, steps: str, error: str) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(_HEAD + steps)
    with pytest.raises(ConfigError, match=error):
        build(recipe, options(tmp_path / "out"))


def test_fetch_checksum_mismatch_stops_the_build(tmp_path: Path) -> None:
    """A cached download whose bytes do not match expected-sha256 fails the fetch step."""
    want = hashlib.sha256(b"the real tarball").hexdigest()
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / f"sha256:{want}").write_bytes(b"something else")
    recipe = write_recipe(tmp_path, f"""\
        package:
          name: x
          version: 1.0.0
          epoch: 0
        pipeline:
          - uses: fetch
            with:
              uri: https://example.invalid/x.tar.gz
              expected-sha256: {want}
              extract: "false"
        """)
    with pytest.raises(StepFailed) as exc:
        build(recipe, options(tmp_path / "out", cache_dir=cache))
    assert "pipeline fetch" in str(exc.value)
    assert "recipe.yaml:6:" in str(exc.value)
    assert "FAILED" in exc.value.tail  # sha256sum -c


# --- the Docker runner --------------------------------------------------------------------------

def test_docker_runner_builds_the_same_bytes(peers, demo_repo: Path, signing_key: Path, tmp_path: Path) -> None:
    """--runner docker (the docker26 peer): same package bytes as the bubblewrap build, no network."""
    docker = peers.docker26
    out = tmp_path / "packages"
    build(RECIPES / "demo-hello.yaml", options(out, signing_key=signing_key, runner="docker",
                                                docker=docker.cli, docker_host=docker.host))
    name = "demo-hello-0.1.0-r0.apk"
    assert (out / "x86_64" / name).read_bytes() == (demo_repo / "x86_64" / name).read_bytes()
    recipe = write_recipe(tmp_path, """\
        package: {name: dnet, version: 1.0.0, epoch: 0}
        pipeline:
          - name: escape
            runs: echo x > /etc/escape-docker
          """)
    with pytest.raises(StepFailed) as exc:
        build(recipe, options(out, runner="docker", docker=docker.cli, docker_host=docker.host))
    assert "Read-only file system" in exc.value.tail


def test_one_license_line_per_copyright_entry(tmp_path) -> None:
    """melange writes a `license` line per copyright entry; readers (apko) take the first."""
    import tarfile

    recipe = tmp_path / "multi.yaml"
    recipe.write_text(
        "package:\n  name: multi\n  version: 1.0\n  epoch: 0\n  copyright:\n    - license: MIT\n"
        "    - license: Apache-2.0\nenvironment:\n  contents:\n    packages: []\npipeline:\n"
        "  - runs: mkdir -p \"${{targets.destdir}}/usr/share/multi\"\n")
    r = subprocess.run([sys.executable, "-m", "distroless", "package", "build", "--host-toolchain", str(recipe),
                        "--out-dir", str(tmp_path / "out")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    apk = tmp_path / "out/x86_64/multi-1.0-r0.apk"
    with tarfile.open(apk) as tf:
        lines = tf.extractfile(".PKGINFO").read().decode().splitlines()
    assert [l for l in lines if l.startswith("license = ")] == ["license = MIT", "license = Apache-2.0"]
    assert package.read(apk).package.license == "MIT"
