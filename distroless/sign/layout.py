"""Signing, attesting and verifying an OCI layout in place, the way `cosign save` lays one out so
that `cosign verify --local-image` accepts it and `cosign load` / our push publishes it.

Signing notes §4: `index.json` entries carry the annotation `kind` = `dev.cosignproject.cosign/image`
(or `/imageIndex`) for the signed object and `/sigs` / `/atts` for the attachment manifests,
whose blobs sit in `blobs/sha256/`. An apko layout (whose `index.json` *is* the image index) is
first converted: its bytes are stored as a blob and `index.json` lists that blob as `/imageIndex`,
so the digest signed is the one apko publishes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from distroless.errors import ConfigError, VerificationError
from distroless.fsutil import atomic_write
from distroless.oci.gojson import go_map, marshal_indent
from distroless.oci.image import OCI_INDEX, Descriptor, ImageError, sha256_digest
from distroless.oci.layout import read_blob, read_layout, write_blob
from distroless.oci.mediatypes import INDEX_TYPES, MANIFEST_TYPES
from distroless.sign import attach, dsse, payload
from distroless.sign.keys import PrivateKey

KIND = "kind"
KIND_IMAGE = "dev.cosignproject.cosign/image"
KIND_INDEX = "dev.cosignproject.cosign/imageIndex"
KIND_SIGS = "dev.cosignproject.cosign/sigs"
KIND_ATTS = "dev.cosignproject.cosign/atts"
REF_NAME = "org.opencontainers.image.ref.name"


@dataclass(frozen=True, slots=True)
class LayoutSubject:
    """What a layout holds for signing/pushing: the image or index, and its attachments."""

    root: Path
    subject: Descriptor
    raw_index_is_subject: bool  # apko layout: index.json bytes are the subject (not yet a blob)
    sigs: Descriptor | None
    atts: Descriptor | None
    entries: tuple[Descriptor, ...]

    def subject_bytes(self) -> bytes:
        if self.raw_index_is_subject:
            return (self.root / "index.json").read_bytes()
        return read_blob(self.root, self.subject)


def find_subject(root: str | os.PathLike[str]) -> LayoutSubject:
    """`kind` annotations first (imageIndex wins over image); else the single entry; else
    `index.json` itself as an image index (apko's multi-arch output)."""
    lay = read_layout(root)
    entries = lay.manifests
    by_kind: dict[str, Descriptor] = {}
    for d in entries:
        k = d.annotations.get(KIND)
        if k and k not in by_kind:
            by_kind[k] = d
    subject = by_kind.get(KIND_INDEX) or by_kind.get(KIND_IMAGE)
    raw = False
    if subject is None:
        plain = [d for d in entries if d.media_type in MANIFEST_TYPES]
        if len(plain) == 1:
            subject = plain[0]
        elif plain:
            obj = json.loads(lay.index_json)
            subject = Descriptor(obj.get("mediaType") or OCI_INDEX, len(lay.index_json),
                                 sha256_digest(lay.index_json))
            raw = True
        else:
            raise ImageError(f"{lay.root}: index.json lists no image or index to sign or push")
    return LayoutSubject(lay.root, subject, raw, by_kind.get(KIND_SIGS), by_kind.get(KIND_ATTS), entries)


def write_index(root: Path, entries: Sequence[Descriptor]) -> None:
    """ggcr's layout index.json shape (3-space indent, no trailing newline)."""
    out: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [d.to_json() for d in entries],
    }
    atomic_write(root / "index.json", marshal_indent(out, 3, newline=False))


def _with_annotation(d: Descriptor, key: str, value: str) -> Descriptor:
    return Descriptor(d.media_type, d.size, d.digest, d.urls, go_map({**d.annotations, key: value}),
                      d.platform, d.artifact_type)


def adopt(root: str | os.PathLike[str]) -> LayoutSubject:
    """Make the layout cosign-shaped: the subject stored as a blob and marked with `kind`."""
    ls = find_subject(root)
    kind = KIND_INDEX if ls.subject.media_type in INDEX_TYPES else KIND_IMAGE
    if ls.raw_index_is_subject:
        write_blob(ls.root, ls.subject_bytes())
        entries = [_with_annotation(ls.subject, KIND, kind)]
    elif ls.subject.annotations.get(KIND) == kind:
        return ls
    else:
        entries = [_with_annotation(d, KIND, kind) if d == ls.subject else d for d in ls.entries]
    write_index(ls.root, entries)
    return find_subject(root)


def _add_attachment(ls: LayoutSubject, kind: str, existing: Descriptor | None, new: attach.Attachment) -> Descriptor:
    """Append `new` to the layout's attachment manifest of this kind (no duplicates), writing
    blobs first and index.json last."""
    layers: list[Descriptor] = []
    if existing is not None:
        layers = attach.parse_attachment_manifest(read_blob(ls.root, existing), f"{ls.root} {kind}")
    layers, _ = attach.merge_layers(layers, [new.descriptor()])
    am = attach.build_attachment_manifest(layers)
    write_blob(ls.root, new.payload)
    write_blob(ls.root, am.config)
    write_blob(ls.root, am.manifest)
    desc = am.descriptor({KIND: kind})
    entries = [d for d in ls.entries if d.annotations.get(KIND) != kind] + [desc]
    write_index(ls.root, entries)
    return desc


def _identity(ls: LayoutSubject, identity: str | None) -> str:
    if identity:
        return identity
    name = ls.subject.annotations.get(REF_NAME, "")
    if "/" in name and ("." in name.split("/")[0] or ":" in name.split("/")[0]):
        return name
    raise ConfigError(f"{ls.root}: pass --identity REGISTRY/REPO[:TAG] (the name the image will be "
                      "pulled as; it goes into the signed payload)")


def sign_layout(
    root: str | os.PathLike[str], key: PrivateKey, *, identity: str | None = None,
    annotations: Mapping[str, str] | None = None,
) -> tuple[Descriptor, attach.Attachment]:
    """Sign the layout's image (or index) digest; returns (subject, the signature layer)."""
    ls = adopt(root)
    ident = _identity(ls, identity)
    body = payload.simple_signing_payload(ident, ls.subject.digest, annotations)
    sig = payload.b64_signature(payload.sign_bytes(key.key, body))
    layer = attach.signature_attachment(body, sig)
    _add_attachment(ls, KIND_SIGS, ls.sigs, layer)
    return ls.subject, layer


def attest_layout(
    root: str | os.PathLike[str], key: PrivateKey, predicate_type: str, predicate: Any, *,
    subject_name: str = "", statement_version: str = "v0.1", statement: bytes | None = None,
) -> tuple[Descriptor, attach.Attachment]:
    ls = adopt(root)
    if statement is not None:
        st = statement
        predicate_type = dsse.check_statement_subject(statement, ls.subject.digest, str(ls.root))
    else:
        name = subject_name or ls.subject.annotations.get(REF_NAME, "")
        st = dsse.statement(name, ls.subject.digest, predicate_type, predicate, version=statement_version)
    env = dsse.sign_envelope(key.key, st)
    layer = attach.attestation_attachment(env.to_json(), predicate_type)
    _add_attachment(ls, KIND_ATTS, ls.atts, layer)
    return ls.subject, layer


def _layers(ls: LayoutSubject, desc: Descriptor | None) -> list[attach.Attachment]:
    if desc is None:
        return []
    descs = attach.parse_attachment_manifest(read_blob(ls.root, desc), f"{ls.root} {desc.digest}")
    return attach.load_attachments(descs, lambda d: read_blob(ls.root, d))


def verify_layout(
    root: str | os.PathLike[str], pub: ec.EllipticCurvePublicKey, *,
    annotations: Mapping[str, str] | None = None, identity: str | None = None, check_claims: bool = True,
) -> tuple[Descriptor, list[payload.VerifiedSignature]]:
    """Like `cosign verify --local-image`: the subject is found by `kind`, its digest checked
    against the signatures of the `/sigs` entry."""
    ls = find_subject(root)
    if ls.raw_index_is_subject or not ls.subject.annotations.get(KIND):
        raise VerificationError(f"{ls.root}: the layout has no signatures (no {KIND_SIGS} entry)")
    ls.subject_bytes()  # the subject blob must be there and match its descriptor
    layers = [a.as_signature() for a in _layers(ls, ls.sigs)]
    ok = payload.verify(layers, pub, ls.subject.digest, annotations=annotations, identity=identity,
                        check_claims=check_claims, what=f"{ls.root} ({ls.subject.digest})")
    return ls.subject, ok


def verify_layout_attestations(
    root: str | os.PathLike[str], pub: ec.EllipticCurvePublicKey, predicate_type: str | None = None,
) -> tuple[Descriptor, list[dsse.VerifiedAttestation]]:
    ls = find_subject(root)
    envs = [a.payload for a in _layers(ls, ls.atts) if a.media_type == dsse.DSSE_MEDIA_TYPE]
    ok = dsse.verify_attestations(envs, pub, ls.subject.digest, predicate_type,
                                  what=f"{ls.root} ({ls.subject.digest})")
    return ls.subject, ok
