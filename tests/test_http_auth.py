"""`HTTP_AUTH=basic:HOST:USER:PASS` against a real nginx with basic auth on loopback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from httpserver import free_port
from imagerepo import image_yaml, make_repo


@pytest.fixture(scope="module")
def nginx(tmp_path_factory, peers):
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        pytest.fail("nginx is not installed (tests/peers/peers.sh installs it)")
    root = tmp_path_factory.mktemp("nginx")
    repo, pub = make_repo(root, peers.busybox)
    (root / "htpasswd").write_text("builder:{PLAIN}s3cret-pw\n")
    port = free_port()
    (root / "nginx.conf").write_text(f"""
daemon off;
master_process off;
pid {root}/nginx.pid;
error_log {root}/error.log;
events {{}}
http {{
  access_log off;
  client_body_temp_path {root}/tmp;
  server {{
    listen 127.0.0.1:{port};
    root {repo};
    auth_basic "apk";
    auth_basic_user_file {root}/htpasswd;
  }}
}}
""")
    proc = subprocess.Popen([binary, "-c", str(root / "nginx.conf"), "-p", str(root)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while True:
        try:
            urllib.request.urlopen(url + "/x86_64/APKINDEX.tar.gz", timeout=1)
        except urllib.error.HTTPError as e:
            if e.code == 401:
                break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"nginx did not start: {(root / 'error.log').read_text() if (root / 'error.log').exists() else ''}")
        time.sleep(0.05)
    yield url, pub
    proc.terminate()
    proc.wait(10)


def show(tmp_path: Path, url: str, pub: Path, env: dict) -> subprocess.CompletedProcess:
    (tmp_path / "image.yaml").write_text(image_yaml(url, pub, ["busybox"]))
    return subprocess.run([sys.executable, "-m", "distroless", "image", "show-packages", "image.yaml",
                           "--cache-dir", str(tmp_path / "cache")], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, **env})


def test_without_credentials_the_server_refuses(nginx, tmp_path) -> None:
    url, pub = nginx
    r = show(tmp_path, url, pub, {"HTTP_AUTH": ""})
    assert r.returncode == 1 and "HTTP 401" in r.stderr and "Traceback" not in r.stderr


def test_http_auth_basic_is_sent_to_its_host(nginx, tmp_path) -> None:
    url, pub = nginx
    r = show(tmp_path, url, pub, {"HTTP_AUTH": "basic:127.0.0.1:builder:s3cret-pw"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["test-base 1.0-r0", "busybox 1.36.1-r0"]
    assert "s3cret-pw" not in r.stdout + r.stderr


def test_credentials_for_another_host_are_not_sent(nginx, tmp_path) -> None:
    url, pub = nginx
    r = show(tmp_path, url, pub, {"HTTP_AUTH": "basic:packages.example:builder:s3cret-pw"})
    assert r.returncode == 1 and "HTTP 401" in r.stderr
