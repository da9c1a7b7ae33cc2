"""What cosign prints about an image's attachments: `verify`'s JSON, `download signature`,
`download attestation`, `download sbom`, `tree` and `triangulate`.

The shapes are cosign 2.5's, so scripts that pipe them to `jq` keep working:
- `verify`: a header on stderr; on stdout one compact JSON array of the verified simple-signing
  payloads, each re-marshalled in Go's field order (`-o text`: one payload per line);
- `download signature`: one JSON object per line, `{"Base64Signature","Payload","Cert","Chain",
  "Bundle","RFC3161Timestamp"}` (Payload = base64 of the payload bytes);
- `download attestation`: each DSSE envelope as stored, one per line;
- `triangulate`: the `.sig` / `.att` / `.sbom` tag reference.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from distroless.errors import RegistryNotFoundError
from distroless.oci.gojson import marshal
from distroless.oci.mediatypes import OCI_MANIFEST
from distroless.registry.client import RegistryClient
from distroless.registry.reference import Reference
from distroless.sign import attach, dsse, payload

SBOM_SUFFIX = "sbom"
TRIANGULATE_TYPES = {"signature": attach.SIG_SUFFIX, "attestation": attach.ATT_SUFFIX, "sbom": SBOM_SUFFIX}


# --------------------------------------------------------------------------- verify output


def verification_header(target: str, *, claims: bool, annotations: bool) -> str:
    """cosign's PrintVerificationHeader for a key-based check without a transparency log."""
    lines = ["", f"Verification for {target} --", "The following checks were performed on each of these signatures:"]
    if claims:
        if annotations:
            lines.append("  - The specified annotations were verified.")
        lines.append("  - The cosign claims were validated")
    lines.append("  - The signatures were verified against the specified public key")
    return "\n".join(lines) + "\n"


def _go_value(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _go_value(v[k]) for k in sorted(v)}
    if isinstance(v, list):
        return [_go_value(x) for x in v]
    return v


def payload_object(raw: bytes) -> dict[str, Any]:
    """cosign's `payload.SimpleContainerImage` after a JSON round trip: only its known fields,
    in struct order; `optional` a sorted map or null."""
    obj = json.loads(raw)
    crit = obj.get("critical") or {}
    optional = obj.get("optional")
    return {
        "critical": {
            "identity": {"docker-reference": (crit.get("identity") or {}).get("docker-reference", "")},
            "image": {"docker-manifest-digest": (crit.get("image") or {}).get("docker-manifest-digest", "")},
            "type": crit.get("type", ""),
        },
        "optional": _go_value(optional) if isinstance(optional, dict) else None,
    }


def render_verified(verified: Sequence[payload.VerifiedSignature], output: str) -> bytes:
    """stdout of `cosign verify -o json|text` (json starts with an empty line, as cosign's)."""
    objs = [payload_object(v.raw) for v in verified]
    if output == "text":
        return b"".join(marshal(o) + b"\n" for o in objs)
    return b"\n" + marshal(objs) + b"\n"


def render_verified_attestations(verified: Sequence[dsse.VerifiedAttestation]) -> bytes:
    """stdout of `cosign verify-attestation`: each verified envelope, one per line."""
    return b"".join(v.envelope.to_json() + b"\n" for v in verified)


# --------------------------------------------------------------------------- download / tree


def attachment_manifest(client: RegistryClient, ref: Reference, digest: str, suffix: str) -> list:
    """The layer descriptors under `sha256-<hex>.<suffix>`, or [] when the tag is absent."""
    tag = attach.attachment_tag(digest, suffix)
    try:
        m = client.get_manifest(ref.repository, tag, accept=(OCI_MANIFEST,))
    except RegistryNotFoundError:
        return []
    return attach.parse_attachment_manifest(m.raw, f"{ref.name}:{tag}")


def signature_record(a: attach.Attachment) -> bytes:
    """One line of `cosign download signature`."""
    ann = a.annotations
    return marshal({
        "Base64Signature": ann.get(payload.SIGNATURE_ANNOTATION, ""),
        "Payload": base64.b64encode(a.payload).decode(),
        "Cert": ann.get(payload.CERTIFICATE_ANNOTATION) or None,
        "Chain": ann.get(payload.CHAIN_ANNOTATION) or None,
        "Bundle": json.loads(ann[payload.BUNDLE_ANNOTATION]) if payload.BUNDLE_ANNOTATION in ann else None,
        "RFC3161Timestamp": None,
    })


def attestation_lines(atts: Iterable[attach.Attachment], predicate_type: str | None) -> bytes:
    """`cosign download attestation [--predicate-type T]`: envelopes as stored."""
    out = []
    for a in atts:
        if predicate_type and a.annotations.get(dsse.PREDICATE_TYPE_ANNOTATION) != predicate_type:
            continue
        out.append(a.payload.rstrip(b"\n") + b"\n")
    return b"".join(out)


@dataclass(frozen=True, slots=True)
class TreeSection:
    title: str
    tag_ref: str
    digests: tuple[str, ...]


def tree_sections(client: RegistryClient, ref: Reference, digest: str) -> list[TreeSection]:
    sections = []
    for title, suffix in (("💾 Attestations for an image tag", attach.ATT_SUFFIX),
                          ("🔐 Signatures for an image tag", attach.SIG_SUFFIX),
                          ("📦 SBOMs for an image tag", SBOM_SUFFIX)):
        layers = attachment_manifest(client, ref, digest, suffix)
        if layers:
            sections.append(TreeSection(title, f"{ref.name}:{attach.attachment_tag(digest, suffix)}",
                                        tuple(d.digest for d in layers)))
    return sections


def render_tree(target: str, sections: Sequence[TreeSection]) -> str:
    """`cosign tree`: the same glyphs, so eyes and greps used to cosign's output still match."""
    lines = [f"📦 Supply Chain Security Related artifacts for an image: {target}"]
    for s in sections:
        lines.append(f"└── {s.title}: {s.tag_ref}")
        for i, d in enumerate(s.digests):
            lines.append(f"   {'└──' if i == len(s.digests) - 1 else '├──'} 🍒 {d}")
    if not sections:
        lines.append(f"No Supply Chain Security Related Artifacts artifacts found for image {target}")
    return "\n".join(lines) + "\n"


def triangulate(ref: Reference, digest: str, kind: str) -> str:
    return f"{ref.name}:{attach.attachment_tag(digest, TRIANGULATE_TYPES[kind])}"

