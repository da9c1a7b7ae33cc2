"""A docker token-auth server for a real `docker-registry` (distribution) on loopback.

distribution's `auth: token:` checks a JWT (ES256 here) whose `x5c` header carries a
certificate that chains to its `rootcertbundle`; this server issues such tokens for
Basic-authenticated users (GET, docker's flow) and for refresh tokens (POST
`grant_type=refresh_token`, the identity-token flow). It records every request so tests can
check what credentials were sent where.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

SERVICE = "distroless-test-registry"
ISSUER = "distroless-test-issuer"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenIssuer:
    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "distroless test token signer")])
        now = dt.datetime.now(dt.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self.key, hashes.SHA256()))

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def token(self, subject: str, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            parts = scope.split(":")
            if len(parts) == 3 and parts[0] == "repository":
                access.append({"type": "repository", "name": parts[1], "actions": parts[2].split(",")})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256",
                  "x5c": [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()]}
        claims = {"iss": ISSUER, "sub": subject, "aud": SERVICE, "exp": now + 300, "nbf": now - 10,
                  "iat": now, "jti": uuid.uuid4().hex, "access": access}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


class TokenServer:
    """Users (Basic) and refresh tokens (POST) that may get tokens; everyone else gets 401."""

    def __init__(self, users: dict[str, str], refresh_tokens: dict[str, str]) -> None:
        self.issuer = TokenIssuer()
        self.users = users
        self.refresh_tokens = refresh_tokens  # token -> subject
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a) -> None:  # noqa: ANN002
                pass

            def _answer(self, subject: str | None, scopes: list[str]) -> None:
                if subject is None:
                    self.send_response(401)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}')
                    return
                tok = server.issuer.token(subject, scopes)
                body = json.dumps({"token": tok, "access_token": tok, "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                auth = self.headers.get("Authorization", "")
                server.requests.append({"method": "GET", "auth": auth, "query": q})
                subject = None
                if auth.startswith("Basic "):
                    user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
                    if server.users.get(user) == pw:
                        subject = user
                elif not auth:
                    subject = None
                self._answer(subject, q.get("scope", []))

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(n).decode())
                server.requests.append({"method": "POST", "auth": self.headers.get("Authorization", ""),
                                        "form": form})
                subject = None
                if form.get("grant_type") == ["refresh_token"]:
                    subject = server.refresh_tokens.get((form.get("refresh_token") or [""])[0])
                scopes = " ".join(form.get("scope", [])).split()
                self._answer(subject, scopes)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TokenRegistry:
    """`docker-registry serve` with `auth: token:` trusting `server`'s signing certificate."""

    def __init__(self, base: Path, server: TokenServer) -> None:
        self.base = base
        base.mkdir(parents=True, exist_ok=True)
        (base / "data").mkdir(exist_ok=True)
        (base / "token-ca.pem").write_bytes(server.issuer.cert_pem())
        self.addr = f"127.0.0.1:{free_port()}"
        (base / "config.yml").write_text(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
            f"    rootdirectory: {base / 'data'}\nhttp:\n  addr: {self.addr}\n"
            "auth:\n  token:\n"
            f"    realm: {server.url}\n    service: {SERVICE}\n    issuer: {ISSUER}\n"
            f"    rootcertbundle: {base / 'token-ca.pem'}\n"
        )
        binary = shutil.which("docker-registry") or "/usr/bin/docker-registry"
        self.log = open(base / "registry.log", "ab")
        self.proc = subprocess.Popen([binary, "serve", str(base / "config.yml")], stdout=self.log,
                                     stderr=self.log, env={**os.environ})
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://{self.addr}/v2/", timeout=1)
            except urllib.error.HTTPError as e:
                if e.code == 401 and "Bearer" in e.headers.get("WWW-Authenticate", ""):
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"token-auth docker-registry did not start: {(base / 'registry.log').read_text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
