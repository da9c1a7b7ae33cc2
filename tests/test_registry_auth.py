"""Registry credentials as docker finds them, against a real token-auth registry.

`docker-registry` (distribution 2.8) runs with `auth: token:` trusting the signing certificate
of the token server in `tokenauth.py`. Credentials come from docker's config.json through
`credHelpers` / `credsStore` (the `docker-credential-*` protocol, spoken by
`credhelper/docker-credential-dltest`) or `auths` (`auth`, `identitytoken`). Real cosign reads
the same config and helper, so signatures cross between the two on the authenticated registry.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from pathlib import Path

import pytest

from distroless.registry.client import RegistryClient, _may_send_secret, credentials_from_docker_config
from test_cosign_interop import assert_clean_failure, cosign, ours
from test_sign import tiny_layout
from tokenauth import TokenRegistry, TokenServer

HELPER_DIR = Path(__file__).parent / "credhelper"
USER, PASSWORD, REFRESH = "alice", "s3cret-pw-for-alice", "refresh-token-of-alice"


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory):
    server = TokenServer({USER: PASSWORD}, {REFRESH: USER})
    reg = TokenRegistry(tmp_path_factory.mktemp("token-registry"), server)
    yield reg, server
    reg.stop()
    server.close()


def _env(tmp_path: Path, config: dict, store: dict | None = None) -> dict[str, str]:
    docker = tmp_path / "docker"
    docker.mkdir(exist_ok=True)
    (docker / "config.json").write_text(json.dumps(config))
    (tmp_path / "store.json").write_text(json.dumps(store or {}))
    e = dict(os.environ)
    e.update(DOCKER_CONFIG=str(docker), DL_CRED_STORE=str(tmp_path / "store.json"),
             DL_CRED_LOG=str(tmp_path / "helper.log"), PATH=f"{HELPER_DIR}:{os.environ['PATH']}",
             COSIGN_PASSWORD="auth-pw", TUF_ROOT=str(tmp_path / "tuf"), SIGSTORE_NO_CACHE="1")
    return e


def _helper_log(tmp_path: Path) -> list[dict]:
    p = tmp_path / "helper.log"
    return [json.loads(l) for l in p.read_text().splitlines()] if p.exists() else []


def _push(env, tmp_path, addr) -> tuple[str, str]:
    root = tmp_path / f"img-{uuid.uuid4().hex[:6]}"
    digest = tiny_layout(root, text=uuid.uuid4().bytes)
    ref = f"{addr}/auth/{uuid.uuid4().hex[:10]}:v1"
    out = ours(env, tmp_path, "push", root, ref)
    assert digest in out.stdout
    return ref, digest


@pytest.mark.parametrize("how", ["credHelpers", "credsStore"])
def test_helper_credentials_push_sign_verify_with_cosign(peers, tmp_path, token_registry, how):
    reg, server = token_registry
    config = {"credHelpers": {reg.addr: "dltest"}} if how == "credHelpers" else {"credsStore": "dltest"}
    env = _env(tmp_path, config, {reg.addr: {"Username": USER, "Secret": PASSWORD}})
    before = len(server.requests)
    ref, digest = _push(env, tmp_path, reg.addr)
    assert {"verb": "get", "server": reg.addr} in _helper_log(tmp_path)
    basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert server.requests[before:] and all(r["auth"] == basic for r in server.requests[before:])
    # cosign (ggcr's keychain) uses the same config + helper: it verifies our signature, we verify its
    ours(env, tmp_path, "generate-key-pair")
    ours(env, tmp_path, "sign", "--key", "cosign.key", ref)
    cosign(peers, env, tmp_path, "verify", "--key", "cosign.pub", "--insecure-ignore-tlog=true",
           "--allow-insecure-registry", ref)
    cosign(peers, env, tmp_path, "sign", "--yes", "--key", "cosign.key", "--tlog-upload=false",
           "--allow-insecure-registry", "-a", "by=cosign", f"{ref.rsplit(':', 1)[0]}@{digest}")
    out = ours(env, tmp_path, "verify", "--key", "cosign.pub", "-a", "by=cosign", ref)
    assert json.loads(out.stdout)[0]["optional"] == {"by": "cosign"}


@pytest.mark.parametrize("where", ["helper", "auths"])
def test_identity_token_uses_refresh_grant(peers, tmp_path, token_registry, where):
    reg, server = token_registry
    if where == "helper":
        env = _env(tmp_path, {"credsStore": "dltest"}, {reg.addr: {"Username": "<token>", "Secret": REFRESH}})
    else:
        env = _env(tmp_path, {"auths": {reg.addr: {"identitytoken": REFRESH}}})
    before = len(server.requests)
    _push(env, tmp_path, reg.addr)
    seen = server.requests[before:]
    assert seen and all(r["method"] == "POST" and r["auth"] == "" for r in seen)
    assert all(r["form"]["grant_type"] == ["refresh_token"] and r["form"]["refresh_token"] == [REFRESH]
               for r in seen)


def test_bad_or_missing_credentials_fail_cleanly(tmp_path, token_registry):
    reg, _ = token_registry
    root = tmp_path / "img"
    tiny_layout(root, text=b"x")
    env = _env(tmp_path, {"auths": {reg.addr: {"auth": base64.b64encode(f"{USER}:wrong".encode()).decode()}}})
    proc = ours(env, tmp_path, "push", root, f"{reg.addr}/auth/denied:v1", check=False)
    assert_clean_failure(proc, "token request", "401")
    assert "wrong" not in proc.stderr
    env = _env(tmp_path, {})
    proc = ours(env, tmp_path, "push", root, f"{reg.addr}/auth/denied:v1", check=False)
    assert_clean_failure(proc, "401")
    env = _env(tmp_path, {"credsStore": "nosuchhelper"})
    proc = ours(env, tmp_path, "push", root, f"{reg.addr}/auth/denied:v1", check=False)
    assert_clean_failure(proc, "docker-credential-nosuchhelper", "not on PATH")


def test_helper_lookup_order_and_not_found(tmp_path, monkeypatch):
    """credHelpers wins over credsStore; a helper without an entry falls back to auths."""
    env = _env(tmp_path, {"credsStore": "dltest", "credHelpers": {"reg.example:5000": "dltest"},
                          "auths": {"other.example": {"auth": base64.b64encode(b"bob:pw").decode()}}},
               {"reg.example:5000": {"Username": "carol", "Secret": "pw2"}})
    for k in ("DL_CRED_STORE", "DL_CRED_LOG", "PATH"):
        monkeypatch.setenv(k, env[k])
    config = tmp_path / "docker" / "config.json"
    got = credentials_from_docker_config("reg.example:5000", config)
    assert (got.username, got.password) == ("carol", "pw2")
    got = credentials_from_docker_config("other.example", config)  # helper says not found -> auths
    assert (got.username, got.password) == ("bob", "pw")
    assert [l["server"] for l in _helper_log(tmp_path)] == ["reg.example:5000", "other.example"]
    assert "pw2" not in repr(RegistryClient("reg.example:5000", docker_config=config).credentials)


def test_secrets_not_sent_to_plain_http_elsewhere():
    assert _may_send_secret("https://auth.example/token", "reg.example")
    assert _may_send_secret("http://127.0.0.1:9/token", "reg.example")
    assert _may_send_secret("http://reg.example:8080/token", "reg.example:5000")
    assert not _may_send_secret("http://evil.example/token", "reg.example")
    assert not _may_send_secret("file:///etc/passwd", "reg.example")
