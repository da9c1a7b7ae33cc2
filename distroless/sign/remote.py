"""Sign, attest and verify images in a registry with cosign's classic `.sig` / `.att` tags."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from distroless.errors import RegistryNotFoundError, VerificationError
from distroless.oci.image import OCI_MANIFEST
from distroless.registry.client import BlobSource, RegistryClient
from distroless.registry.push import Log
from distroless.sign.push import push_attachments
from distroless.registry.reference import Reference
from distroless.sign import attach, dsse, payload
from distroless.sign.keys import PrivateKey


def default_identity(ref: Reference) -> str:
    """Signing notes §7 step 1: `REG/REPO:TAG` when signing for a tag (what c/image's default
    policy needs), else cosign's bare `REG/REPO`."""
    return f"{ref.name}:{ref.tag}" if ref.tag else ref.name


def resolve_digest(client: RegistryClient, ref: Reference, *, must_exist: bool = True) -> str:
    """The manifest digest `ref` names (HEAD). A digest reference that the registry lacks is
    still signable (cosign signs unknown digests) unless `must_exist`."""
    desc = client.head_manifest(ref.repository, ref.ref)
    if desc is None:
        if ref.digest and not must_exist:
            return ref.digest
        raise RegistryNotFoundError(f"{ref}: no such manifest in the registry")
    if ref.digest and desc.digest != ref.digest:
        raise VerificationError(f"{ref}: the registry serves {desc.digest}")
    return desc.digest


def sign_image(
    client: RegistryClient, ref: Reference, key: PrivateKey, *,
    identity: str | None = None, annotations: Mapping[str, str] | None = None,
    log: Log = lambda _m: None,
) -> tuple[str, attach.Attachment]:
    digest = resolve_digest(client, ref, must_exist=False)
    body = payload.simple_signing_payload(identity or default_identity(ref), digest, annotations)
    layer = attach.signature_attachment(body, payload.b64_signature(payload.sign_bytes(key.key, body)))
    push_attachments(client, ref.repository, digest, attach.SIG_SUFFIX,
                     [(layer.descriptor(), BlobSource.of(body))], log)
    return digest, layer


def attest_image(
    client: RegistryClient, ref: Reference, key: PrivateKey, predicate_type: str, predicate: Any, *,
    statement_version: str = "v0.1", statement: bytes | None = None, log: Log = lambda _m: None,
) -> tuple[str, attach.Attachment]:
    """Attach a signed in-toto statement: built from the predicate, or (`statement`, cosign's
    `--statement FILE`) given whole, signed as is once its subject names the image digest."""
    digest = resolve_digest(client, ref, must_exist=False)
    if statement is not None:
        st, predicate_type = statement, dsse.check_statement_subject(statement, digest, str(ref))
    else:
        st = dsse.statement(ref.name, digest, predicate_type, predicate, version=statement_version)
    env = dsse.sign_envelope(key.key, st).to_json()
    layer = attach.attestation_attachment(env, predicate_type)
    push_attachments(client, ref.repository, digest, attach.ATT_SUFFIX,
                     [(layer.descriptor(), BlobSource.of(env))], log)
    return digest, layer


def fetch_attachments(client: RegistryClient, ref: Reference, digest: str, suffix: str) -> list[attach.Attachment]:
    tag = attach.attachment_tag(digest, suffix)
    try:
        m = client.get_manifest(ref.repository, tag, accept=(OCI_MANIFEST,))
    except RegistryNotFoundError:
        return []
    descs = attach.parse_attachment_manifest(m.raw, f"{ref.name}:{tag}")
    return attach.load_attachments(descs, lambda d: client.get_blob(ref.repository, d.digest))


def verify_image(
    client: RegistryClient, ref: Reference, pub: ec.EllipticCurvePublicKey, *,
    annotations: Mapping[str, str] | None = None, identity: str | None = None, check_claims: bool = True,
) -> tuple[str, list[payload.VerifiedSignature]]:
    digest = resolve_digest(client, ref)
    layers = [a.as_signature() for a in fetch_attachments(client, ref, digest, attach.SIG_SUFFIX)]
    ok = payload.verify(layers, pub, digest, annotations=annotations, identity=identity,
                        check_claims=check_claims, what=str(ref.with_digest(digest)))
    return digest, ok


def verify_image_attestations(
    client: RegistryClient, ref: Reference, pub: ec.EllipticCurvePublicKey,
    predicate_type: str | None = None,
) -> tuple[str, list[dsse.VerifiedAttestation]]:
    digest = resolve_digest(client, ref)
    envs = [a.payload for a in fetch_attachments(client, ref, digest, attach.ATT_SUFFIX)
            if a.media_type == dsse.DSSE_MEDIA_TYPE]
    ok = dsse.verify_attestations(envs, pub, digest, predicate_type, what=str(ref.with_digest(digest)))
    return digest, ok
