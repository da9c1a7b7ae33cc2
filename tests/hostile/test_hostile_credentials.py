"""Item 2: credentials go only to the host they were configured for.

Two real nginx servers on loopback: A (127.0.0.1, basic auth, the host the credentials are for)
fronts the real registry peer but rewrites every `Location` to B (127.0.0.2), and redirects every
package/key/index download to B. B serves the same things and logs the `Authorization` header of
every request. Push, publish, fetch and key downloads must all succeed through B and B must never
see a credential.
"""

from __future__ import annotations

import base64
import json
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

USER, PASSWORD = "builder", "s3cret-pw"


def _nginx(root: Path, name: str, server: str) -> subprocess.Popen:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        pytest.fail("nginx is not installed (tests/peers/peers.sh installs it)")
    d = root / name
    (d / "tmp").mkdir(parents=True)
    (d / "nginx.conf").write_text(f"""
daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{}}
http {{
  log_format auth '"$http_authorization" $request';
  access_log {d}/access.log auth;
  client_body_temp_path {d}/tmp;
  proxy_temp_path {d}/tmp;
  client_max_body_size 0;
  server {{
{server}
  }}
}}
""")
    return subprocess.Popen([binary, "-c", str(d / "nginx.conf"), "-p", str(d)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait(url: str, proc: subprocess.Popen, root: Path) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"nginx did not start: {root}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def servers(tmp_path_factory, peers):
    root = tmp_path_factory.mktemp("creds")
    repo, pub = make_repo(root, peers.busybox)
    shutil.copy(pub, repo / pub.name)
    (root / "htpasswd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    pa, pb = free_port(), free_port()
    a, b = f"127.0.0.1:{pa}", f"127.0.0.2:{pb}"
    upstream = f"http://{peers.registry}"
    proxy = f"proxy_pass {upstream}; proxy_set_header Host $http_host; proxy_request_buffering off;"
    pb_proc = _nginx(root, "b", f"""
    listen {b};
    location /v2/ {{ {proxy} }}
    location / {{ root {repo}; }}
""")
    pa_proc = _nginx(root, "a", f"""
    listen {a};
    auth_basic "creds";
    auth_basic_user_file {root}/htpasswd;
    location /v2/ {{ {proxy} proxy_redirect http://{a}/ http://{b}/; }}
    location / {{ return 302 http://{b}$request_uri; }}
""")
    _wait(f"http://{b}/", pb_proc, root)
    _wait(f"http://{a}/", pa_proc, root)
    docker = root / "docker"
    docker.mkdir()
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (docker / "config.json").write_text(json.dumps({"auths": {a: {"auth": token}}}))
    yield {"a": a, "b": b, "root": root, "repo": repo, "pub": pub, "docker": docker}
    for p in (pa_proc, pb_proc):
        p.terminate()
        p.wait(10)


def _log(servers, name: str) -> list[str]:
    path = servers["root"] / name / "access.log"
    return path.read_text().splitlines() if path.exists() else []


def _run(servers, tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full = {**os.environ, "DOCKER_CONFIG": str(servers["docker"]), "HTTP_AUTH": "", **(env or {})}
    return subprocess.run([sys.executable, "-m", "distroless", *args], cwd=tmp_path, capture_output=True,
                          text=True, env=full, timeout=300)


def _assert_b_saw_no_credentials(servers, before: int, path_part: str) -> None:
    lines = _log(servers, "b")[before:]
    reached = [ln for ln in lines if path_part in ln]
    assert reached, f"B was never reached for {path_part!r}: {lines}"
    leaked = [ln for ln in lines if not ln.startswith('"-"') and not ln.startswith('""')]
    assert not leaked, f"B received credentials: {leaked}"
    assert any(ln.startswith('"Basic ') for ln in _log(servers, "a")), "A never got the credentials"


def _layout(servers, tmp_path: Path) -> Path:
    (tmp_path / "image.yaml").write_text(image_yaml(str(servers["repo"]), servers["pub"], ["busybox"]))
    out = tmp_path / "layout"
    out.mkdir()
    r = _run(servers, tmp_path, "image", "build", "image.yaml", "hostile/creds:v1", str(out),
             "--cache-dir", str(tmp_path / "cache"))
    assert r.returncode == 0, r.stderr
    return out


def test_push_follows_a_cross_host_location_without_credentials(servers, tmp_path) -> None:
    layout = _layout(servers, tmp_path)
    before = len(_log(servers, "b"))
    r = _run(servers, tmp_path, "push", str(layout), f"{servers['a']}/hostile/push:v1")
    assert r.returncode == 0, r.stderr
    assert PASSWORD not in r.stdout + r.stderr
    _assert_b_saw_no_credentials(servers, before, "/blobs/uploads/")


def test_publish_follows_a_cross_host_location_without_credentials(servers, tmp_path) -> None:
    (tmp_path / "image.yaml").write_text(image_yaml(str(servers["repo"]), servers["pub"], ["busybox"]))
    before = len(_log(servers, "b"))
    r = _run(servers, tmp_path, "image", "publish", "image.yaml", f"{servers['a']}/hostile/publish:v1",
             "--cache-dir", str(tmp_path / "cache"))
    assert r.returncode == 0, r.stderr
    _assert_b_saw_no_credentials(servers, before, "/blobs/uploads/")


def test_fetch_and_keys_follow_a_redirect_without_credentials(servers, tmp_path) -> None:
    a = servers["a"]
    (tmp_path / "image.yaml").write_text(
        image_yaml(f"http://{a}", Path("unused"), ["busybox"]).replace(
            "keyring: [unused]", f"keyring: [http://{a}/{servers['pub'].name}]"))
    before = len(_log(servers, "b"))
    r = _run(servers, tmp_path, "image", "build", "image.yaml", "hostile/fetch:v1", str(tmp_path / "out.tar"),
             "--cache-dir", str(tmp_path / "cache"), env={"HTTP_AUTH": f"basic:127.0.0.1:{USER}:{PASSWORD}"})
    assert r.returncode == 0, r.stderr
    lines = _log(servers, "b")[before:]
    for part in (".rsa.pub", "APKINDEX.tar.gz", ".apk"):
        assert any(part in ln for ln in lines), f"B never served {part}: {lines}"
    _assert_b_saw_no_credentials(servers, before, ".apk")
