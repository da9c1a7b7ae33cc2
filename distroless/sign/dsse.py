"""DSSE envelopes (PAE signing) and in-toto statements, as cosign's classic `.att` layers carry them.

Signing notes §1.5 and §6: the signature covers PAE(payloadType, statement bytes); the envelope
carries the statement as standard base64 (cosign's `--type` filter decodes standard base64 only).
Verification parses the statement from the same bytes that were verified, never a re-encoding.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from distroless.errors import VerificationError
from distroless.oci.gojson import marshal
from distroless.oci.mediatypes import DSSE_ENVELOPE, INTOTO_PAYLOAD
from distroless.sign.payload import b64_signature, decode_b64, sign_bytes, verify_bytes

INTOTO_PAYLOAD_TYPE = INTOTO_PAYLOAD
DSSE_MEDIA_TYPE = DSSE_ENVELOPE
STATEMENT_V01 = "https://in-toto.io/Statement/v0.1"
STATEMENT_V1 = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE_ANNOTATION = "predicateType"

# cosign's `--type` names (cmd/cosign/cli/options/predicate.go); compared as exact strings.
PREDICATE_TYPES: Mapping[str, str] = {
    "custom": "https://cosign.sigstore.dev/attestation/v1",
    "spdx": "https://spdx.dev/Document",
    "spdxjson": "https://spdx.dev/Document",
    "cyclonedx": "https://cyclonedx.org/bom",
    "slsaprovenance": "https://slsa.dev/provenance/v0.2",
    "slsaprovenance02": "https://slsa.dev/provenance/v0.2",
    "slsaprovenance1": "https://slsa.dev/provenance/v1",
    "link": "https://in-toto.io/Link/v1",
    "vuln": "https://cosign.sigstore.dev/attestation/vuln/v1",
    "openvex": "https://openvex.dev/ns",
}


def predicate_type_uri(name: str) -> str:
    """A cosign `--type` name, or a URI passed through as is."""
    if name in PREDICATE_TYPES:
        return PREDICATE_TYPES[name]
    if "://" in name:
        return name
    raise VerificationError(
        f"unknown predicate type {name!r}: use one of {', '.join(sorted(PREDICATE_TYPES))} or a URI"
    )


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSEv1 pre-authentication encoding: lengths are decimal byte counts."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


@dataclass(frozen=True, slots=True)
class DsseSignature:
    sig: bytes
    keyid: str = ""


@dataclass(frozen=True, slots=True)
class Envelope:
    payload: bytes
    payload_type: str
    signatures: tuple[DsseSignature, ...]

    def to_json(self) -> bytes:
        """Go (protojson-struct) order payload, payloadType, signatures; empty keyid dropped."""
        sigs = []
        for s in self.signatures:
            entry: dict[str, str] = {"sig": b64_signature(s.sig)}
            if s.keyid:
                entry["keyid"] = s.keyid
            sigs.append(entry)
        return marshal({
            "payload": b64_signature(self.payload),
            "payloadType": self.payload_type,
            "signatures": sigs,
        })


def sign_envelope(key: ec.EllipticCurvePrivateKey, body: bytes,
                  payload_type: str = INTOTO_PAYLOAD_TYPE) -> Envelope:
    return Envelope(body, payload_type, (DsseSignature(sign_bytes(key, pae(payload_type, body))),))


def parse_envelope(data: bytes) -> Envelope:
    try:
        obj = json.loads(data)
    except ValueError as e:
        raise VerificationError(f"DSSE envelope is not JSON: {e}") from e
    if not isinstance(obj, dict) or not isinstance(obj.get("payload"), str) \
            or not isinstance(obj.get("payloadType"), str):
        raise VerificationError("DSSE envelope lacks payload/payloadType")
    sigs = []
    for s in obj.get("signatures") or []:
        if not isinstance(s, dict) or not isinstance(s.get("sig"), str):
            raise VerificationError("DSSE envelope has a malformed signature entry")
        sigs.append(DsseSignature(decode_b64(s["sig"], "DSSE signature"), str(s.get("keyid") or "")))
    return Envelope(decode_b64(obj["payload"], "DSSE payload"), obj["payloadType"], tuple(sigs))


def verify_envelope(pub: ec.EllipticCurvePublicKey, env: Envelope) -> None:
    """At least one signature verifies over PAE (keyids are ignored: cosign leaves them empty)."""
    if not env.signatures:
        raise VerificationError("DSSE envelope has no signatures")
    message = pae(env.payload_type, env.payload)
    if not any(verify_bytes(pub, message, s.sig) for s in env.signatures):
        raise VerificationError("DSSE signature does not verify with this key")


# --------------------------------------------------------------------------- in-toto


def statement(
    subject_name: str,
    digest: str,
    predicate_type: str,
    predicate: Any,
    *,
    version: str = "v0.1",
) -> bytes:
    """An in-toto statement about one image digest (cosign writes v0.1, even in v3)."""
    algo, _, hexpart = digest.partition(":")
    if version == "v0.1":
        stype = STATEMENT_V01
    elif version == "v1":
        stype = STATEMENT_V1
    else:
        raise ValueError(f"unknown in-toto statement version {version!r}")
    subject: dict[str, Any] = {"digest": {algo: hexpart}}
    if subject_name:
        subject = {"name": subject_name, **subject}
    # in-toto-golang's StatementHeader order: _type, predicateType, subject; then predicate.
    return marshal({
        "_type": stype,
        "predicateType": predicate_type,
        "subject": [subject],
        "predicate": predicate,
    })


@dataclass(frozen=True, slots=True)
class Statement:
    type: str
    predicate_type: str
    subject_digests: tuple[Mapping[str, str], ...]
    predicate: Any
    raw: bytes


def parse_statement(data: bytes) -> Statement:
    try:
        obj = json.loads(data)
    except ValueError as e:
        raise VerificationError(f"in-toto statement is not JSON: {e}") from e
    if not isinstance(obj, dict):
        raise VerificationError("in-toto statement is not a JSON object")
    stype = obj.get("_type")
    if stype not in (STATEMENT_V01, STATEMENT_V1):
        raise VerificationError(f"unknown in-toto statement type {stype!r}")
    subjects = obj.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise VerificationError("in-toto statement has no subject")
    digests = []
    for s in subjects:
        d = s.get("digest") if isinstance(s, dict) else None
        if not isinstance(d, dict):
            raise VerificationError("in-toto subject without a digest")
        digests.append({str(k): str(v) for k, v in d.items()})
    ptype = obj.get("predicateType")
    if not isinstance(ptype, str) or not ptype:
        raise VerificationError("in-toto statement has no predicateType")
    return Statement(stype, ptype, tuple(digests), obj.get("predicate"), data)


def check_statement_subject(data: bytes, image_digest: str, what: str) -> str:
    """A user's statement file (`attest --statement`) is signed as is, but only about this
    image: some subject must carry its digest. Returns the statement's predicate type."""
    st = parse_statement(data)
    algo, _, hexpart = image_digest.partition(":")
    if not any(d.get(algo) == hexpart for d in st.subject_digests):
        raise VerificationError(f"the statement's subjects do not include {what}'s digest {image_digest}")
    return st.predicate_type


def predicate_for(type_name: str, raw: bytes, source: str = "predicate", *, timestamp: str = "") -> Any:
    """The predicate cosign's `attest --type` builds from a file: cosign's own `custom` type wraps
    the text as `{"Data": text, "Timestamp": RFC 3339}`; `spdx` (tag-value) is the text itself;
    cyclonedx may be XML text; every other type must be JSON and is embedded parsed.
    `timestamp` (RFC 3339) is the front door's choice: SOURCE_DATE_EPOCH when set, else now."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise VerificationError(f"{source}: predicate is not UTF-8 text") from e
    if type_name == "custom":
        if not timestamp:
            raise ValueError("a custom predicate needs its timestamp from the caller")
        return {"Data": text, "Timestamp": timestamp}
    if type_name == "spdx":
        return text
    try:
        return json.loads(text)
    except ValueError as e:
        if type_name == "cyclonedx":
            return text
        raise VerificationError(f"{source}: not JSON ({e}), required for --type {type_name}") from e


@dataclass(frozen=True, slots=True)
class VerifiedAttestation:
    statement: Statement
    envelope: Envelope


def check_attestation(
    envelope_bytes: bytes, pub: ec.EllipticCurvePublicKey, image_digest: str,
    predicate_type: str | None = None,
) -> VerifiedAttestation:
    """payloadType, DSSE signature, a subject with the image's sha256, then the type filter."""
    env = parse_envelope(envelope_bytes)
    if env.payload_type != INTOTO_PAYLOAD_TYPE:
        raise VerificationError(f"DSSE payloadType is {env.payload_type!r}, not {INTOTO_PAYLOAD_TYPE}")
    verify_envelope(pub, env)
    st = parse_statement(env.payload)
    algo, _, hexpart = image_digest.partition(":")
    if not any(d.get(algo) == hexpart for d in st.subject_digests):
        raise VerificationError(f"no attestation subject has the image digest {image_digest}")
    if predicate_type is not None and st.predicate_type != predicate_type:
        raise VerificationError(
            f"predicate type is {st.predicate_type!r}, not the requested {predicate_type!r}"
        )
    return VerifiedAttestation(st, env)


def verify_attestations(
    envelopes: Sequence[bytes], pub: ec.EllipticCurvePublicKey, image_digest: str,
    predicate_type: str | None = None, *, what: str = "",
) -> list[VerifiedAttestation]:
    where = f" for {what}" if what else ""
    if not envelopes:
        raise VerificationError(f"no attestations found{where}")
    ok, reasons = [], []
    for i, data in enumerate(envelopes, 1):
        try:
            ok.append(check_attestation(data, pub, image_digest, predicate_type))
        except VerificationError as e:
            reasons.append(f"#{i}: {e}")
    if not ok:
        raise VerificationError(f"no valid attestation{where}: " + "; ".join(reasons))
    return ok
