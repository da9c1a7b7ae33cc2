"""The classic cosign attachment image: one OCI manifest per signed digest holding every signature
(`sha256-<hex>.sig`) or attestation (`.att`) as a layer (signing notes §1.2, §1.5).

Pure functions over bytes: building the manifest + config, merging a new layer into an existing
manifest without duplicates, and reading containers/image `dir:` signature blobs (the fixtures).
"""

from __future__ import annotations

import base64
import json
from typing import Any
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from distroless.errors import VerificationError
from distroless.oci.gojson import marshal
from distroless.oci.image import (OCI_CONFIG, OCI_MANIFEST, BlobLayer, Descriptor, Image, digest_hex, manifest_json,
                                  sha256_digest)
from distroless.sign.dsse import DSSE_MEDIA_TYPE, PREDICATE_TYPE_ANNOTATION
from distroless.sign.payload import SIGNATURE_ANNOTATION, SIMPLESIGNING_MEDIA_TYPE, SignatureLayer

SIG_SUFFIX = "sig"
ATT_SUFFIX = "att"
ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time, as cosign's config carries it
MAX_LAYERS = 1000  # cosign's cap on signatures per digest


def attachment_tag(digest: str, suffix: str) -> str:
    """`sha256:<hex>` -> `sha256-<hex>.<suffix>`."""
    return f"sha256-{digest_hex(digest)}.{suffix}"


@dataclass(frozen=True, slots=True)
class Attachment:
    """One layer of an attachment manifest: a blob plus its annotations."""

    payload: bytes
    media_type: str
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return sha256_digest(self.payload)

    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, len(self.payload), self.digest,
                          annotations=dict(self.annotations))

    def layer(self) -> BlobLayer:
        return BlobLayer(self.payload, self.media_type, dict(self.annotations))

    def as_signature(self) -> SignatureLayer:
        return SignatureLayer(self.payload, self.annotations, self.media_type)


def signature_attachment(payload: bytes, signature_b64: str,
                         extra: Mapping[str, str] | None = None) -> Attachment:
    return Attachment(payload, SIMPLESIGNING_MEDIA_TYPE, {SIGNATURE_ANNOTATION: signature_b64, **(extra or {})})


def attestation_attachment(envelope: bytes, predicate_type: str) -> Attachment:
    # The real signature is inside the envelope; cosign still sets the key, empty.
    return Attachment(envelope, DSSE_MEDIA_TYPE,
                      {SIGNATURE_ANNOTATION: "", PREDICATE_TYPE_ANNOTATION: predicate_type})


def attachment_config(layer_digests: Sequence[str]) -> bytes:
    """ggcr's empty image + appended layers: uncompressed payloads, so diff_id = layer digest."""
    return marshal({
        "architecture": "",
        "created": ZERO_TIME,
        "history": [{"created": ZERO_TIME} for _ in layer_digests],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": list(layer_digests)},
        "config": {},
    })


@dataclass(frozen=True, slots=True)
class AttachmentManifest:
    """Manifest and config bytes; `layers` are descriptors (payload bytes may live elsewhere)."""

    manifest: bytes
    config: bytes
    layers: tuple[Descriptor, ...]

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)

    def descriptor(self, annotations: Mapping[str, str] | None = None) -> Descriptor:
        return Descriptor(OCI_MANIFEST, len(self.manifest), self.digest, annotations=dict(annotations or {}))

    def config_descriptor(self) -> Descriptor:
        return Descriptor(OCI_CONFIG, len(self.config), sha256_digest(self.config))


def build_attachment_manifest(layers: Sequence[Descriptor]) -> AttachmentManifest:
    if len(layers) > MAX_LAYERS:
        raise VerificationError(f"more than {MAX_LAYERS} attachments for one digest")
    config = attachment_config([d.digest for d in layers])
    cdesc = Descriptor(OCI_CONFIG, len(config), sha256_digest(config))
    return AttachmentManifest(manifest_json(cdesc, layers), config, tuple(layers))


def attachment_image(layers: Sequence[Any]) -> Image:
    """The attachment image for `layers` (each with a `descriptor()`: a `BlobLayer` of ours, or a
    layer the registry already holds): what `sign` hands to a transport to publish."""
    am = build_attachment_manifest([layer.descriptor() for layer in layers])
    return Image(am.config, am.manifest, tuple(layers), platform=None)


def _same(a: Descriptor, b: Descriptor) -> bool:
    return (a.media_type, a.digest, dict(a.annotations)) == (b.media_type, b.digest, dict(b.annotations))


def merge_layers(existing: Sequence[Descriptor], new: Sequence[Descriptor]) -> tuple[list[Descriptor], bool]:
    """Existing layers first (other signers are kept), then each new one unless an identical
    layer (type, digest, annotations) is there. Returns (layers, changed)."""
    out = list(existing)
    changed = False
    for d in new:
        if not any(_same(d, e) for e in out):
            out.append(d)
            changed = True
    return out, changed


def parse_attachment_manifest(raw: bytes, source: str) -> list[Descriptor]:
    """The layer descriptors of an attachment manifest (OCI or Docker schema 2)."""
    try:
        obj = json.loads(raw)
    except ValueError as e:
        raise VerificationError(f"{source}: attachment manifest is not JSON: {e}") from e
    if not isinstance(obj, dict) or not isinstance(obj.get("layers"), list):
        raise VerificationError(f"{source}: attachment manifest has no layers")
    return [Descriptor.from_json(l) for l in obj["layers"]]


def load_attachments(layers: Sequence[Descriptor], fetch: Callable[[Descriptor], bytes]) -> list[Attachment]:
    """Fetch every layer's blob (the fetcher checks digest and size)."""
    return [Attachment(fetch(d), d.media_type, dict(d.annotations)) for d in layers]


# --------------------------------------------------------------------------- containers/image dir:

_SIGSTORE_PREFIX = b"\x00sigstore-json\n"


def from_containers_blob(data: bytes, source: str = "signature") -> Attachment:
    """A c/image `dir:` signature file: 0x00 `sigstore-json` LF, then
    `{"mimeType","payload"(base64),"annotations"}`."""
    if not data.startswith(_SIGSTORE_PREFIX):
        raise VerificationError(f"{source}: not a sigstore signature blob")
    try:
        obj = json.loads(data[len(_SIGSTORE_PREFIX):])
        payload = base64.b64decode(obj["payload"], validate=True)
        return Attachment(payload, str(obj["mimeType"]), dict(obj.get("annotations") or {}))
    except (ValueError, KeyError, TypeError) as e:
        raise VerificationError(f"{source}: malformed sigstore signature blob ({e})") from e
