"""A Remote Execution API service on loopback for the Bazel tests: Debian's PostgreSQL (as the
`postgres` user, in a fresh data directory), BuildGrid (`bgd server start`) with one instance
serving CAS, ByteStream, action cache and execution, and workers (tests/remote/worker.py) that
run each command under bubblewrap. `tests/remote/install.sh` installs what this needs.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BGD_HOME = Path(os.environ.get("BGD_HOME", "/var/cache/distroless-buildgrid"))
BGD_PYTHON = BGD_HOME / "venv" / "bin" / "python"
BGD = BGD_HOME / "venv" / "bin" / "bgd"
WORKER = Path(__file__).resolve().parent / "worker.py"
INSTANCE = "main"


class ServiceError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceError(f"{what} exited {proc.returncode}: {tail(log)}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise ServiceError(f"{what} did not listen on 127.0.0.1:{port} in {timeout:.0f} s: {tail(log)}")


def tail(log: Path, n: int = 3000) -> str:
    try:
        return log.read_text(errors="replace")[-n:]
    except OSError:
        return "(no log)"


def check_installed() -> None:
    missing = [str(p) for p in (BGD, BGD_PYTHON) if not p.exists()]
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        missing.append("PostgreSQL (initdb)")
    if not shutil.which("bwrap"):
        missing.append("bubblewrap")
    if missing:
        raise ServiceError(f"not installed: {', '.join(missing)} (run `bash tests/remote/install.sh`, "
                           "which `make test-remote` does)")


class Postgres:
    """A throwaway cluster owned by `postgres` (initdb refuses root), trust auth on loopback. Its
    directory is under /var/tmp, not pytest's 0700 /tmp/pytest-of-root (which a later pytest
    session re-locks while this server still needs it)."""

    def __init__(self, root: Path | None = None):
        root = root or Path(tempfile.mkdtemp(prefix="distroless-pg-", dir="/var/tmp"))
        self.root, self.port = root, free_port()
        self.data = root / "data"
        self.bin = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1])
        self.log = root / "postgres.log"

    def _as_postgres(self, *cmd: str) -> subprocess.CompletedProcess:
        pw = pwd.getpwnam("postgres")

        def demote() -> None:
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)

        return subprocess.run(list(cmd), preexec_fn=demote, capture_output=True, text=True, cwd="/",
                              env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"}, timeout=120)

    def start(self) -> "Postgres":
        self.root.mkdir(parents=True, exist_ok=True)
        pw = pwd.getpwnam("postgres")
        os.chown(self.root, pw.pw_uid, pw.pw_gid)
        proc = self._as_postgres(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                                 "--auth=trust", "-E", "UTF8", "--no-sync")
        if proc.returncode:
            raise ServiceError(f"initdb failed: {proc.stderr[-2000:]}")
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        proc = self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(self.log),
                                 "-w", "-t", "60", "start")
        if proc.returncode:
            raise ServiceError(f"pg_ctl start failed: {proc.stderr[-2000:]} {tail(self.log)}")
        proc = self._as_postgres(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                                 "-U", "postgres", "bgd")
        if proc.returncode:
            raise ServiceError(f"createdb failed: {proc.stderr[-2000:]}")
        return self

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/bgd"

    def stop(self) -> None:
        """Immediate shutdown of the postmaster this started (by the pid in its pid file)."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pid = 0
        if pid:
            try:
                os.kill(pid, signal.SIGQUIT)
                for _ in range(100):
                    os.kill(pid, 0)
                    time.sleep(0.1)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)


CONFIG = """
server:
  - !channel
    address: "127.0.0.1:{port}"
    insecure-mode: true

authorization:
  method: none

connections:
  - !sql-connection &sql
    connection-string: {db}
    pool-size: 5
    pool-timeout: 30
    max-overflow: 10

storages:
  - !disk-storage &cas
    path: {cas}

caches:
  - !lru-action-cache &ac
    storage: *cas
    max-cached-refs: 100000
    allow-updates: true
    cache-failed-actions: false

schedulers:
  - !sql-scheduler &scheduler
    sql: *sql
    storage: *cas
    action-cache: *ac
    property-set: !dynamic-property-set
      match-property-keys: []
      wildcard-property-keys: []
    bot-session-keepalive-timeout: 60
    max-execution-timeout: 1200

instances:
  - name: {instance}
    services:
      - !action-cache
        cache: *ac
      - !execution
        scheduler: *scheduler
        operation-stream-keepalive-timeout: 30
      - !cas
        storage: *cas
      - !bytestream
        storage: *cas

thread-pool-size: 40
"""


class BuildGrid:
    def __init__(self, root: Path, db_url: str):
        self.root, self.db_url, self.port = root, db_url, free_port()
        self.proc: subprocess.Popen | None = None
        self.log = root / "bgd.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "BuildGrid":
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "cas").mkdir(exist_ok=True)
        env = {"PATH": f"{BGD.parent}:/usr/bin:/bin", "LC_ALL": "C.UTF-8", "HOME": str(self.root)}
        migrate = subprocess.run([str(BGD), "migrate", "apply", self.db_url], capture_output=True, text=True,
                                 env=env, timeout=300)
        if migrate.returncode:
            raise ServiceError(f"bgd migrate apply failed: {migrate.stderr[-3000:]}")
        config = self.root / "bgd.yml"
        config.write_text(CONFIG.format(port=self.port, db=self.db_url, cas=self.root / "cas", instance=INSTANCE))
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([str(BGD), "server", "start", str(config)], stdout=log,
                                         stderr=subprocess.STDOUT, env=env, cwd=self.root)
        wait_port(self.port, self.proc, "bgd server", self.log, timeout=120)
        return self

    def stop(self) -> None:
        stop(self.proc)


class Worker:
    """tests/remote/worker.py under BuildGrid's interpreter (its generated protos)."""

    def __init__(self, root: Path, server: str, name: str, hide: list[str]):
        self.root, self.server, self.name, self.hide = root, server, name, hide
        self.proc: subprocess.Popen | None = None
        self.log = root / f"{name}.log"

    def start(self) -> "Worker":
        self.root.mkdir(parents=True, exist_ok=True)
        cmd = [str(BGD_PYTHON), "-I", str(WORKER), "--server", self.server, "--instance", INSTANCE,
               "--bot-id", self.name, "--work", str(self.root / self.name)]
        for h in self.hide:
            cmd += ["--hide", h]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"})
        time.sleep(0.5)
        if self.proc.poll() is not None:
            raise ServiceError(f"worker {self.name} exited {self.proc.returncode}: {tail(self.log)}")
        return self

    def stop(self) -> None:
        stop(self.proc)


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


if __name__ == "__main__":  # manual use: start everything and wait (Ctrl-C or SIGTERM stops it)
    def _interrupt(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)
    check_installed()
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/distroless-rexec")
    pg = Postgres().start()
    bgd = BuildGrid(root / "bgd", pg.url).start()
    workers = [Worker(root / "workers", bgd.address, f"w{i}", ["/root", "/home"]).start() for i in range(2)]
    print(f"--remote_executor=grpc://{bgd.address} --remote_instance_name={INSTANCE}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        for w in workers:
            w.stop()
        bgd.stop()
        pg.stop()
