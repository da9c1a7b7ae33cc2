"""Sandboxes that run a recipe's steps (melange.md §3.2–3.3): bubblewrap (default) and Docker.

Both take a `SandboxSpec` (a root directory bound read-only as `/`, the workspace bound at
`/home/build`, the container environment, network on or off, optionally the host's system
directories for `--host-toolchain`) and run one `/bin/sh -c` script per step.

bubblewrap runs each step in a fresh sandbox: a user namespace mapping the build user
(uid/gid 1000) to an unprivileged host id (the invoker's; `sandboxnet.SANDBOX_ID` when run as
root), so root-only host files stay unreadable inside; no /sys; its own network namespace
(outbound-only through slirp4netns for network steps, see `sandboxnet`). pack() maps the build
ids to 0 either way. Where the root tree and the host both have a system directory (`/usr` with
package files plus the host's toolchain) the two are merged with a read-only overlayfs, mounted
(with the bind points that let the unprivileged id reach its directories) in a private mount
namespace (`unshare`) so that it disappears with the sandbox. Nested in another sandbox's user
namespace (Bazel's linux-sandbox, a remote worker's bubblewrap), root maps only itself: bubblewrap
then runs as an unprivileged user's would (the build user is the invoker), with the enclosing
/proc bound rather than a fresh one mounted.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TextIO

from distroless.errors import DistrolessError
from distroless.melange import sandboxnet
from distroless.melange.pipeline import RunnableStep
from distroless.rootfs.importdir import import_dir
from distroless.rootfs.layer import write_rootfs_tar
from distroless.rootfs.tree import Tree

WORKSPACE = "/home/build"
CACHE_MOUNT = "/var/cache/melange"
# The host's system directories a --host-toolchain sandbox sees (when they exist).
HOST_SYSTEM_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
HOST_SYSTEM_ETC = ("etc/alternatives", "etc/ld.so.cache", "etc/ld.so.conf", "etc/ld.so.conf.d")
TAIL_LINES = 40


class RunnerError(DistrolessError):
    """The sandbox could not be set up (missing tool, bad mount)."""


class StepFailed(DistrolessError):
    """A step exited non-zero; the message names the step chain, the command and the output tail."""

    def __init__(self, step: RunnableStep, status: int, tail: str, what: str = "build",
                 top: RunnableStep | None = None):
        chain = " > ".join(step.chain + (step.name,))
        where = f" ({step.where})" if step.where else ""
        if top is not None and top is not step and top.where:
            # inside a `uses` definition: also say where the recipe's own step is written
            where += f", in {top.name} ({top.where})"
        super().__init__(
            f"{what} step failed: pipeline {chain}{where}: exit status {status}\n"
            f"command:\n{_indent(step.runs.strip() or '(empty)')}\n"
            f"output (last {TAIL_LINES} lines):\n{_indent(tail.rstrip() or '(none)')}")
        self.step = step
        self.status = status
        self.tail = tail


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


@dataclass(frozen=True, slots=True)
class Mount:
    source: Path
    target: str  # absolute path in the sandbox
    writable: bool = False


@dataclass(frozen=True, slots=True)
class SandboxSpec:
    root: Path  # directory bound read-only as `/`; mount points are created in it
    workspace: Path  # bound read-write at /home/build
    environment: Mapping[str, str] = field(default_factory=dict)  # container env
    mounts: tuple[Mount, ...] = ()
    host_toolchain: bool = False
    network: bool = False
    uid: int = 1000
    gid: int = 1000
    tree: Tree | None = field(default=None, compare=False)  # the root as a tree (Docker import)
    shell: str = "/bin/sh"
    deadline: float | None = None  # time.monotonic() by which every step must have ended (--timeout)


@dataclass(frozen=True, slots=True)
class StepResult:
    status: int
    tail: str


class Session(Protocol):
    def run(self, step: RunnableStep) -> StepResult: ...


class Runner(Protocol):
    name: str

    def session(self, spec: SandboxSpec) -> AbstractContextManager[Session]: ...


# What bubblewrap (and the mount prefix before it: unshare, mount, sh) is started with: the
# system's PATH and nothing else (bubblewrap itself is named by its absolute path).
LAUNCHER_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}


def step_environment(spec: SandboxSpec, step: RunnableStep) -> dict[str, str]:
    """Container env, then the step's own (PATH and its `environment`) on top."""
    return {**spec.environment, **step.environment}


class BuildTimeout(DistrolessError):
    """The build ran past its deadline (`package.timeout` or `--timeout`)."""


def _pump(proc: subprocess.Popen[bytes], sink: TextIO | None, deadline: float | None = None) -> str:
    """Copy the merged output to `sink` while keeping the last lines for error messages. Past
    `deadline` the process is killed (bwrap's PID namespace takes its children with it)."""
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    assert proc.stdout is not None
    timer = None
    if deadline is not None:
        timer = threading.Timer(max(0.0, deadline - time.monotonic()), proc.kill)
        timer.daemon = True
        timer.start()
    try:
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace")
            tail.append(line)
            if sink is not None:
                sink.write(line)
                sink.flush()
        proc.wait()
    finally:
        if timer is not None:
            timer.cancel()
    if deadline is not None and time.monotonic() >= deadline and proc.returncode < 0:
        raise BuildTimeout(f"the build timed out (killed after the deadline); output (last lines):\n"
                           f"{_indent(''.join(tail).rstrip() or '(none)')}")
    return "".join(tail)


# --- bubblewrap ------------------------------------------------------------------------

def resolve_in_root(root: Path, target: str) -> Path:
    """`target` as the sandbox will see it, resolved inside `root` as if it were `/`: symlinks
    in the tree (even absolute ones, such as a package's `home -> /etc`) are followed within
    the tree and never on the host; `..` stops at the root. The result has no symlink in it."""
    parts = [p for p in target.split("/") if p and p != "."]
    done: list[str] = []
    links = 0
    while parts:
        name = parts.pop(0)
        if name == "..":
            if done:
                done.pop()
            continue
        here = root.joinpath(*done, name)
        if here.is_symlink():
            links += 1
            if links > 40:
                raise RunnerError(f"/{target.lstrip('/')}: too many levels of symbolic links in the build environment")
            link = os.readlink(here)
            if link.startswith("/"):
                done = []
            parts = [p for p in link.split("/") if p and p != "."] + parts
            continue
        done.append(name)
    return root.joinpath(*done)


def _ensure_point(root: Path, target: str, *, directory: bool) -> None:
    """Create a mount point inside the root directory (the sandbox's / is read-only), where
    the sandbox will look for it: through the tree's own symlinks, never out of the tree."""
    path = resolve_in_root(root, target)
    if directory:
        path.mkdir(parents=True, exist_ok=True)
    elif not os.path.lexists(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644))


@dataclass(frozen=True, slots=True)
class HostPlan:
    """How the host system directories join the root: plain binds, symlinks made in the root,
    and overlays (root's directory over the host's) mounted before bwrap starts."""

    binds: tuple[tuple[str, str], ...]  # (host path, sandbox path)
    overlays: tuple[tuple[tuple[str, ...], str], ...]  # (lower dirs top first, sandbox path)


def plan_host(root: Path) -> HostPlan:
    """Decide per host system directory; creates symlinks / mount points in `root`."""
    binds: list[tuple[str, str]] = []
    overlays: list[tuple[tuple[str, ...], str]] = []
    for name in HOST_SYSTEM_DIRS:
        host = Path("/") / name
        if not os.path.lexists(host):
            continue
        mine = root / name
        if host.is_symlink():
            if not os.path.lexists(mine):
                os.symlink(os.readlink(host), mine)
                continue
            if mine.is_symlink():
                continue  # the tree's own layout wins
            real = os.path.realpath(host)
        else:
            real = str(host)
        if mine.is_dir() and not mine.is_symlink() and any(mine.iterdir()):
            overlays.append(((str(mine), real), "/" + name))
        elif not mine.is_symlink():
            mine.mkdir(exist_ok=True)
            binds.append((real, "/" + name))
    for rel in HOST_SYSTEM_ETC:
        host = Path("/") / rel
        if not host.exists() or os.path.lexists(root / rel):
            continue
        _ensure_point(root, rel, directory=host.is_dir())
        binds.append((str(host), "/" + rel))
    return HostPlan(tuple(binds), tuple(overlays))


@dataclass(slots=True)
class BwrapSession:
    spec: SandboxSpec
    bwrap: str
    sink: TextIO | None
    scratch: Path
    plan: HostPlan | None = None
    _staged: list[tuple[tuple[str, ...], str, str]] = field(default_factory=list)
    resolv: Path | None = None  # the network step's /etc/resolv.conf (slirp's DNS forwarder)
    _binds: dict[str, str] = field(default_factory=dict)  # host source -> its reachable bind point
    nested: bool = False  # inside another sandbox's user namespace (see sandboxnet.nested)

    def _src(self, path: Path) -> str:
        return self._binds.get(str(path), str(path))

    def prepare(self) -> None:
        root = self.spec.root
        for d in ("home/build", "tmp", "proc", "dev"):  # no /sys: the host's would show through
            _ensure_point(root, d, directory=True)
        for m in self.spec.mounts:
            _ensure_point(root, m.target, directory=m.source.is_dir())
        if self.spec.network:
            _ensure_point(root, "etc/resolv.conf", directory=False)
            self.resolv = sandboxnet.resolv_conf(self.scratch)
        # The sandbox runs as an unprivileged host id: it owns the workspace and writable caches.
        # Run by root, the directories it binds are first bind-mounted (by root, in a private
        # mount namespace) under this 0711 scratch directory, so that the unprivileged id can
        # reach them whatever the modes of their parents (root's home is 0700).
        os.chmod(self.scratch, 0o711)
        sandboxnet.give_to_sandbox(self.spec.workspace)
        for m in self.spec.mounts:
            if m.writable:
                sandboxnet.give_to_sandbox(m.source)
        if sandboxnet.privileged():
            for i, src in enumerate([root, self.spec.workspace, *(m.source for m in self.spec.mounts)]):
                staged = self.scratch / f"bind{i}"
                staged.mkdir() if src.is_dir() else staged.touch()
                self._binds[str(src)] = str(staged)
        if self.spec.host_toolchain:
            self.plan = plan_host(root)
            for i, (lowers, target) in enumerate(self.plan.overlays):
                staged = self.scratch / f"overlay{i}"
                staged.mkdir()
                self._staged.append((lowers, target, str(staged)))

    def argv(self, step: RunnableStep, net: sandboxnet.StepNetwork | None = None) -> list[str]:
        spec = self.spec
        args = [self.bwrap, "--unshare-user", "--uid", str(spec.uid), "--gid", str(spec.gid),
                "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
                "--die-with-parent", "--new-session"]
        # Every step has its own network namespace; a network step's is joined to the outside
        # by slirp4netns (outbound only, see sandboxnet).
        args += net.bwrap_args() if net is not None else ["--unshare-net"]
        args += ["--ro-bind", self._src(spec.root), "/"]
        if self.plan is not None:
            for host, target in self.plan.binds:
                args += ["--ro-bind", host, target]
            for _lowers, target, staged in self._staged:
                args += ["--ro-bind", staged, target]
        # /tmp as every container runtime makes it (runc, BuildKit's tmpfs mounts): 1777, not bwrap's 0755
        # nested in another sandbox's user namespace a fresh procfs may be refused (a worker's
        # bubblewrap under a container's masked /proc): the enclosing one is bound instead
        proc = ["--ro-bind", "/proc", "/proc"] if self.nested else ["--proc", "/proc"]
        args += ["--dev", "/dev", *proc, "--perms", "1777", "--tmpfs", "/tmp",
                 "--bind", self._src(spec.workspace), WORKSPACE]
        for m in spec.mounts:
            args += ["--bind" if m.writable else "--ro-bind", self._src(m.source), m.target]
        if net is not None and self.resolv is not None:
            args += ["--ro-bind", str(self.resolv), "/etc/resolv.conf"]
        args += ["--chdir", WORKSPACE, "--clearenv"]
        for key, value in sorted(step_environment(spec, step).items()):
            args += ["--setenv", key, value]
        args += [spec.shell, "-c", step.script]
        # Overlays and bind points live in a private mount namespace that ends with the sandbox.
        mounts = [f"mount -t overlay overlay -o ro,lowerdir={shlex.quote(':'.join(lowers))} {shlex.quote(staged)}"
                  for lowers, _t, staged in self._staged]
        mounts += [f"mount --rbind {shlex.quote(src)} {shlex.quote(staged)}" for src, staged in self._binds.items()]
        if not mounts:
            return args
        # Mounting needs root; bubblewrap then starts as the unprivileged host id (dropped by a
        # one-line Python exec, which keeps bwrap's --info-fd/--block-fd as they are).
        drop = sandboxnet.drop_privileges_prefix() if sandboxnet.privileged() else ""
        return ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
                f'{" && ".join(mounts)} && exec {drop}"$@"', "sh", *args]

    def run(self, step: RunnableStep) -> StepResult:
        try:
            net = sandboxnet.StepNetwork() if self.spec.network else None
        except sandboxnet.NetworkSetupError as exc:
            raise RunnerError(str(exc)) from None
        try:
            argv = self.argv(step, net)
            try:
                # bubblewrap's own environment is readable inside (its init process is the
                # sandbox's pid 1, /proc/1/environ): only PATH, never the front door's (HTTP_AUTH…)
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, umask=0o022, env=LAUNCHER_ENV,
                                        pass_fds=net.child_fds() if net else ())
            except OSError as exc:
                raise RunnerError(f"cannot start bubblewrap ({self.bwrap}): {exc.strerror or exc}") from None
            if net is not None:
                try:
                    net.connect()
                except sandboxnet.NetworkSetupError as exc:
                    proc.kill()
                    proc.wait()
                    raise RunnerError(str(exc)) from None
            tail = _pump(proc, self.sink, self.spec.deadline)
            return StepResult(proc.returncode, tail)
        finally:
            if net is not None:
                net.close()


@dataclass(frozen=True, slots=True)
class BwrapRunner:
    bwrap: str = "bwrap"
    sink: TextIO | None = None  # where step output goes (the front door's stderr); None: dropped
    name: str = "bubblewrap"

    def check(self) -> str:
        found = shutil.which(self.bwrap)
        if found is None:
            raise RunnerError(f"bubblewrap not found ({self.bwrap!r} is not on PATH); install the "
                              f"bubblewrap package or use --runner docker")
        return found

    @contextmanager
    def session(self, spec: SandboxSpec) -> Iterator[BwrapSession]:
        exe = self.check()
        with tempfile.TemporaryDirectory(prefix="distroless-bwrap-") as scratch:
            s = BwrapSession(spec, exe, self.sink, Path(scratch), nested=sandboxnet.nested())
            s.prepare()
            yield s


# --- docker -----------------------------------------------------------------------------

@dataclass(slots=True)
class DockerSession:
    spec: SandboxSpec
    docker: str
    host: str  # DOCKER_HOST as the front door resolved it; empty: the docker CLI's default
    sink: TextIO | None
    remove: bool = True
    image: str = ""

    def _base(self) -> list[str]:
        return [self.docker, "-H", self.host] if self.host else [self.docker]

    def _cli(self, *args: str, stdin=None, check: bool = True) -> subprocess.CompletedProcess[bytes]:  # type: ignore[no-untyped-def]
        proc = subprocess.run([*self._base(), *args], stdin=stdin, capture_output=True)
        if check and proc.returncode != 0:
            raise RunnerError(f"docker {args[0]} failed: {proc.stderr.decode(errors='replace').strip()}")
        return proc

    def prepare(self, scratch: Path) -> None:
        spec = self.spec
        tar_path = scratch / "root.tar"
        with open(tar_path, "wb") as f:
            if spec.tree is not None and not spec.host_toolchain:
                write_rootfs_tar(spec.tree, f)
            else:
                if spec.host_toolchain:
                    plan_host(spec.root)  # the host's /bin -> usr/bin style links, in the image
                # the same tar writer as image layers, over the directory as it is on disk
                write_rootfs_tar(import_dir(spec.root, root_owner=False), f)
        digest = hashlib.sha256(tar_path.read_bytes()).hexdigest()[:16]
        self.image = f"distroless-melange-env:{digest}"
        with open(tar_path, "rb") as f:
            self._cli("import", "-", self.image, stdin=f)
        # The build user owns the workspace, as in the bubblewrap sandbox.
        for dirpath, dirnames, filenames in os.walk(spec.workspace):
            for name in dirnames + filenames:
                os.chown(Path(dirpath) / name, spec.uid, spec.gid, follow_symlinks=False)
        os.chown(spec.workspace, spec.uid, spec.gid)

    def argv(self, step: RunnableStep) -> list[str]:
        spec = self.spec
        args = ["run", "--rm", "--user", f"{spec.uid}:{spec.gid}", "--read-only",
                "--tmpfs", "/tmp", "-v", f"{spec.workspace}:{WORKSPACE}", "-w", WORKSPACE]
        if not spec.network:
            args += ["--network", "none"]
        if spec.host_toolchain:
            # No overlay here: host directories shadow the image's (see the report).
            for name in HOST_SYSTEM_DIRS:
                host = Path("/") / name
                if host.exists() and not host.is_symlink():
                    args += ["-v", f"{host}:/{name}:ro"]
            for rel in HOST_SYSTEM_ETC:
                if (Path("/") / rel).exists():
                    args += ["-v", f"/{rel}:/{rel}:ro"]
        for m in spec.mounts:
            args += ["-v", f"{m.source}:{m.target}{'' if m.writable else ':ro'}"]
        for key, value in sorted(step_environment(spec, step).items()):
            args += ["-e", f"{key}={value}"]
        return args + [self.image, spec.shell, "-c", step.script]

    def run(self, step: RunnableStep) -> StepResult:
        proc = subprocess.Popen([*self._base(), *self.argv(step)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        tail = _pump(proc, self.sink, self.spec.deadline)
        return StepResult(proc.returncode, tail)

    def close(self) -> None:
        if self.image and self.remove:
            self._cli("rmi", "-f", self.image, check=False)
        elif self.image and self.sink is not None:
            self.sink.write(f"--rm=false: keeping docker image {self.image}\n")


@dataclass(frozen=True, slots=True)
class DockerRunner:
    docker: str = "docker"
    docker_host: str = ""  # DOCKER_HOST; empty: the environment's
    sink: TextIO | None = None
    name: str = "docker"
    remove: bool = True  # --rm/--cleanup: remove the image afterwards

    @contextmanager
    def session(self, spec: SandboxSpec) -> Iterator[DockerSession]:
        exe = shutil.which(self.docker)
        if exe is None:
            raise RunnerError(f"docker CLI not found ({self.docker!r})")
        s = DockerSession(spec, exe, self.docker_host, self.sink, remove=self.remove)
        with tempfile.TemporaryDirectory(prefix="distroless-docker-") as scratch:
            try:
                s.prepare(Path(scratch))
                yield s
            finally:
                s.close()


def host_shell() -> str:
    """The shell for host-toolchain steps: recipes expect `set -o pipefail`, which Debian's
    /bin/sh (dash) lacks, so bash when the host has it."""
    return "/bin/bash" if Path("/bin/bash").exists() else "/bin/sh"


def check_runner(name: str) -> None:
    """Fail early (before any environment is assembled) on a runner we do not have."""
    if name not in ("bubblewrap", "bwrap", "", "docker"):
        make_runner(name)


def make_runner(name: str, *, sink: TextIO | None = None, docker: str = "docker",
                docker_host: str = "", remove: bool = True) -> BwrapRunner | DockerRunner:
    if name in ("bubblewrap", "bwrap", ""):
        return BwrapRunner(sink=sink)
    if name == "docker":
        return DockerRunner(docker=docker, docker_host=docker_host, sink=sink, remove=remove)
    if name == "qemu":
        raise RunnerError("--runner qemu: not supported (melange's qemu runner boots a microVM over SSH); "
                          "use --runner bubblewrap (Linux) or --runner docker")
    raise RunnerError(f"--runner {name!r}: supported runners are bubblewrap and docker")


def run_steps(session: Session, steps: tuple[RunnableStep, ...] | list[RunnableStep], *,
              what: str = "build", sink: TextIO | None = None) -> None:
    """Run steps in order; the first failure raises StepFailed."""
    top: RunnableStep | None = None
    for step in steps:
        if not step.chain:
            top = step
        if sink is not None:
            sink.write(f"--- {what}: {' > '.join(step.chain + (step.name,))}\n")
            sink.flush()
        result = session.run(step)
        if result.status != 0:
            raise StepFailed(step, result.status, result.tail, what, top)
