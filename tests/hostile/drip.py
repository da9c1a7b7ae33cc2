"""A hostile HTTP server: answers every GET with a large Content-Length, then sends one byte
every `interval` seconds (each read succeeds, so no per-read timeout ever fires)."""

from __future__ import annotations

import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Drip(BaseHTTPRequestHandler):
    interval = 1.0

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", str(1 << 20))
        self.end_headers()
        try:
            while True:
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(self.interval)
        except OSError:
            pass

    def log_message(self, *args) -> None:  # quiet
        pass


if __name__ == "__main__":
    Drip.interval = float(sys.argv[2])
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Drip)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()
