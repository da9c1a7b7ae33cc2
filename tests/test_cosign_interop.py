"""Interop with the real peers: a `docker-registry` (distribution 2.8) and cosign 2.5.

Our pushes + signatures are checked by real `cosign verify` / `verify-attestation` (registry and
`--local-image`); real cosign's signatures are checked by our `verify`; failures go through the
CLI (`python -m distroless`) and must give exit 1 and a
one-line error. The interrupted-push cases use a private registry (fixed `http.secret`, so upload
state survives a restart) behind a loopback TCP proxy this test controls.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from distroless.errors import RegistryError
from distroless.oci.image import OCI_MANIFEST, sha256_digest
from distroless.registry.client import BlobSource, RegistryClient
from distroless.sign.push import push_attachments, push_layout
from distroless.registry.reference import parse_reference
from distroless.sign import attach

from test_sign import tiny_layout

PY = sys.executable
SPDX = {
    "spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT", "name": "tiny",
    "documentNamespace": "https://example.invalid/tiny", "packages": [],
    "creationInfo": {"created": "1970-01-01T00:00:00Z", "creators": ["Tool: distroless-tests"]},
}


def _env(tmp: Path) -> dict[str, str]:
    """Password in the environment; an empty docker config and TUF root of our own."""
    (tmp / "docker").mkdir()
    e = dict(os.environ)
    e.update(COSIGN_PASSWORD="interop-pw", DOCKER_CONFIG=str(tmp / "docker"),
             TUF_ROOT=str(tmp / "tuf"), SIGSTORE_NO_CACHE="1")
    return e


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    return _env(tmp_path)


def run(argv, env, cwd, check=True, timeout=120) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"`{' '.join(map(str, argv))}` exited {proc.returncode}\n"
                             f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
    return proc


def ours(env, cwd, *args, check=True):
    return run([PY, "-m", "distroless", *map(str, args)], env, cwd, check)


def cosign(peers, env, cwd, *args, check=True):
    return run([peers.cosign, *map(str, args)], env, cwd, check)


def assert_clean_failure(proc, *needles):
    assert proc.returncode == 1, proc
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("distroless: error: "), proc.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])


@pytest.fixture(scope="module")
def keypair(tmp_path_factory):
    """One key pair of ours (scrypt-encrypted, password interop-pw) for the module: the tests
    only read it; those that need another key make their own."""
    tmp = tmp_path_factory.mktemp("keypair")
    ours(_env(tmp), tmp, "generate-key-pair")
    return tmp / "cosign.key", tmp / "cosign.pub"


@pytest.fixture(scope="module")
def other_keypair(tmp_path_factory):
    """Another key pair of ours: the key a signature must not verify with."""
    tmp = tmp_path_factory.mktemp("other-keypair")
    ours(_env(tmp), tmp, "generate-key-pair")
    return tmp / "cosign.key", tmp / "cosign.pub"


@pytest.fixture
def pushed(peers, tmp_path):
    """A tiny image pushed by our client: (reference with tag, digest)."""
    root = tmp_path / "img"
    digest = tiny_layout(root, text=uuid.uuid4().hex.encode())
    ref = parse_reference(f"{peers.registry}/dl-sign/{uuid.uuid4().hex[:12]}:v1")
    result = push_layout(root, ref)
    assert result.digest == digest
    return ref, digest


def registry_get(peers_registry: str, path: str, accept: str = OCI_MANIFEST):
    req = urllib.request.Request(f"http://{peers_registry}{path}", headers={"Accept": accept})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.headers, resp.read()


# --------------------------------------------------------------------------- ours -> cosign


def test_our_signature_verifies_with_cosign(peers, tmp_path, env, keypair, other_keypair, pushed):
    key, pub = keypair
    ref, digest = pushed
    ours(env, tmp_path, "sign", "--key", key, "-a", "build=42", f"{ref}")
    # the registry holds exactly the classic layout
    headers, raw = registry_get(ref.registry, f"/v2/{ref.repository}/manifests/{attach.attachment_tag(digest, 'sig')}")
    assert headers["Content-Type"] == OCI_MANIFEST
    layer = json.loads(raw)["layers"][0]
    assert layer["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
    _, body = registry_get(ref.registry, f"/v2/{ref.repository}/blobs/{layer['digest']}", "*/*")
    assert sha256_digest(body) == layer["digest"]
    assert json.loads(body)["critical"]["image"]["docker-manifest-digest"] == digest
    assert json.loads(body)["critical"]["identity"]["docker-reference"] == f"{ref.name}:v1"

    out = cosign(peers, env, tmp_path, "verify", "--key", pub, "--insecure-ignore-tlog=true",
                 "--allow-insecure-registry", "-a", "build=42", f"{ref.name}@{digest}")
    assert json.loads(out.stdout)[0]["optional"] == {"build": "42"}
    # and cosign verifying with another key refuses it
    bad = cosign(peers, env, tmp_path, "verify", "--key", other_keypair[1], "--insecure-ignore-tlog=true",
                 "--allow-insecure-registry", f"{ref.name}@{digest}", check=False)
    assert bad.returncode != 0


def test_our_attestation_verifies_with_cosign(peers, tmp_path, env, keypair, pushed):
    key, pub = keypair
    ref, digest = pushed
    (tmp_path / "sbom.spdx.json").write_text(json.dumps(SPDX))
    ours(env, tmp_path, "attest", "--key", key, "--type", "spdxjson", "--predicate", "sbom.spdx.json",
         f"{ref.name}@{digest}")
    out = cosign(peers, env, tmp_path, "verify-attestation", "--key", pub, "--insecure-ignore-tlog=true",
                 "--allow-insecure-registry", "--type", "spdxjson", f"{ref.name}@{digest}")
    envelope = json.loads(out.stdout.splitlines()[0])  # cosign prints the verified envelope
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["predicateType"] == "https://spdx.dev/Document"
    assert statement["subject"][0]["digest"]["sha256"] == digest.split(":")[1]
    wrong = cosign(peers, env, tmp_path, "verify-attestation", "--key", pub, "--insecure-ignore-tlog=true",
                   "--allow-insecure-registry", "--type", "cyclonedx", f"{ref.name}@{digest}", check=False)
    assert wrong.returncode != 0  # cosign's type filter sees our predicateType exactly
    mine = ours(env, tmp_path, "verify-attestation", "--key", pub, "--type", "spdxjson", f"{ref.name}@{digest}")
    assert mine.stdout == out.stdout  # the verified envelopes, one per line, as cosign prints them


@pytest.mark.parametrize("archs", [("amd64",), ("amd64", "arm64")])
def test_signed_layout_passes_cosign_local_image(peers, tmp_path, env, keypair, archs):
    key, pub = keypair
    root = tmp_path / "layout"
    digest = tiny_layout(root, text=uuid.uuid4().hex.encode(), archs=archs)
    repo = f"{peers.registry}/dl-sign/{uuid.uuid4().hex[:12]}"
    (tmp_path / "sbom.spdx.json").write_text(json.dumps(SPDX))
    out = ours(env, tmp_path, "sign", "--key", key, "--layout", root, "--identity", f"{repo}:v1")
    assert digest in out.stdout
    ours(env, tmp_path, "attest", "--key", key, "--layout", root, "--type", "spdxjson",
         "--predicate", "sbom.spdx.json")
    cosign(peers, env, tmp_path, "verify", "--local-image", "--key", pub, "--insecure-ignore-tlog=true", root)
    cosign(peers, env, tmp_path, "verify-attestation", "--local-image", "--key", pub,
           "--insecure-ignore-tlog=true", "--type", "spdxjson", root)
    ours(env, tmp_path, "verify", "--key", pub, "--layout", root)
    # pushing the signed layout carries the signatures to the .sig/.att tags
    push = ours(env, tmp_path, "push", root, f"{repo}:v1")
    assert digest in push.stdout
    cosign(peers, env, tmp_path, "verify", "--key", pub, "--insecure-ignore-tlog=true",
           "--allow-insecure-registry", f"{repo}:v1")
    cosign(peers, env, tmp_path, "verify-attestation", "--key", pub, "--insecure-ignore-tlog=true",
           "--allow-insecure-registry", "--type", "spdxjson", f"{repo}@{digest}")


# --------------------------------------------------------------------------- cosign -> ours


def test_cosign_signature_verifies_with_ours(peers, tmp_path, env, pushed):
    ref, digest = pushed
    cosign(peers, env, tmp_path, "generate-key-pair")
    key, pub = tmp_path / "cosign.key", tmp_path / "cosign.pub"
    assert key.read_text().startswith("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----")
    cosign(peers, env, tmp_path, "sign", "--yes", "--key", key, "--tlog-upload=false",
           "--allow-insecure-registry", "-a", "team=qa", f"{ref.name}@{digest}")
    out = ours(env, tmp_path, "verify", "--key", pub, "-a", "team=qa", f"{ref.name}@{digest}")
    assert digest in out.stdout and '"team":"qa"' in out.stdout
    ours(env, tmp_path, "verify", "--key", pub, f"{ref}")  # by tag
    # we append to cosign's .sig manifest with cosign's own key file; both signatures stay
    ours(env, tmp_path, "sign", "--key", key, f"{ref.name}@{digest}")
    _, raw = registry_get(ref.registry, f"/v2/{ref.repository}/manifests/{attach.attachment_tag(digest, 'sig')}")
    assert len(json.loads(raw)["layers"]) == 2
    out = ours(env, tmp_path, "verify", "--key", pub, f"{ref.name}@{digest}")
    assert len(json.loads(out.stdout)) == 2
    cosign(peers, env, tmp_path, "verify", "--key", pub, "--insecure-ignore-tlog=true",
           "--allow-insecure-registry", f"{ref.name}@{digest}")


def test_attachments_not_duplicated(peers, pushed):
    ref, digest = pushed
    client = RegistryClient(ref.registry)
    layer = attach.signature_attachment(b'{"x":1}', "c2ln")
    new = [(layer.descriptor(), BlobSource.of(layer.payload))]
    first = push_attachments(client, ref.repository, digest, "sig", new)
    second = push_attachments(client, ref.repository, digest, "sig", new)
    assert first == second
    m = client.get_manifest(ref.repository, attach.attachment_tag(digest, "sig"))
    assert len(json.loads(m.raw)["layers"]) == 1


def test_mount_from_other_repository(peers, tmp_path, pushed):
    ref, digest = pushed
    root = tmp_path / "img"  # the layout `pushed` made
    target = parse_reference(f"{ref.registry}/dl-sign/{uuid.uuid4().hex[:12]}:m")
    result = push_layout(root, target, mount_from=[ref.repository])
    assert set(result.blobs.values()) == {"mounted"}
    again = push_layout(root, target)
    assert set(again.blobs.values()) == {"exists"}


# --------------------------------------------------------------------------- failures via the CLI


def test_wrong_key_fails(peers, tmp_path, env, keypair, other_keypair, pushed):
    key, _ = keypair
    ref, digest = pushed
    ours(env, tmp_path, "sign", "--key", key, f"{ref}")
    proc = ours(env, tmp_path, "verify", "--key", other_keypair[1], f"{ref}", check=False)
    assert_clean_failure(proc, "no valid signature", "does not verify")


def _rewrite_sig(client, repo, digest_from, digest_to, mutate=lambda b: b):
    """Copy the .sig manifest of `digest_from` to `digest_to`'s tag, optionally tampering with
    its payload blob (uploading the modified blob and pointing the layer at it)."""
    m = client.get_manifest(repo, attach.attachment_tag(digest_from, "sig"))
    layers = attach.parse_attachment_manifest(m.raw, "sig")
    new_layers = []
    for d in layers:
        body = mutate(client.get_blob(repo, d.digest))
        src = attach.Attachment(body, d.media_type, dict(d.annotations))
        client.push_blob(repo, src.digest, BlobSource.of(body))
        new_layers.append(src.descriptor())
    am = attach.build_attachment_manifest(new_layers)
    client.push_blob(repo, sha256_digest(am.config), BlobSource.of(am.config))
    client.put_manifest(repo, attach.attachment_tag(digest_to, "sig"), am.manifest, OCI_MANIFEST)


def test_tampered_payload_fails_ours_and_cosign(peers, tmp_path, env, keypair, pushed):
    key, pub = keypair
    ref, digest = pushed
    ours(env, tmp_path, "sign", "--key", key, f"{ref}")
    client = RegistryClient(ref.registry)
    _rewrite_sig(client, ref.repository, digest, digest, lambda b: b.replace(b":v1", b":v2"))
    proc = ours(env, tmp_path, "verify", "--key", pub, f"{ref.name}@{digest}", check=False)
    assert_clean_failure(proc, "does not verify over the payload")
    bad = cosign(peers, env, tmp_path, "verify", "--key", pub, "--insecure-ignore-tlog=true",
                 "--allow-insecure-registry", f"{ref.name}@{digest}", check=False)
    assert bad.returncode != 0


def test_manifest_digest_mismatch_fails(peers, tmp_path, env, keypair, pushed):
    key, pub = keypair
    ref, digest = pushed
    ours(env, tmp_path, "sign", "--key", key, f"{ref}")
    root2 = tmp_path / "img2"
    digest2 = tiny_layout(root2, text=b"another image")
    push_layout(root2, ref.with_tag("v2"))
    client = RegistryClient(ref.registry)
    _rewrite_sig(client, ref.repository, digest, digest2)  # a valid signature, for the other digest
    proc = ours(env, tmp_path, "verify", "--key", pub, f"{ref.name}:v2", check=False)
    assert_clean_failure(proc, f"payload signs {digest}", f"image digest is {digest2}")
    bad = cosign(peers, env, tmp_path, "verify", "--key", pub, "--insecure-ignore-tlog=true",
                 "--allow-insecure-registry", f"{ref.name}@{digest2}", check=False)
    assert bad.returncode != 0


def test_wrong_password_and_corrupt_key(peers, tmp_path, env, keypair, pushed):
    key, _ = keypair
    ref, _ = pushed
    proc = ours(dict(env, COSIGN_PASSWORD="not-it"), tmp_path, "sign", "--key", key, f"{ref}", check=False)
    assert_clean_failure(proc, str(key), "wrong password")
    assert "not-it" not in proc.stderr + proc.stdout
    corrupt = tmp_path / "corrupt.key"
    corrupt.write_bytes(key.read_bytes()[:120] + b"\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    proc = ours(env, tmp_path, "sign", "--key", corrupt, f"{ref}", check=False)
    assert_clean_failure(proc, str(corrupt))
    # real cosign refuses our key with the wrong password too (same file format)
    bad = cosign(peers, dict(env, COSIGN_PASSWORD="not-it"), tmp_path, "sign", "--yes", "--key", key,
                 "--tlog-upload=false", "--allow-insecure-registry", f"{ref}", check=False)
    assert bad.returncode != 0


def test_verify_unsigned_and_missing(peers, tmp_path, env, keypair, pushed):
    _, pub = keypair
    ref, _ = pushed
    proc = ours(env, tmp_path, "verify", "--key", pub, f"{ref}", check=False)
    assert_clean_failure(proc, "no signatures found")
    proc = ours(env, tmp_path, "verify", "--key", pub, f"{ref.name}:nope", check=False)
    assert_clean_failure(proc, "nope")


# --------------------------------------------------------------------------- interrupted pushes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    """A private `docker-registry serve` on a fixed port + storage, restartable after kill -9."""

    def __init__(self, base: Path):
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.base = base
        (base / "data").mkdir(parents=True)
        self.config = base / "config.yml"
        self.config.write_text(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
            f"    rootdirectory: {base / 'data'}\nhttp:\n  addr: {self.addr}\n"
            "  secret: distroless-interop-fixed-secret\n"
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        binary = shutil.which("docker-registry") or "/usr/bin/docker-registry"
        log = open(self.base / "registry.log", "ab")
        self.proc = subprocess.Popen([binary, "serve", str(self.config)], stdout=log, stderr=log)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://{self.addr}/v2/", timeout=1):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        raise AssertionError(f"docker-registry did not start: {(self.base / 'registry.log').read_text()}")

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill9()


@pytest.fixture
def own_registry(tmp_path):
    reg = Registry(tmp_path / "registry")
    reg.start()
    yield reg
    reg.stop()


REQUEST_START = re.compile(rb"(?:GET|HEAD|POST|PUT|PATCH|DELETE) /v2/")


class CuttingProxy:
    """Loopback TCP proxy to `upstream_port` that drops one connection (both ways) once
    `cut_after` bytes client->registry have passed: mid-request at exactly that byte, or, with
    `at_request=True`, at the first request that starts after it (none of its bytes forwarded).
    `on_cut` runs in the proxy thread before the connection drops (kill or restart the registry).
    Use it as a context manager: leaving re-raises any error a helper thread hit."""

    def __init__(self, upstream_port: int, cut_after: int, *, at_request: bool = False,
                 on_cut: Callable[[], None] | None = None):
        self.upstream = upstream_port
        self.cut_after = cut_after
        self.at_request = at_request
        self.on_cut = on_cut
        self.sent = 0  # client->registry bytes forwarded, in total
        self.sent_at_cut: int | None = None
        self.errors: list[BaseException] = []
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.addr = f"127.0.0.1:{self.port}"
        self.closed = False
        self._spawn(self._accept)

    @property
    def cut(self) -> bool:
        return self.sent_at_cut is not None

    @property
    def sent_after_cut(self) -> int:
        assert self.sent_at_cut is not None, "the proxy never cut the connection"
        return self.sent - self.sent_at_cut

    def _spawn(self, target, *args) -> None:
        def guarded() -> None:
            try:
                target(*args)
            except BaseException as e:  # surfaced by __exit__, never lost in a thread
                self.errors.append(e)
        threading.Thread(target=guarded, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream))
            except OSError:  # the registry is down: the client sees a dropped connection
                client.close()
                continue
            self._spawn(self._pump, client, upstream, True)
            self._spawn(self._pump, upstream, client, False)

    def _keep(self, data: bytes) -> int | None:
        """How many bytes of `data` to forward before cutting, or None to forward it all."""
        if self.cut or self.sent + len(data) <= self.cut_after and not self.at_request:
            return None
        if not self.at_request:
            return self.cut_after - self.sent
        return 0 if self.sent >= self.cut_after and REQUEST_START.match(data) else None

    def _pump(self, src: socket.socket, dst: socket.socket, counting: bool) -> None:
        try:
            while data := src.recv(16384):
                if counting:
                    with self.lock:
                        keep = self._keep(data)
                        if keep is not None:
                            dst.sendall(data[:keep])
                            self.sent += keep
                            self.sent_at_cut = self.sent
                            if self.on_cut:
                                self.on_cut()
                            return
                        self.sent += len(data)
                dst.sendall(data)
        except OSError:
            pass  # the other direction was cut or the peer went away: expected
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def __enter__(self) -> CuttingProxy:
        return self

    def __exit__(self, *exc) -> None:
        self.closed = True
        self.sock.close()
        if self.errors and exc[0] is None:
            raise AssertionError(f"proxy helper thread failed: {self.errors!r}") from self.errors[0]


def big_layout(root: Path, size: int) -> str:
    """An image whose single layer is `size` bytes of incompressible data."""
    return tiny_layout(root, text=os.urandom(size))


BIG = 600_000  # the layer: 10 chunks of 64 KiB
CHUNK = 64 << 10


def layer_digest(root: Path) -> str:
    """The one layer of a `tiny_layout` image, found through its index and manifest."""
    index = json.loads((root / "index.json").read_text())
    m = index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads((root / "blobs" / "sha256" / m).read_text())
    (layer,) = manifest["layers"]
    return layer["digest"]


def assert_complete(client: RegistryClient, repo: str, tag: str, digest: str) -> None:
    m = client.get_manifest(repo, tag)
    assert m.digest == digest
    obj = json.loads(m.raw)
    for d in [obj["config"], *obj["layers"]]:
        assert sha256_digest(client.get_blob(repo, d["digest"])) == d["digest"]


def assert_resumed(client: RegistryClient, proxy: CuttingProxy, layer: str) -> None:
    """The layer's upload continued where the registry stopped: an offset > 0, no restart, and
    fewer bytes sent after the cut than the layer holds."""
    events = client.upload_events
    offsets = [int(e.rsplit(" ", 1)[1]) for e in events if e.startswith(f"resumed {layer} at ")]
    assert offsets and all(o > 0 for o in offsets), events
    assert not any(e.startswith("restarted") for e in events), events
    assert proxy.sent_after_cut < BIG, (proxy.sent_after_cut, events)


def test_push_cut_between_chunks_resumes(own_registry, tmp_path):
    """The connection drops as the PATCH after byte 250,000 starts: the registry holds whole
    chunks, the client asks for its offset and sends only the rest."""
    root = tmp_path / "big"
    digest = big_layout(root, BIG)
    with CuttingProxy(own_registry.port, cut_after=250_000, at_request=True) as proxy:
        client = RegistryClient(proxy.addr, chunk_size=CHUNK, backoff=0.05)
        result = push_layout(root, parse_reference(f"{proxy.addr}/cut/app:v1"), client=client)
        assert result.digest == digest
        assert_resumed(client, proxy, layer_digest(root))
    assert_complete(RegistryClient(own_registry.addr), "cut/app", "v1", digest)


def test_push_cut_mid_chunk_restarts(own_registry, tmp_path):
    """Cut inside a PATCH body: distribution stored part of the chunk, its upload state no longer
    matches and it invalidates the upload (BLOB_UPLOAD_INVALID); the client starts over."""
    root = tmp_path / "big"
    digest = big_layout(root, BIG)
    with CuttingProxy(own_registry.port, cut_after=250_000) as proxy:
        client = RegistryClient(proxy.addr, chunk_size=CHUNK, backoff=0.05)
        result = push_layout(root, parse_reference(f"{proxy.addr}/cut/app:v1"), client=client)
        assert result.digest == digest and proxy.cut
        assert client.upload_events == [f"restarted {layer_digest(root)}"]
        assert proxy.sent_after_cut > BIG  # the whole layer again
    assert_complete(RegistryClient(own_registry.addr), "cut/app", "v1", digest)


def test_push_registry_killed_fails_cleanly_then_completes(own_registry, tmp_path):
    root = tmp_path / "big"
    digest = big_layout(root, BIG)
    with CuttingProxy(own_registry.port, cut_after=256 << 10, at_request=True,
                      on_cut=own_registry.kill9) as proxy:
        ref = parse_reference(f"{proxy.addr}/killed/app:v1")
        client = RegistryClient(proxy.addr, chunk_size=CHUNK, backoff=0.02, retries=3)
        with pytest.raises(RegistryError) as ei:
            push_layout(root, ref, client=client)
        assert proxy.cut
    assert proxy.addr in str(ei.value)
    own_registry.start()  # same port, same storage
    fresh = RegistryClient(own_registry.addr)
    assert fresh.head_manifest("killed/app", "v1") is None  # no tag names an incomplete image
    assert fresh.head_manifest("killed/app", digest) is None
    result = push_layout(root, parse_reference(f"{own_registry.addr}/killed/app:v1"),
                         client=RegistryClient(own_registry.addr, chunk_size=CHUNK))
    assert result.digest == digest
    assert_complete(fresh, "killed/app", "v1", digest)


def test_push_registry_restarted_between_chunks_resumes(own_registry, tmp_path):
    """kill -9 as a PATCH starts, restarted (same port, storage, secret) before the client sees the
    dropped connection: the client asks the upload URL for its offset and continues from there."""
    root = tmp_path / "big"
    digest = big_layout(root, BIG)

    def restart() -> None:
        own_registry.kill9()
        own_registry.start()

    with CuttingProxy(own_registry.port, cut_after=256 << 10, at_request=True, on_cut=restart) as proxy:
        client = RegistryClient(proxy.addr, chunk_size=CHUNK, backoff=0.05)
        result = push_layout(root, parse_reference(f"{proxy.addr}/restarted/app:v1"), client=client)
        assert result.digest == digest
        assert_resumed(client, proxy, layer_digest(root))
    assert_complete(RegistryClient(own_registry.addr), "restarted/app", "v1", digest)
