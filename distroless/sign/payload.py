"""cosign's classic "simple signing" payload and its ECDSA P-256 / SHA-256 signature.

The signature covers the exact payload bytes (never a re-serialisation), DER-encoded and put in
standard base64 in the layer annotation `dev.cosignproject.cosign/signature` (signing notes §1.2-1.4).
We emit the strict shape containers/image demands (§1.3) so both cosign and c/image accept it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from distroless.errors import InvalidReferenceError, VerificationError
from distroless.oci.gojson import go_map, marshal
from distroless.oci.mediatypes import COSIGN_SIMPLESIGNING
from distroless.registry.reference import normalize_name

SIMPLESIGNING_MEDIA_TYPE = COSIGN_SIMPLESIGNING
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
COSIGN_TYPE = "cosign container image signature"


# --------------------------------------------------------------------------- raw signatures


def sign_bytes(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """ASN.1 DER ECDSA over SHA-256 of `data` (what every cosign verifier accepts)."""
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


def verify_bytes(pub: ec.EllipticCurvePublicKey, data: bytes, signature: bytes) -> bool:
    """DER first; raw r‖s as newer sigstore verifiers also accept it."""
    try:
        pub.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        return True
    except InvalidSignature:
        pass
    except ValueError:
        pass  # not DER
    width = (pub.curve.key_size + 7) // 8
    if len(signature) == 2 * width:
        der = encode_dss_signature(
            int.from_bytes(signature[:width], "big"), int.from_bytes(signature[width:], "big")
        )
        try:
            pub.verify(der, data, ec.ECDSA(hashes.SHA256()))
            return True
        except InvalidSignature:
            return False
    return False


def b64_signature(signature: bytes) -> str:
    return base64.b64encode(signature).decode()


def decode_b64(value: str, what: str) -> bytes:
    """Standard or URL-safe base64, padded or not (DSSE allows both; cosign writes standard)."""
    text = value.strip()
    text += "=" * (-len(text) % 4)
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(text)
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise VerificationError(f"{what} is not base64") from e


# --------------------------------------------------------------------------- the payload


def simple_signing_payload(
    docker_reference: str, manifest_digest: str, annotations: Mapping[str, Any] | None = None
) -> bytes:
    """Compact JSON in Go's field order; `optional` is `null` without annotations (always present)."""
    body = {
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": manifest_digest},
            "type": COSIGN_TYPE,
        },
        "optional": go_map(annotations) if annotations else None,
    }
    return marshal(body)


@dataclass(frozen=True, slots=True)
class SimpleSigning:
    docker_reference: str
    manifest_digest: str
    type: str
    optional: Mapping[str, Any] | None = field(default=None)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise VerificationError(f"payload has a duplicate key {k!r}")
        out[k] = v
    return out


def _exact(obj: Any, keys: set[str], where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise VerificationError(f"payload {where} is not a JSON object")
    if set(obj) != keys:
        extra, missing = sorted(set(obj) - keys), sorted(keys - set(obj))
        raise VerificationError(f"payload {where}: unexpected keys {extra}, missing {missing}")
    return obj


def parse_payload(data: bytes, *, strict: bool = True) -> SimpleSigning:
    """Parse a simple-signing payload. `strict` applies containers/image's exact-field rules;
    otherwise only what cosign reads (the digest) is required."""
    try:
        obj = json.loads(data, object_pairs_hook=_no_duplicates if strict else None)
    except ValueError as e:
        if isinstance(e, VerificationError):
            raise
        raise VerificationError(f"payload is not JSON: {e}") from e
    if strict:
        top = _exact(obj, {"critical", "optional"}, "top level")
        crit = _exact(top["critical"], {"type", "image", "identity"}, "critical")
        image = _exact(crit["image"], {"docker-manifest-digest"}, "critical.image")
        ident = _exact(crit["identity"], {"docker-reference"}, "critical.identity")
        optional = top["optional"]
        if optional is not None and not isinstance(optional, dict):
            raise VerificationError("payload optional is neither an object nor null")
        if optional:
            if "creator" in optional and not isinstance(optional["creator"], str):
                raise VerificationError("payload optional.creator is not a string")
            ts = optional.get("timestamp")
            if "timestamp" in optional and (isinstance(ts, bool) or not isinstance(ts, (int, float))
                                            or int(ts) != ts):
                raise VerificationError("payload optional.timestamp is not an integer")
        if crit["type"] != COSIGN_TYPE:
            raise VerificationError(f"payload type is {crit['type']!r}, not {COSIGN_TYPE!r}")
    else:
        if not isinstance(obj, dict) or not isinstance(obj.get("critical"), dict):
            raise VerificationError("payload has no critical section")
        crit = obj["critical"]
        image = crit.get("image") if isinstance(crit.get("image"), dict) else {}
        ident = crit.get("identity") if isinstance(crit.get("identity"), dict) else {}
        optional = obj.get("optional") if isinstance(obj.get("optional"), dict) else None
    digest = image.get("docker-manifest-digest")
    ref = ident.get("docker-reference", "")
    if not isinstance(digest, str) or not digest.startswith("sha256:") or len(digest) != 71:
        raise VerificationError(f"payload docker-manifest-digest {digest!r} is not a sha256 digest")
    if not isinstance(ref, str):
        raise VerificationError("payload docker-reference is not a string")
    return SimpleSigning(ref, digest, str(crit.get("type", "")), optional)


# --------------------------------------------------------------------------- verification


@dataclass(frozen=True, slots=True)
class SignatureLayer:
    """One candidate signature: the payload blob and its layer annotations."""

    payload: bytes
    annotations: Mapping[str, str]
    media_type: str = SIMPLESIGNING_MEDIA_TYPE


@dataclass(frozen=True, slots=True)
class VerifiedSignature:
    payload: SimpleSigning
    raw: bytes
    has_rekor_bundle: bool


def _repository(reference: str) -> str:
    """`host/repo` of `host/repo[:tag][@digest]` without needing the registry module."""
    name = reference.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def identity_matches(signed: str, expected: str) -> bool:
    """The signed docker-reference names `expected`: same repository, and when both carry a
    tag the same tag (a repository-only identity accepts any tag, as cosign signs)."""
    try:
        s_repo, e_repo = normalize_name(_repository(signed)), normalize_name(_repository(expected))
    except InvalidReferenceError:  # an unparsable identity never matches
        return False
    if s_repo != e_repo:
        return False
    s_tag = signed.split("@", 1)[0][len(_repository(signed)) :]
    e_tag = expected.split("@", 1)[0][len(_repository(expected)) :]
    return not s_tag or not e_tag or s_tag == e_tag


def check_signature(
    layer: SignatureLayer,
    pub: ec.EllipticCurvePublicKey,
    image_digest: str,
    *,
    annotations: Mapping[str, str] | None = None,
    identity: str | None = None,
    strict: bool = False,
    check_claims: bool = True,
) -> VerifiedSignature:
    """One layer: signature over the payload bytes, digest claim, `-a` claims, identity.
    Raises VerificationError naming the first failed check."""
    if layer.media_type != SIMPLESIGNING_MEDIA_TYPE:
        raise VerificationError(f"attachment of type {layer.media_type!r} is not a simple signature")
    sig_b64 = layer.annotations.get(SIGNATURE_ANNOTATION)
    if not sig_b64:
        raise VerificationError(f"no {SIGNATURE_ANNOTATION} annotation")
    sig = decode_b64(sig_b64, "signature annotation")
    if not verify_bytes(pub, layer.payload, sig):
        raise VerificationError("signature does not verify over the payload with this key")
    parsed = parse_payload(layer.payload, strict=strict)
    if not check_claims:  # cosign --check-claims=false: the signature alone
        return VerifiedSignature(parsed, layer.payload, BUNDLE_ANNOTATION in layer.annotations)
    if parsed.manifest_digest != image_digest:
        raise VerificationError(
            f"payload signs {parsed.manifest_digest}, but the image digest is {image_digest}"
        )
    for k, v in (annotations or {}).items():
        if not parsed.optional or k not in parsed.optional or str(parsed.optional[k]) != v:
            raise VerificationError(f"annotation {k}={v} is not in the signed payload")
    if identity is not None and not identity_matches(parsed.docker_reference, identity):
        raise VerificationError(
            f"payload identity {parsed.docker_reference!r} does not match {identity!r}"
        )
    return VerifiedSignature(parsed, layer.payload, BUNDLE_ANNOTATION in layer.annotations)


def verify(
    layers: Sequence[SignatureLayer],
    pub: ec.EllipticCurvePublicKey,
    image_digest: str,
    *,
    annotations: Mapping[str, str] | None = None,
    identity: str | None = None,
    strict: bool = False,
    check_claims: bool = True,
    what: str = "",
) -> list[VerifiedSignature]:
    """Every layer that passes; at least one must (as cosign: any valid signature suffices).
    On failure the error lists why each candidate was rejected."""
    where = f" for {what}" if what else ""
    if not layers:
        raise VerificationError(f"no signatures found{where}")
    ok: list[VerifiedSignature] = []
    reasons: list[str] = []
    for i, layer in enumerate(layers, 1):
        try:
            ok.append(check_signature(layer, pub, image_digest, annotations=annotations,
                                      identity=identity, strict=strict, check_claims=check_claims))
        except VerificationError as e:
            reasons.append(f"#{i}: {e}")
    if not ok:
        raise VerificationError(f"no valid signature{where}: " + "; ".join(reasons))
    return ok
