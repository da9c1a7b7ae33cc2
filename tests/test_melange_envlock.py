"""A recipe's build environment locked ahead of time (`package lock`) and installed from the
lock's .apk files alone: the same package bytes as a build that resolves the environment, with
the repository gone; under another sandbox's user namespace (a remote worker's bubblewrap) too;
a stale lock, a substituted package, a recipe that needs the network are refused."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from distroless import lock as lockfile
from distroless.errors import ConfigError
from distroless.melange import sandboxnet
from distroless.melange.build import BuildOptions, build, lock_recipe
from distroless.melange.envlock import LockedEnvironment
from tests.imagerepo import make_repo

ROOT = Path(__file__).resolve().parent.parent
SDE = 1700000000

RECIPE = """\
    package:
      name: probe
      version: 1.0.0
      epoch: 0
      copyright:
        - license: MIT
    environment:
      contents:
        repositories: [{repo}]
        keyring: [{pub}]
        packages: [{packages}]
    pipeline:
      - runs: |
          d=${{{{targets.destdir}}}}/usr/share/probe
          mkdir -p $d
          echo "$(id -u):$(id -g) $HOME $(busybox 2>&1 | sed -n '1s/^\\(BusyBox v[^ ]*\\).*/\\1/p')" > $d/who
          cat /etc/os-release > $d/os-release
          ls /etc/apk/keys > $d/keys
    """


def _tool(name: str, why: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: {why}", pytrace=False)
    return found


@pytest.fixture(scope="module")
def bwrap() -> str:
    return _tool("bwrap", "package builds need a real sandbox (Debian: bubblewrap)")


@pytest.fixture(scope="module")
def busybox() -> str:
    return _tool("busybox", "the environment's shell (Debian: busybox-static)")


def write_recipe(d: Path, repo: Path, pub: Path, packages: str = "busybox") -> Path:
    path = d / "probe.yaml"
    path.write_text(textwrap.dedent(RECIPE).format(repo=repo, pub=pub, packages=packages))
    return path


def options(out: Path, **kw) -> BuildOptions:
    kw.setdefault("source_date_epoch", SDE)
    kw.setdefault("log", io.StringIO())
    kw.setdefault("apk_cache_dir", out.parent / "apk-cache")
    return BuildOptions(out_dir=out, **kw)


class Locked:
    """A module's one lock: the recipe, the lock, the locked .apk files (copied out in lock order)
    and the package a resolving build wrote, with the repository moved away afterwards."""

    def __init__(self, root: Path, busybox: str):
        repo, pub = make_repo(root, busybox, fixed_key=True)
        self.recipe = write_recipe(root, repo, pub)
        self.lock = root / "probe.env.lock.json"
        lk = lock_recipe(self.recipe, options(root / "lock-out"))
        lockfile.write(lk, self.lock)
        self.pins = lk.packages
        (root / "apks").mkdir()
        self.apks = tuple(shutil.copy(repo / p.architecture / Path(p.url).name, root / "apks") for p in lk.packages)
        (resolved,) = build(self.recipe, options(root / "resolved"))
        self.resolved = resolved.packages[0].path.read_bytes()
        shutil.move(repo, root / "repo-gone")  # from here on nothing can be resolved or fetched
        self.root = root


@pytest.fixture(scope="module")
def locked(tmp_path_factory, bwrap, busybox) -> Locked:
    return Locked(tmp_path_factory.mktemp("envlock"), busybox)


def test_lock_pins_every_environment_package(locked):
    lk = lockfile.load(locked.lock)
    assert [p.name for p in lk.packages] == ["test-base", "busybox"]  # busybox depends on test-base
    assert all(len(p.sha256) == 64 and p.checksum.startswith("Q1") for p in lk.packages)
    assert lk.config_name == str(locked.recipe) and lk.config_checksum.startswith("sha256-")
    assert [k.content.startswith("-----BEGIN PUBLIC KEY") for k in lk.keyring] == [True]


def test_build_from_the_lock_equals_the_resolving_build(locked, tmp_path):
    env = LockedEnvironment(locked.lock, tuple(Path(a) for a in locked.apks))
    (built,) = build(locked.recipe, options(tmp_path / "out", environment=env, apk_cache_dir=None))
    assert built.packages[0].path.read_bytes() == locked.resolved
    import tarfile
    with tarfile.open(built.packages[0].path) as tar:
        who = tar.extractfile("usr/share/probe/who").read().decode()
        keys = tar.extractfile("usr/share/probe/keys").read().decode()
    assert who.split()[:2] == ["1000:1000", "/home/build"] and "BusyBox" in who, who
    assert keys.split() == ["repo.rsa.pub"]  # the lock's key, installed as the resolving build does


def step_argv(locked: Locked, out: Path, *apks: str) -> list[str]:
    argv = [sys.executable, "-m", "distroless.steps", f"--source-date-epoch={SDE}", "melange",
            "--recipe", str(locked.recipe), "--out", str(out), "--env-lock", str(locked.lock)]
    for a in apks or locked.apks:
        argv += ["--env-apk", str(a)]
    return argv + ["--", "--arch", "x86_64"]


def in_a_worker(locked: Locked, tmp_path: Path, step: list[str], secret: str = "") -> None:
    """Run `step` as tests/remote/worker.py runs an action: bubblewrap with every namespace
    unshared (a user namespace mapping root only, no network, a fresh /tmp), only its environment."""
    # the checkout (and its venv's python) bound again over the fresh /tmp, in case it lives there
    argv = ["bwrap", "--die-with-parent", "--unshare-all", "--ro-bind", "/", "/", "--tmpfs", "/tmp",
            "--ro-bind", str(ROOT), str(ROOT), "--bind", str(locked.root), str(locked.root), "--bind", str(tmp_path), str(tmp_path),
            "--proc", "/proc", "--dev", "/dev", "--chdir", str(ROOT), "--clearenv",
            "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "LC_ALL", "C.UTF-8"]
    if secret:
        argv += ["--setenv", "WORKER_SECRET", secret]
    proc = subprocess.run([*argv, "--", *step], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_the_step_nested_in_a_workers_sandbox_gives_the_same_bytes(locked, tmp_path):
    """The step's own sandbox nests in the worker's: the same bytes as the resolving build."""
    out = tmp_path / "probe-1.0.0-r0.apk"
    in_a_worker(locked, tmp_path, step_argv(locked, out))
    assert out.read_bytes() == locked.resolved
    probe = subprocess.run(["bwrap", "--unshare-all", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev",
                            "cat", "/proc/self/uid_map"], capture_output=True, text=True, check=True).stdout
    assert sandboxnet.nested(probe)  # the case the step detected


PEEK = """\
    - runs: |
        d=${{targets.destdir}}/usr/share/probe
        mkdir -p $d
        # /proc is the enclosing one here: pid 1 is the worker's bubblewrap, outside our namespace
        if ls /proc/1/root/etc >/dev/null 2>&1; then echo "root readable"; else echo "root denied"; fi > $d/outer
        if cat /proc/1/environ >/dev/null 2>&1; then echo "environ readable"; else echo "environ denied"; fi >> $d/outer
        for p in /proc/[0-9]*; do echo "$p: $(tr '\\0' ' ' < $p/environ 2>&1)"; done > $d/environ
    """


def test_a_nested_step_sees_neither_the_workers_processes_nor_its_environment(locked, tmp_path):
    """With the enclosing /proc bound, the worker's processes are listed but their roots and
    environments stay unreadable (another user namespace); bubblewrap's own holds PATH only."""
    recipe = tmp_path / "peek.yaml"  # the same environment, so the same lock
    text = locked.recipe.read_text()
    recipe.write_text(text[:text.index("pipeline:")] + "pipeline:\n" + textwrap.indent(textwrap.dedent(PEEK), "  "))
    secret = f"s3cret-{tmp_path.name}"
    out = tmp_path / "probe-1.0.0-r0.apk"
    argv = step_argv(locked, out)
    argv[argv.index(str(locked.recipe))] = str(recipe)
    in_a_worker(locked, tmp_path, argv, secret=secret)
    import tarfile
    with tarfile.open(out) as tar:
        outer = tar.extractfile("usr/share/probe/outer").read().decode()
        environ = tar.extractfile("usr/share/probe/environ").read().decode()
    assert outer.split() == ["root", "denied", "environ", "denied"], outer
    assert secret not in environ and "PATH=" in environ, environ  # PATH: bubblewrap's own, readable


def test_nested_detection():
    assert not sandboxnet.nested("         0          0 4294967295\n")  # a host, a plain container
    assert sandboxnet.nested("         0          0          1\n")  # linux-sandbox, bwrap as root
    assert sandboxnet.nested("      1000       1000          1\n")
    assert not sandboxnet.nested("0 100000 65536\n65536 1000000 2000000\n")  # SANDBOX_ID mapped


def test_a_stale_lock_is_refused(locked, tmp_path):
    recipe = tmp_path / "probe.yaml"
    recipe.write_text(locked.recipe.read_text().replace("packages: [busybox]", "packages: [busybox, clash]"))
    env = LockedEnvironment(locked.lock, tuple(Path(a) for a in locked.apks))
    with pytest.raises(ConfigError) as e:
        build(recipe, options(tmp_path / "out", environment=env))
    msg = str(e.value)
    assert str(locked.lock) in msg and "changed since it was locked" in msg
    assert f"re-lock with `distroless package lock {recipe}`" in msg


def test_a_substituted_package_is_refused(locked, tmp_path):
    swapped = (locked.apks[1], locked.apks[0])  # right files, wrong pins
    proc = subprocess.run(step_argv(locked, tmp_path / "probe-1.0.0-r0.apk", *swapped),
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 1
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("distroless.steps melange: error: ") and "test-base-1.0-r0.apk" in line, proc.stderr
    assert not (tmp_path / "probe-1.0.0-r0.apk").exists()


def test_wrong_package_count_network_and_host_toolchain_are_refused(locked, tmp_path):
    env = LockedEnvironment(locked.lock, (Path(locked.apks[1]),))
    with pytest.raises(ConfigError, match=r"2 x86_64 packages locked, 1 \.apk files given"):
        build(locked.recipe, options(tmp_path / "a", environment=env))
    env = LockedEnvironment(locked.lock, tuple(Path(a) for a in locked.apks))
    with pytest.raises(ConfigError, match="exclude each other"):
        build(locked.recipe, options(tmp_path / "b", environment=env, host_toolchain=True))
    with pytest.raises(ConfigError, match="a build from a locked environment has none"):
        build(locked.recipe, options(tmp_path / "c", environment=env, network=True))
    with pytest.raises(ConfigError, match="for one architecture"):
        build(locked.recipe, options(tmp_path / "d", environment=env, archs=("x86_64", "aarch64")))


def test_the_step_needs_an_environment_source(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "distroless.steps", "melange", "--recipe", "r.yaml",
                           "--out", str(tmp_path / "x.apk"), "--", "--arch", "x86_64"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "r.yaml: give the build environment as a lock" in lines[0], proc.stderr


def test_cli_package_lock(locked, tmp_path, busybox):
    repo, pub = make_repo(tmp_path, busybox, fixed_key=True)
    recipe = write_recipe(tmp_path, repo, pub)
    proc = subprocess.run([sys.executable, "-m", "distroless", "package", "lock", str(recipe),
                           "--apk-cache-dir", str(tmp_path / "cache")], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "probe.env.lock.json"
    assert proc.stdout.strip() == f"{out}: 2 environment packages locked (x86_64: 2)"
    # the same recipe and repository bytes (fixed key): the same pins as the module's lock
    assert [(p.name, p.sha256) for p in lockfile.load(out).packages] == [(p.name, p.sha256) for p in locked.pins]
    bare = tmp_path / "bare.yaml"
    bare.write_text("package: {name: bare, version: 1.0.0, epoch: 0}\npipeline:\n  - runs: 'true'\n")
    proc = subprocess.run([sys.executable, "-m", "distroless", "package", "lock", str(bare),
                           "--apk-cache-dir", str(tmp_path / "cache")], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode != 0 and "nothing to lock" in proc.stderr, proc.stderr
