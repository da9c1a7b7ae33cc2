"""Item 7: the build sandbox. The build user maps to an unprivileged host uid (so a 0400 root
file is unreadable), /sys is not there, and a network step has its own namespace: the host's
loopback listeners and abstract unix sockets are out of reach.
"""

from __future__ import annotations

import io
import os
import secrets
import socket
import textwrap
import threading
from pathlib import Path

import pytest

from distroless.melange.build import BuildOptions, build
from distroless.melange.runner import StepFailed
from distroless.melange.sandboxnet import SANDBOX_ID
from hostile.apkcraft import dir_, new_key, reg, simple_apk, write_repo

PROBE = r"""
for f in /etc/rootonly /sys/kernel/notes; do
  if cat "$f" >/dev/null 2>&1; then echo "READ $f"; else echo "denied $f"; fi
done
if [ -e /sys/kernel ]; then echo "sys: present"; fi
python3 -c '
import socket
for family, address in ((socket.AF_INET, ("127.0.0.1", PORT)), (socket.AF_UNIX, "\0ABSTRACT")):
    s = socket.socket(family)
    s.settimeout(3)
    try:
        s.connect(address)
        print("CONNECTED", address)
    except OSError as e:
        print("refused", type(e).__name__)
' || true
id -u > /home/build/uid
touch /home/build/made-here
"""


class Listener:
    """A TCP listener on the host's loopback and an abstract unix socket, counting connections."""

    def __init__(self) -> None:
        self.tcp = socket.socket()
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(8)
        self.abstract = f"distroless-hostile-{os.getpid()}-{secrets.token_hex(4)}"
        self.unix = socket.socket(socket.AF_UNIX)
        self.unix.bind("\0" + self.abstract)
        self.unix.listen(8)
        self.accepted: list[str] = []
        for s in (self.tcp, self.unix):
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, s: socket.socket) -> None:
        try:
            while True:
                conn, _ = s.accept()
                self.accepted.append(str(s.family))
                conn.close()
        except OSError:
            pass

    def close(self) -> None:
        self.tcp.close()
        self.unix.close()


@pytest.fixture()
def env_repo(tmp_path: Path):
    key, pub = new_key(tmp_path)
    repo = tmp_path / "repo"
    (repo / "x86_64").mkdir(parents=True)
    pkg = simple_apk(repo / "x86_64" / "secrets-1.0-r0.apk", "secrets",
                     [dir_("etc"), reg("etc/rootonly", b"ROOT-ONLY\n", mode=0o400)], key)
    write_repo(repo, [pkg], key)
    return repo, pub


@pytest.mark.parametrize("network", [False, True], ids=["offline-step", "network-step"])
def test_sandbox_cannot_read_root_files_or_reach_host_services(tmp_path: Path, env_repo, network: bool) -> None:
    repo, pub = env_repo
    listener = Listener()
    script = PROBE.replace("PORT", str(listener.tcp.getsockname()[1])).replace("ABSTRACT", listener.abstract)
    recipe = tmp_path / "probe.yaml"
    recipe.write_text(textwrap.dedent("""\
        package: {name: probe, version: 1.0.0, epoch: 0}
        environment:
          contents:
            repositories: [%s]
            keyring: [%s]
            packages: [secrets]
        pipeline:
          - name: probe
            runs: |
        """) % (repo, pub) + textwrap.indent(script.strip() + "\nexit 1\n", " " * 6))
    log = io.StringIO()
    work = tmp_path / "work"
    try:
        with pytest.raises(StepFailed) as exc:  # `exit 1`: the step's output comes back in the error
            build(recipe, BuildOptions(out_dir=tmp_path / "out", host_toolchain=True, log=log, network=network,
                                       apk_cache_dir=tmp_path / "cache", workspace_dir=work, cleanup=False))
    finally:
        listener.close()
    tail = exc.value.tail
    assert "denied /etc/rootonly" in tail and "READ" not in tail, tail
    assert "sys:" not in tail and "denied /sys/kernel/notes" in tail, tail
    assert "CONNECTED" not in tail and tail.count("refused") == 2, tail
    assert listener.accepted == []
    workspace = work / "x86_64" / "workspace"
    assert (workspace / "uid").read_text().strip() == "1000"
    assert (workspace / "made-here").stat().st_uid == (SANDBOX_ID if os.geteuid() == 0 else os.getuid())
