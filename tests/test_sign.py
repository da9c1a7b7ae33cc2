"""Unit tests for cosign-compatible signing: key files, payloads, fixtures captured from real
cosign / containers/image, DSSE attestations, attachment manifests, layout signing. No daemons."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from distroless import hostenv
from distroless.errors import ConfigError, DistrolessError, InvalidReferenceError, KeyFileError, VerificationError
from distroless.oci.image import ConfigFile, build_image, build_index, sha256_digest, write_layer
from distroless.oci.layout import write_layout
from distroless.registry.client import credentials_from_docker_config, parse_challenge
from distroless.registry.reference import parse_reference
from distroless.sign import attach, dsse, keys, payload
from distroless.sign import layout as slayout
from shared import FIXTURES

FIX = FIXTURES / "signing"
PASSWORD = b"hello"


def fixture_bytes(path: Path) -> bytes:
    """The fixtures keep c/image's git symlinks as text files holding the relative target.
    Follow them; a target that was not copied (manifest-digest-error's v2s1 manifest) is
    replaced by the link text, which equally does not hash to the signed digest."""
    data = path.read_bytes()
    if data.startswith(b"../") and b"\n" not in data.strip() and len(data) < 200:
        target = (path.parent / data.decode().strip()).resolve()
        if target.is_file():
            return fixture_bytes(target)
    return data


def fixture_sigs(name: str) -> list[attach.Attachment]:
    d = FIX / name
    return [attach.from_containers_blob(fixture_bytes(p), str(p)) for p in sorted(d.glob("signature-*"))]


def fixture_digest(name: str) -> str:
    return sha256_digest(fixture_bytes(FIX / name / "manifest.json"))


def pub(name: str) -> ec.EllipticCurvePublicKey:
    return keys.read_public_key(FIX / name)


# --------------------------------------------------------------------------- key files


@pytest.mark.parametrize("name,pkcs8", [
    ("pemcosignkey", True),  # ENCRYPTED COSIGN PRIVATE KEY, N=32768
    ("pemcosigneckey", False),  # SEC1 inside: decrypts, but cosign itself cannot load it
    ("pemsigstorekey", True),  # ENCRYPTED SIGSTORE PRIVATE KEY
])
def test_cosign_fixture_keys_decrypt(name, pkcs8):
    k = keys.load_private_key((FIX / "keys" / f"{name}.key").read_bytes(), PASSWORD, name)
    assert isinstance(k.key.curve, ec.SECP256R1)
    assert k.pkcs8 is pkcs8


def test_fixture_key_wrong_password_names_file():
    path = FIX / "keys" / "pemsigstorekey.key"
    with pytest.raises(KeyFileError, match=r"pemsigstorekey\.key: wrong password"):
        keys.load_private_key(path.read_bytes(), b"nope", str(path))


def test_generate_and_read_back(tmp_path, monkeypatch):
    priv, pubpem = keys.generate_key_pair("s3cret")
    assert priv.startswith(b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    assert pubpem.startswith(b"-----BEGIN PUBLIC KEY-----\n")
    body = keys.pem_decode(priv, "k").der
    env = json.loads(body)
    assert list(env) == ["kdf", "cipher", "ciphertext"]
    assert env["kdf"]["params"] == {"N": 65536, "r": 8, "p": 1}
    assert len(base64.b64decode(env["kdf"]["salt"])) == 32
    assert len(base64.b64decode(env["cipher"]["nonce"])) == 24
    k = keys.load_private_key(priv, b"s3cret", "k")
    pt = k.key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    assert len(base64.b64decode(env["ciphertext"])) == len(pt) + 16  # Poly1305 tag ‖ ciphertext
    assert k.public_pem() == pubpem
    assert keys.load_public_key(pubpem).public_numbers() == k.key.public_key().public_numbers()
    # and through the files + environment, as the CLI does (the front door's password source)
    (tmp_path / "c.key").write_bytes(priv)
    monkeypatch.setenv("COSIGN_PASSWORD", "s3cret")
    again = keys.read_private_key(tmp_path / "c.key", hostenv.key_password)
    assert again.public_pem() == pubpem
    assert again.key.private_numbers() == k.key.private_numbers()
    monkeypatch.setenv("COSIGN_PASSWORD", "not-it")
    with pytest.raises(KeyFileError, match=r"c\.key: wrong password"):
        keys.read_private_key(tmp_path / "c.key", hostenv.key_password)


def test_read_private_key_uses_cosign_password(tmp_path, monkeypatch):
    priv, _ = keys.generate_key_pair(b"")
    (tmp_path / "c.key").write_bytes(priv)
    monkeypatch.setenv("COSIGN_PASSWORD", "")  # an empty password is legal
    assert keys.read_private_key(tmp_path / "c.key", hostenv.key_password).pkcs8
    with pytest.raises(KeyFileError, match="encrypted and no password"):
        keys.read_private_key(tmp_path / "c.key")  # the engine never asks on its own


def test_wrong_password_and_tampering_fail(tmp_path):
    priv, _ = keys.generate_key_pair(b"right")
    with pytest.raises(KeyFileError, match=r"my\.key: wrong password"):
        keys.load_private_key(priv, b"wrong", "my.key")
    env = json.loads(keys.pem_decode(priv, "k").der)
    for field_path in (("cipher", "nonce"), ("ciphertext",)):
        e = json.loads(json.dumps(env))
        obj = e
        for part in field_path[:-1]:
            obj = obj[part]
        raw = bytearray(base64.b64decode(obj[field_path[-1]]))
        raw[0] ^= 1
        obj[field_path[-1]] = base64.b64encode(bytes(raw)).decode()
        bad = keys.pem_encode(keys.LABEL_SIGSTORE, json.dumps(e).encode())
        with pytest.raises(KeyFileError, match="decryption failed"):
            keys.load_private_key(bad, b"right", "t.key")


def test_unsupported_scrypt_parameters_rejected():
    priv, _ = keys.generate_key_pair(b"x")
    env = json.loads(keys.pem_decode(priv, "k").der)
    env["kdf"]["params"]["N"] = 1024
    bad = keys.pem_encode(keys.LABEL_SIGSTORE, json.dumps(env).encode())
    with pytest.raises(KeyFileError, match="unsupported scrypt parameters N=1024"):
        keys.load_private_key(bad, b"x", "weak.key")


@pytest.mark.parametrize("content,match", [
    (b"", "no PEM block"),
    (b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n!!!!\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
     "corrupt PEM body"),
    (keys.pem_encode(keys.LABEL_SIGSTORE, b"{not json"), "corrupt key file"),
    (keys.pem_encode(keys.LABEL_COSIGN, b'{"kdf":{}}'), "corrupt key file"),
    (keys.pem_encode("RSA PRIVATE KEY", b"\x30\x00"), "unsupported PEM type"),
])
def test_corrupt_key_files_name_the_file(tmp_path, content, match):
    path = tmp_path / "broken.key"
    path.write_bytes(content)
    with pytest.raises(KeyFileError, match=match) as ei:
        keys.read_private_key(path, b"pw")
    assert str(path) in str(ei.value)


def test_unencrypted_pkcs8_key():
    k = ec.generate_private_key(ec.SECP256R1())
    pem = k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
    assert keys.load_private_key(pem, None, "plain.key").pkcs8


def test_non_p256_key_rejected():
    k = ec.generate_private_key(ec.SECP384R1())
    pem = k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
    with pytest.raises(KeyFileError, match="expected P-256"):
        keys.load_private_key(pem, None, "p384.key")


def test_public_key_errors(tmp_path):
    with pytest.raises(KeyFileError, match="missing.pub"):
        keys.read_public_key(tmp_path / "missing.pub")
    with pytest.raises(KeyFileError, match="expected a PEM PUBLIC KEY"):
        keys.load_public_key((FIX / "keys" / "pemsigstorekey.key").read_bytes(), "x.pub")


def test_password_from_env_or_prompt(monkeypatch):
    monkeypatch.setenv("COSIGN_PASSWORD", "abc")
    assert hostenv.cosign_password(confirm=True) == b"abc"
    monkeypatch.delenv("COSIGN_PASSWORD")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(KeyFileError, match="COSIGN_PASSWORD"):
        hostenv.cosign_password(confirm=False)


def test_prompt_confirm_mismatch(monkeypatch):
    monkeypatch.delenv("COSIGN_PASSWORD", raising=False)

    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stdin", Tty(""))
    answers = iter(["one", "two"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    with pytest.raises(KeyFileError, match="do not match"):
        hostenv.cosign_password(confirm=True)


# --------------------------------------------------------------------------- fixtures by c/image + cosign


def test_fixture_valid_verifies():
    sigs = fixture_sigs("dir-img-cosign-valid")
    ok = payload.verify([s.as_signature() for s in sigs], pub("cosign.pub"), fixture_digest("dir-img-cosign-valid"),
                        strict=True)
    assert ok[0].payload.docker_reference == "192.168.64.2:5000/cosign-signed-single-sample"
    assert ok[0].payload.optional is None
    # our payload writer reproduces real cosign's bytes exactly
    assert payload.simple_signing_payload(ok[0].payload.docker_reference, ok[0].payload.manifest_digest) \
        == sigs[0].payload


def test_fixture_valid_with_tag_verifies():
    sigs = fixture_sigs("dir-img-cosign-valid-with-tag")
    ok = payload.verify([s.as_signature() for s in sigs], pub("cosign.pub"),
                        fixture_digest("dir-img-cosign-valid-with-tag"), strict=True,
                        identity="192.168.64.2:5000/skopeo-signed:tag")
    assert ok[0].payload.optional["creator"].startswith("containers/image")
    with pytest.raises(VerificationError, match="identity"):
        payload.verify([s.as_signature() for s in sigs], pub("cosign.pub"),
                       fixture_digest("dir-img-cosign-valid-with-tag"),
                       identity="192.168.64.2:5000/skopeo-signed:other")


def test_fixture_rekor_bundle_verifies_with_its_key():
    sigs = fixture_sigs("dir-img-cosign-key-rekor-valid")
    d = fixture_digest("dir-img-cosign-key-rekor-valid")
    ok = payload.verify([s.as_signature() for s in sigs], pub("cosign2.pub"), d, strict=True)
    assert ok[0].has_rekor_bundle
    with pytest.raises(VerificationError, match="does not verify"):
        payload.verify([s.as_signature() for s in sigs], pub("cosign.pub"), d)


def test_fixture_wrong_manifest_digest_fails():
    sigs = fixture_sigs("dir-img-cosign-manifest-digest-error")
    with pytest.raises(VerificationError, match="payload signs sha256:634a8f35"):
        payload.verify([s.as_signature() for s in sigs], pub("cosign.pub"),
                       fixture_digest("dir-img-cosign-manifest-digest-error"))


def test_fixture_modified_manifest_fails():
    sigs = fixture_sigs("dir-img-cosign-modified-manifest")
    d = fixture_digest("dir-img-cosign-modified-manifest")
    assert d != fixture_digest("dir-img-cosign-valid")
    with pytest.raises(VerificationError, match="but the image digest is"):
        payload.verify([s.as_signature() for s in sigs], pub("cosign.pub"), d)


def test_fixture_unrelated_attachment_fails():
    sigs = fixture_sigs("dir-img-cosign-other-attachment")
    assert sigs[0].media_type == "text/plain"
    with pytest.raises(VerificationError, match="not a simple signature"):
        payload.verify([s.as_signature() for s in sigs], pub("cosign.pub"),
                       fixture_digest("dir-img-cosign-other-attachment"))


def test_fixture_valid_2_two_signatures():
    sigs = fixture_sigs("dir-img-cosign-valid-2")
    assert sigs[0].annotations != sigs[1].annotations  # two ECDSA signatures of one payload
    ok = payload.verify([s.as_signature() for s in sigs], pub("cosign.pub"), fixture_digest("dir-img-cosign-valid-2"))
    assert len(ok) == 2
    other = fixture_sigs("dir-img-cosign-other-attachment")[0].as_signature()
    assert len(payload.verify([other, sigs[1].as_signature()], pub("cosign.pub"),
                              fixture_digest("dir-img-cosign-valid-2"))) == 1


def test_fixture_unknown_key_fails():
    sig = attach.from_containers_blob(fixture_bytes(FIX / "unknown-cosign-key.signature"))
    with pytest.raises(VerificationError, match="does not verify"):
        payload.verify([sig.as_signature()], pub("cosign.pub"), fixture_digest("dir-img-cosign-valid"))


def test_wrong_key_fails():
    sigs = fixture_sigs("dir-img-cosign-valid")
    with pytest.raises(VerificationError, match="no valid signature"):
        payload.verify([s.as_signature() for s in sigs], pub("cosign2.pub"), fixture_digest("dir-img-cosign-valid"))


def test_tampered_payload_fails():
    (sig,) = fixture_sigs("dir-img-cosign-valid")
    tampered = sig.payload.replace(b"single-sample", b"single-sampla")
    layer = payload.SignatureLayer(tampered, sig.annotations)
    with pytest.raises(VerificationError, match="does not verify"):
        payload.verify([layer], pub("cosign.pub"), fixture_digest("dir-img-cosign-valid"))


def test_no_signatures():
    with pytest.raises(VerificationError, match="no signatures found"):
        payload.verify([], pub("cosign.pub"), fixture_digest("dir-img-cosign-valid"))


# --------------------------------------------------------------------------- payload rules


DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("doc,match", [
    ({"critical": {"identity": {"docker-reference": "r"}, "image": {"docker-manifest-digest": DIGEST},
                   "type": payload.COSIGN_TYPE, "extra": 1}, "optional": None}, "unexpected keys"),
    ({"critical": {"identity": {"docker-reference": "r"}, "image": {"docker-manifest-digest": DIGEST},
                   "type": payload.COSIGN_TYPE}}, "missing"),
    ({"critical": {"identity": {"docker-reference": "r"}, "image": {"docker-manifest-digest": DIGEST},
                   "type": "something else"}, "optional": None}, "type"),
    ({"critical": {"identity": {"docker-reference": "r"}, "image": {"docker-manifest-digest": DIGEST},
                   "type": payload.COSIGN_TYPE}, "optional": {"timestamp": 1.5}}, "timestamp"),
    ({"critical": {"identity": {"docker-reference": "r"}, "image": {"docker-manifest-digest": "md5:x"},
                   "type": payload.COSIGN_TYPE}, "optional": None}, "not a sha256"),
])
def test_strict_payload_rules(doc, match):
    with pytest.raises(VerificationError, match=match):
        payload.parse_payload(json.dumps(doc).encode(), strict=True)


def test_duplicate_keys_rejected():
    raw = ('{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"%s"},'
           '"type":"%s"},"optional":null,"optional":null}' % (DIGEST, payload.COSIGN_TYPE)).encode()
    with pytest.raises(VerificationError, match="duplicate"):
        payload.parse_payload(raw)


def test_payload_with_annotations_and_claims():
    key = ec.generate_private_key(ec.SECP256R1())
    body = payload.simple_signing_payload("reg.example/app:1", DIGEST, {"b": "2", "a": "1"})
    assert body.endswith(b'"optional":{"a":"1","b":"2"}}')
    layer = payload.SignatureLayer(body, {payload.SIGNATURE_ANNOTATION: payload.b64_signature(
        payload.sign_bytes(key, body))})
    payload.verify([layer], key.public_key(), DIGEST, annotations={"a": "1"}, strict=True)
    with pytest.raises(VerificationError, match="annotation a=2"):
        payload.verify([layer], key.public_key(), DIGEST, annotations={"a": "2"})


def test_raw_rs_signature_accepted_and_der_emitted():
    key = ec.generate_private_key(ec.SECP256R1())
    der = payload.sign_bytes(key, b"data")
    assert der[0] == 0x30 and 68 <= len(der) <= 72
    r, s = decode_dss_signature(der)
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    assert payload.verify_bytes(key.public_key(), b"data", raw)
    assert not payload.verify_bytes(key.public_key(), b"datb", raw)


def test_identity_matching():
    assert payload.identity_matches("docker.io/library/busybox", "index.docker.io/library/busybox:1")
    assert payload.identity_matches("127.0.0.1:5000/a/b:t", "127.0.0.1:5000/a/b")
    assert not payload.identity_matches("127.0.0.1:5000/a/b:t", "127.0.0.1:5000/a/b:u")
    assert not payload.identity_matches("127.0.0.1:5000/a/c", "127.0.0.1:5000/a/b")


# --------------------------------------------------------------------------- DSSE / in-toto


def test_pae_spec_vector():
    assert dsse.pae("http://example.com/HelloWorld", b"hello world") == \
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"


def test_attestation_roundtrip_and_failures():
    key = ec.generate_private_key(ec.SECP256R1())
    ptype = dsse.predicate_type_uri("spdxjson")
    assert ptype == "https://spdx.dev/Document"
    st = dsse.statement("reg.example/app", DIGEST, ptype, {"spdxVersion": "SPDX-2.3"})
    env = dsse.sign_envelope(key, st).to_json()
    obj = json.loads(env)
    assert list(obj) == ["payload", "payloadType", "signatures"]
    assert base64.b64decode(obj["payload"], validate=True) == st  # standard base64
    assert obj["payloadType"] == dsse.INTOTO_PAYLOAD_TYPE
    ok = dsse.verify_attestations([env], key.public_key(), DIGEST, ptype)
    assert ok[0].statement.type == dsse.STATEMENT_V01
    with pytest.raises(VerificationError, match="predicate type"):
        dsse.verify_attestations([env], key.public_key(), DIGEST, dsse.predicate_type_uri("cyclonedx"))
    with pytest.raises(VerificationError, match="subject"):
        dsse.verify_attestations([env], key.public_key(), "sha256:" + "cd" * 32)
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(VerificationError, match="does not verify"):
        dsse.verify_attestations([env], other.public_key(), DIGEST)
    tampered = dict(obj, payload=base64.b64encode(st.replace(b"SPDX-2.3", b"SPDX-2.2")).decode())
    with pytest.raises(VerificationError, match="does not verify"):
        dsse.verify_attestations([json.dumps(tampered).encode()], key.public_key(), DIGEST)


def test_statement_v1_and_predicates():
    st = json.loads(dsse.statement("", DIGEST, "https://x.example/p", {}, version="v1"))
    assert st["_type"] == dsse.STATEMENT_V1 and st["subject"] == [{"digest": {"sha256": "ab" * 32}}]
    assert dsse.predicate_for("custom", b"hi\n", timestamp="2020-01-01T00:00:00Z") == \
        {"Data": "hi\n", "Timestamp": "2020-01-01T00:00:00Z"}
    assert dsse.predicate_for("spdxjson", b'{"a":1}') == {"a": 1}
    with pytest.raises(ValueError, match="timestamp from the caller"):  # sign never reads the clock
        dsse.predicate_for("custom", b"hi\n")
    with pytest.raises(VerificationError, match="not JSON"):
        dsse.predicate_for("spdxjson", b"SPDXVersion: SPDX-2.3")
    with pytest.raises(VerificationError, match="unknown predicate type"):
        dsse.predicate_type_uri("bogus")


# --------------------------------------------------------------------------- attachment manifests


def test_attachment_manifest_shape_and_merge():
    a = attach.signature_attachment(b"p1", "c2ln")
    b = attach.attestation_attachment(b"{}", "https://spdx.dev/Document")
    am = attach.build_attachment_manifest([a.descriptor(), b.descriptor()])
    m = json.loads(am.manifest)
    assert m["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert m["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert m["layers"][0]["mediaType"] == payload.SIMPLESIGNING_MEDIA_TYPE
    assert m["layers"][1]["annotations"] == {"dev.cosignproject.cosign/signature": "",
                                             "predicateType": "https://spdx.dev/Document"}
    assert "annotations" not in m
    cfg = json.loads(am.config)
    assert list(cfg) == ["architecture", "created", "history", "os", "rootfs", "config"]
    assert cfg["rootfs"]["diff_ids"] == [a.digest, b.digest]
    layers, changed = attach.merge_layers([a.descriptor()], [a.descriptor()])
    assert not changed and len(layers) == 1
    layers, changed = attach.merge_layers([a.descriptor()], [b.descriptor()])
    assert changed and [d.digest for d in layers] == [a.digest, b.digest]
    assert attach.attachment_tag(DIGEST, "sig") == "sha256-" + "ab" * 32 + ".sig"


# --------------------------------------------------------------------------- layouts


def tiny_layout(root: Path, text: bytes = b"hello\n", archs=("amd64",)) -> str:
    images = []
    for arch in archs:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
            ti = tarfile.TarInfo("hello.txt")
            ti.size = len(text)
            tf.addfile(ti, io.BytesIO(text))
        layer = write_layer(buf.getvalue(), root.parent / f".{root.name}-layers")
        images.append(build_image(ConfigFile(architecture=arch, diff_ids=(layer.diff_id,)), [layer]))
    index = build_index(images)
    write_layout(root, index)
    return index.digest if len(archs) > 1 else images[0].digest


@pytest.mark.parametrize("archs", [("amd64",), ("amd64", "arm64")])
def test_layout_sign_attest_verify(tmp_path, archs):
    root = tmp_path / "layout"
    digest = tiny_layout(root, archs=archs)
    k = keys.PrivateKey(ec.generate_private_key(ec.SECP256R1()), "k")
    subject, _ = slayout.sign_layout(root, k, identity="reg.example/app:1", annotations={"x": "y"})
    assert subject.digest == digest
    slayout.sign_layout(root, k, identity="reg.example/app:1")
    slayout.attest_layout(root, k, dsse.predicate_type_uri("spdxjson"), {"spdxVersion": "SPDX-2.3"})
    idx = json.loads((root / "index.json").read_bytes())
    kinds = [m["annotations"]["kind"] for m in idx["manifests"]]
    assert kinds == [slayout.KIND_INDEX if len(archs) > 1 else slayout.KIND_IMAGE,
                     slayout.KIND_SIGS, slayout.KIND_ATTS]
    for p in (root / "blobs" / "sha256").iterdir():  # content addressed
        assert hashlib.sha256(p.read_bytes()).hexdigest() == p.name
    d, ok = slayout.verify_layout(root, k.key.public_key(), identity="reg.example/app")
    assert d.digest == digest and len(ok) == 2
    _, ok = slayout.verify_layout(root, k.key.public_key(), annotations={"x": "y"})
    assert len(ok) == 1
    _, atts = slayout.verify_layout_attestations(root, k.key.public_key(), "https://spdx.dev/Document")
    assert atts[0].statement.predicate == {"spdxVersion": "SPDX-2.3"}
    with pytest.raises(VerificationError, match="no valid signature"):
        slayout.verify_layout(root, ec.generate_private_key(ec.SECP256R1()).public_key())


def test_layout_without_identity_or_signatures(tmp_path):
    root = tmp_path / "layout"
    tiny_layout(root)
    k = keys.PrivateKey(ec.generate_private_key(ec.SECP256R1()), "k")
    with pytest.raises(VerificationError, match="no signatures"):
        slayout.verify_layout(root, k.key.public_key())
    with pytest.raises(ConfigError, match="--identity"):
        slayout.sign_layout(root, k)


# --------------------------------------------------------------------------- registry bits


def test_reference_parsing():
    r = parse_reference("127.0.0.1:5000/a/b:t@sha256:" + "0" * 64)
    assert (r.registry, r.repository, r.tag, r.ref) == ("127.0.0.1:5000", "a/b", "t", "sha256:" + "0" * 64)
    assert parse_reference("busybox").name == "index.docker.io/library/busybox"
    assert parse_reference("docker.io/foo/bar:1").name == "index.docker.io/foo/bar"
    assert parse_reference("localhost/x").registry == "localhost"
    for bad in ("UPPER/Case:x@sha256:zz", "reg.example/a@sha256:123", "reg.example/A"):
        with pytest.raises(InvalidReferenceError):
            parse_reference(bad)


def test_docker_config_credentials(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"auths": {
        "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:pw1").decode()},
        "reg.example:5000": {"auth": base64.b64encode(b"me:p:w").decode()},
    }}))
    c = credentials_from_docker_config("reg.example:5000", cfg)
    assert (c.username, c.password) == ("me", "p:w")
    assert "p:w" not in repr(c)  # never printed
    assert credentials_from_docker_config("index.docker.io", cfg).username == "hub"
    assert credentials_from_docker_config("other.example", cfg) is None


def test_challenge_parsing():
    c = parse_challenge('Bearer realm="https://auth.example/token",service="reg.example",scope="repository:a:pull"')
    assert c.scheme == "bearer" and c.params["realm"] == "https://auth.example/token"
    assert c.params["scope"] == "repository:a:pull"
    assert parse_challenge('Basic realm="x"').scheme == "basic"


def test_errors_are_distroless_errors():
    for cls in (KeyFileError, VerificationError, InvalidReferenceError):
        assert issubclass(cls, DistrolessError)
