"""Errors that name the thing: a refused connection names the URL and says "connection
refused" (never a `requests` exception repr)."""

from __future__ import annotations

import socket
import subprocess
import sys

from test_sign import tiny_layout


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


def _run(tmp_path, *args) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "distroless", *map(str, args)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)


def _one_line(proc) -> str:
    assert proc.returncode == 1, proc
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("distroless: error: "), proc.stderr
    assert "HTTPConnectionPool" not in lines[0] and "Errno" not in lines[0] and "Max retries" not in lines[0]
    return lines[0]


def test_refused_repository_is_named(tmp_path):
    port = _closed_port()
    (tmp_path / "image.yaml").write_text(
        f"contents:\n  repositories: [http://127.0.0.1:{port}/alpine/v3.20/main]\n  packages: [busybox]\n"
        "archs: [x86_64]\n")
    line = _one_line(_run(tmp_path, "image", "lock", "image.yaml", "--ignore-signatures"))
    assert f"http://127.0.0.1:{port}/alpine/v3.20/main" in line and "connection refused" in line


def test_refused_registry_is_named(tmp_path):
    port = _closed_port()
    tiny_layout(tmp_path / "img", text=b"refused")
    line = _one_line(_run(tmp_path, "push", tmp_path / "img", f"127.0.0.1:{port}/some/repo:v1"))
    assert f"registry 127.0.0.1:{port}" in line and "connection refused" in line
