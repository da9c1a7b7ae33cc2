"""`sign-blob` / `verify-blob` with key files: cosign's raw-blob signature.

cosign signs the blob's bytes with ECDSA P-256 over SHA-256 (DER) and prints the signature in
standard base64 (`--b64=true`, the default). `verify-blob --signature` takes a file holding that
text (or the raw DER when the file was written with `--b64=false`), or the base64 text itself.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from distroless.errors import ConfigError, VerificationError
from distroless.sign.payload import sign_bytes, verify_bytes

MAX_SIGNATURE_FILE = 64 << 10  # a P-256 signature is ~100 bytes of base64; refuse anything huge


def sign_blob(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    return sign_bytes(key, data)


def read_signature(value: str) -> bytes:
    """The `--signature` argument: a file (base64 text or raw DER) or base64 text itself."""
    path = Path(value)
    if path.is_file():
        if path.stat().st_size > MAX_SIGNATURE_FILE:
            raise ConfigError(f"{value}: {path.stat().st_size} bytes is too large for a signature file")
        return parse_signature(path.read_bytes(), value)
    try:
        return base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"--signature {value!r}: neither a file nor base64 text") from None


def parse_signature(raw: bytes, source: str) -> bytes:
    """A signature file's bytes: base64 text (cosign's default) or the raw DER (`--b64=false`)."""
    if len(raw) > MAX_SIGNATURE_FILE:
        raise ConfigError(f"{source}: {len(raw)} bytes is too large for a signature")
    try:
        return base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        return raw


def verify_blob(pub: ec.EllipticCurvePublicKey, data: bytes, signature: bytes, what: str) -> None:
    if not verify_bytes(pub, data, signature):
        raise VerificationError(f"{what}: the signature does not verify with this key")


def read_blob_arg(value: str | os.PathLike[str]) -> bytes:
    """The blob to sign or verify: a path, or `-` for stdin (as cosign)."""
    if str(value) == "-":
        import sys

        return sys.stdin.buffer.read()
    try:
        return Path(value).read_bytes()
    except OSError as e:
        raise ConfigError(f"{value}: cannot read blob: {e.strerror or e}") from e
