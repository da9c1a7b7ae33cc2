"""Who a sandboxed step runs as on the host, and the network a network step gets.

Identity: the build user (uid/gid 1000 inside) maps to an unprivileged host id: the invoking
user's, or, when the engine runs as root, `SANDBOX_ID` (an id no account uses), so a file only
root may read on the host is not readable in the sandbox either.

Network: a step that needs the network gets its own network namespace (bubblewrap
`--unshare-net`) joined to the outside by slirp4netns, a user-mode TCP/IP stack run on the host
side. From inside, the step sees `tap0` (10.0.2.100/24), a gateway 10.0.2.2 and a DNS forwarder
10.0.2.3. `--disable-host-loopback` refuses connections to the gateway, which slirp would
otherwise map to the host's 127.0.0.1: no service bound to the host's loopback is reachable, and
the host's unix sockets (named or abstract) are not either (they are per namespace). What stays
reachable is what any other machine could reach: remote hosts, and the host's own non-loopback
addresses (services listening on 0.0.0.0 or on a public interface address).
"""

from __future__ import annotations

import json
import os
import select
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from distroless.errors import DistrolessError

SANDBOX_ID = 2_000_000
SLIRP = "slirp4netns"
GUEST_DNS = "10.0.2.3"
_READY_TIMEOUT = 30.0


class NetworkSetupError(DistrolessError):
    """The step's network namespace could not be connected (slirp4netns missing or failing)."""


def _id_ranges(text: str) -> list[tuple[int, int]]:
    """/proc/self/uid_map lines (`inside outside count`) → [(first inside id, count)]."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and all(p.isdigit() for p in parts):
            out.append((int(parts[0]), int(parts[2])))
    return out


def nested(uid_map: str | None = None) -> bool:
    """Inside a user namespace that maps only some ids (Bazel's linux-sandbox, a remote worker's
    bubblewrap): root here cannot chown to, or become, an id of the sandbox's own, and a fresh
    procfs may not be mountable. Outside one (a host, a plain container) every id is mapped."""
    if uid_map is None:
        try:
            uid_map = Path("/proc/self/uid_map").read_text()
        except OSError:
            return False
    return not any(first <= SANDBOX_ID < first + count for first, count in _id_ranges(uid_map))


def privileged() -> bool:
    """Root that can give the sandbox a host id of its own (SANDBOX_ID). Nested root runs the
    sandbox as an unprivileged user does: as itself, mapped to the build user."""
    return os.geteuid() == 0 and not nested()


def host_ids() -> tuple[int, int]:
    """The host uid/gid the sandbox's build user maps to."""
    if privileged():
        return SANDBOX_ID, SANDBOX_ID
    return os.getuid(), os.getgid()


def drop_privileges_prefix() -> str:
    """A shell command prefix that runs the rest (`"$@"`) as the sandbox's host id, no groups."""
    uid, gid = host_ids()
    code = (f"import os, sys; os.setgroups([]); os.setgid({gid}); os.setuid({uid}); "
            f"os.execvp(sys.argv[1], sys.argv[1:])")
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(code)} "


def give_to_sandbox(path: Path) -> None:
    """Make `path` (the workspace, a writable cache) writable by the sandbox's host id: chown
    its tree, never following symlinks. Only (un-nested) root can, and only it needs to."""
    if not privileged():
        return
    uid, gid = host_ids()
    os.chown(path, uid, gid, follow_symlinks=False)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)


def resolv_conf(scratch: Path) -> Path:
    path = scratch / "resolv.conf"
    path.write_text(f"nameserver {GUEST_DNS}\n")
    path.chmod(0o644)
    return path


def _wait_loopback(pid: int) -> None:
    """bubblewrap brings up `lo` in the new namespace after reporting its pid; slirp4netns
    configuring tap0 at the same moment makes that fail, so wait for `lo` to be up (its IPv6
    address appears then; without IPv6, a short pause)."""
    path = Path(f"/proc/{pid}/net/if_inet6")
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        try:
            if any(line.split()[-1] == "lo" for line in path.read_text().splitlines() if line.strip()):
                return
        except FileNotFoundError:
            time.sleep(0.2)
            return
        except OSError:
            return  # the sandbox already ended
        time.sleep(0.005)


class StepNetwork:
    """One step's outbound-only network: bwrap reports its child's pid on `--info-fd` and waits
    on `--block-fd`; slirp4netns joins that child's namespace, says it is ready, and the step
    then starts."""

    def __init__(self) -> None:
        exe = shutil.which(SLIRP)
        if exe is None:
            raise NetworkSetupError(f"this step needs the network, which the sandbox provides through "
                                    f"{SLIRP}; it is not installed (apt-get install {SLIRP})")
        self.exe = exe
        self._info_r, self._info_w = os.pipe()
        self._block_r, self._block_w = os.pipe()
        self._slirp: subprocess.Popen[bytes] | None = None

    def bwrap_args(self) -> list[str]:
        return ["--unshare-net", "--info-fd", str(self._info_w), "--block-fd", str(self._block_r)]

    def child_fds(self) -> tuple[int, int]:
        return self._info_w, self._block_r

    def connect(self) -> None:
        """After bwrap started: attach slirp4netns to the sandbox and let the step run."""
        os.close(self._info_w)
        os.close(self._block_r)
        self._info_w = self._block_r = -1
        pid = self._child_pid()
        _wait_loopback(pid)
        ready_r, ready_w = os.pipe()
        try:
            self._slirp = subprocess.Popen(
                [self.exe, "--configure", "--mtu=65520", "--disable-host-loopback", "--ready-fd", str(ready_w),
                 "--netns-type=path", f"/proc/{pid}/ns/net", "tap0"], pass_fds=(ready_w,), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            os.close(ready_w)
            ready_w = -1
            readable, _, _ = select.select([ready_r], [], [], _READY_TIMEOUT)
            if not readable or os.read(ready_r, 1) != b"1":
                if self._slirp.poll() is None:
                    self._slirp.kill()
                    self._slirp.wait()
                err = self._slirp.stderr.read(2000).decode(errors="replace") if self._slirp.stderr else ""
                err = " ".join(err.split())[-300:]
                raise NetworkSetupError(f"{SLIRP} did not connect the sandbox's network: {err.strip() or 'no answer'}")
        finally:
            os.close(ready_r)
            if ready_w >= 0:
                os.close(ready_w)
        try:
            os.write(self._block_w, b"1")
        except BrokenPipeError:
            pass  # bubblewrap already ended: its own message and status tell why
        os.close(self._block_w)
        self._block_w = -1

    def _child_pid(self) -> int:
        data = b""
        deadline = time.monotonic() + _READY_TIMEOUT
        while time.monotonic() < deadline:
            readable, _, _ = select.select([self._info_r], [], [], 1.0)
            if not readable:
                continue
            chunk = os.read(self._info_r, 4096)
            if not chunk:
                break
            data += chunk
            try:
                return int(json.loads(data)["child-pid"])
            except (ValueError, KeyError):
                continue
        raise NetworkSetupError("bubblewrap did not report its sandbox's pid (it failed to start?)")

    def close(self) -> None:
        if self._slirp is not None and self._slirp.poll() is None:
            self._slirp.terminate()
            try:
                self._slirp.wait(10)
            except subprocess.TimeoutExpired:
                self._slirp.kill()
                self._slirp.wait()
        if self._slirp is not None and self._slirp.stderr:
            self._slirp.stderr.close()
        for fd in (self._info_r, self._info_w, self._block_r, self._block_w):
            if fd >= 0:
                os.close(fd)
        self._info_r = self._info_w = self._block_r = self._block_w = -1
