"""A real HTTP server process on loopback serving a directory (python's http.server)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


# python's http.server with a listen backlog for a build's parallel downloads (the default of 5
# resets connections when BuildKit fetches a hundred packages at once); one log line per request
_SERVER = """
import functools, http.server, sys
class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 512
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[2])
Server(("127.0.0.1", int(sys.argv[1])), handler).serve_forever()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StaticServer:
    def __init__(self, root: Path, port: int | None = None, access_log: Path | None = None):
        self.root = root
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        self.access_log = access_log  # http.server writes one line per request to stderr

    def gets(self, suffix: str = "") -> list[str]:
        """Request lines of the GETs served so far (whose path ends with `suffix`)."""
        if self.access_log is None or not self.access_log.exists():
            return []
        lines = self.access_log.read_text(errors="replace").splitlines()
        return [l for l in lines if '"GET ' in l and l.split('"GET ', 1)[1].split(" ", 1)[0].endswith(suffix)]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "StaticServer":
        log = open(self.access_log, "ab") if self.access_log else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen([sys.executable, "-u", "-c", _SERVER, str(self.port), str(self.root)],
                                         stdout=subprocess.DEVNULL, stderr=log)
        finally:
            if self.access_log:
                log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + "/", timeout=1).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"http.server on port {self.port} exited with {self.proc.returncode}")
                time.sleep(0.05)
        raise RuntimeError(f"http.server on port {self.port} did not answer within 15 s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
