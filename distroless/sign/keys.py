"""cosign key files: `cosign.key` (scrypt + NaCl secretbox around PKCS#8) and `cosign.pub` (PKIX PEM).

The encrypted file is a PEM block whose body is compact JSON
`{"kdf":{"name":"scrypt","params":{"N":…,"r":8,"p":1},"salt":…},"cipher":{"name":"nacl/secretbox","nonce":…},"ciphertext":…}`
(signing notes §2.2). Readers accept only the three scrypt parameter sets cosign accepts, so a
file we write is one cosign can read; we write N=65536 like cosign ≥ 2.2.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from distroless.fsutil import KEY_CAP, read_regular
from distroless.errors import KeyFileError

LABEL_SIGSTORE = "ENCRYPTED SIGSTORE PRIVATE KEY"  # cosign >= 2.0.1 writes this
LABEL_COSIGN = "ENCRYPTED COSIGN PRIVATE KEY"  # cosign <= 2.0.0 and containers/image
ENCRYPTED_LABELS = (LABEL_SIGSTORE, LABEL_COSIGN)
PLAIN_LABELS = ("PRIVATE KEY", "EC PRIVATE KEY")
PUBLIC_LABEL = "PUBLIC KEY"

# go-securesystemslib's accepted (N, r, p): legacy, standard (default since cosign 2.2), OWASP.
SCRYPT_PARAMS = ((1 << 15, 8, 1), (1 << 16, 8, 1), (1 << 17, 8, 1))
WRITE_N = 1 << 16
SALT_LEN = 32
NONCE_LEN = 24
KEY_LEN = 32

_PEM_RE = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL
)


@dataclass(frozen=True, slots=True)
class PemBlock:
    label: str
    der: bytes


def pem_encode(label: str, der: bytes) -> bytes:
    """Go's `pem.Encode`: 64-column base64 lines."""
    b64 = base64.b64encode(der)
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return (
        f"-----BEGIN {label}-----\n".encode()
        + b"".join(line + b"\n" for line in lines)
        + f"-----END {label}-----\n".encode()
    )


def pem_decode(data: bytes, source: str) -> PemBlock:
    """The first PEM block in `data` (text outside blocks is ignored, as Go's pem.Decode does)."""
    m = _PEM_RE.search(data)
    if m is None:
        raise KeyFileError(f"{source}: no PEM block found (not a key file)")
    body = b"".join(m.group(2).split())
    try:
        der = base64.b64decode(body, validate=True)
    except binascii.Error as e:
        raise KeyFileError(f"{source}: corrupt PEM body ({e})") from e
    return PemBlock(m.group(1).decode(), der)


# --------------------------------------------------------------------------- the encrypted envelope


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    # OpenSSL's default 32 MiB cap is below the 64/128 MiB that N=2^16/2^17 need.
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=1 << 28, dklen=KEY_LEN)


def encrypt_key_der(plaintext: bytes, password: bytes, *, n: int = WRITE_N,
                    salt: bytes | None = None, nonce: bytes | None = None) -> bytes:
    """The JSON envelope (bytes) sealing `plaintext` under `password`."""
    from nacl.secret import SecretBox

    if (n, 8, 1) not in SCRYPT_PARAMS:
        raise KeyFileError(f"unsupported scrypt N={n}")
    salt = os.urandom(SALT_LEN) if salt is None else salt
    nonce = os.urandom(NONCE_LEN) if nonce is None else nonce
    box = SecretBox(_scrypt(password, salt, n, 8, 1))
    # PyNaCl's ciphertext is tag‖encrypted bytes: Go's secretbox.Seal layout.
    ct = box.encrypt(plaintext, nonce).ciphertext
    envelope = {
        "kdf": {
            "name": "scrypt",
            "params": {"N": n, "r": 8, "p": 1},
            "salt": base64.b64encode(salt).decode(),
        },
        "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
        "ciphertext": base64.b64encode(ct).decode(),
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


def _b64_field(obj: dict, key: str, source: str, size: int | None = None) -> bytes:
    value = obj.get(key)
    if not isinstance(value, str):
        raise KeyFileError(f"{source}: corrupt key file: missing {key}")
    try:
        raw = base64.b64decode(value, validate=True)
    except binascii.Error as e:
        raise KeyFileError(f"{source}: corrupt key file: {key} is not base64") from e
    if size is not None and len(raw) != size:
        raise KeyFileError(f"{source}: corrupt key file: {key} is {len(raw)} bytes, not {size}")
    return raw


def decrypt_key_der(envelope: bytes, password: bytes, source: str) -> bytes:
    """Open the JSON envelope; a wrong password and a tampered file both fail authentication."""
    from nacl.exceptions import CryptoError
    from nacl.secret import SecretBox

    try:
        obj = json.loads(envelope)
        kdf, cipher = obj["kdf"], obj["cipher"]
        params = kdf["params"]
        n, r, p = int(params["N"]), int(params["r"]), int(params["p"])
        kdf_name, cipher_name = kdf["name"], cipher["name"]
    except (ValueError, KeyError, TypeError) as e:
        raise KeyFileError(f"{source}: corrupt key file: the encrypted envelope is not valid JSON "
                           f"with kdf/cipher/ciphertext ({type(e).__name__}: {e})") from e
    if kdf_name != "scrypt" or cipher_name != "nacl/secretbox":
        raise KeyFileError(f"{source}: unsupported key encryption {kdf_name}/{cipher_name}")
    if (n, r, p) not in SCRYPT_PARAMS:
        raise KeyFileError(f"{source}: unsupported scrypt parameters N={n} r={r} p={p}")
    salt = _b64_field(kdf, "salt", source)
    nonce = _b64_field(cipher, "nonce", source, NONCE_LEN)
    ct = _b64_field(obj, "ciphertext", source)
    try:
        return SecretBox(_scrypt(password, salt, n, r, p)).decrypt(ct, nonce)
    except CryptoError as e:
        raise KeyFileError(
            f"{source}: wrong password (or the key file is corrupt): decryption failed"
        ) from e


# --------------------------------------------------------------------------- keys


def _require_p256(key: object, source: str) -> ec.EllipticCurvePrivateKey:
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise KeyFileError(f"{source}: not an ECDSA key ({type(key).__name__}); cosign keys are P-256")
    if not isinstance(key.curve, ec.SECP256R1):
        raise KeyFileError(f"{source}: ECDSA key on {key.curve.name}, expected P-256")
    return key


@dataclass(frozen=True, slots=True)
class PrivateKey:
    """A loaded signing key; `pkcs8` is False for a SEC1 key, which cosign itself cannot load."""

    key: ec.EllipticCurvePrivateKey
    source: str
    pkcs8: bool = True

    def public_pem(self) -> bytes:
        return public_key_pem(self.key.public_key())


def public_key_pem(pub: ec.EllipticCurvePublicKey) -> bytes:
    return pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _load_der(der: bytes, source: str) -> PrivateKey:
    pkcs8 = True
    try:
        key = serialization.load_der_private_key(der, None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise KeyFileError(f"{source}: corrupt key file: the private key does not parse ({e})") from e
    # SEC1 ECPrivateKey DER starts SEQUENCE, INTEGER 1; PKCS#8 starts SEQUENCE, INTEGER 0.
    if len(der) > 6 and der[0] == 0x30 and b"\x02\x01\x01" in der[2:6]:
        pkcs8 = False
    return PrivateKey(_require_p256(key, source), source, pkcs8)


def load_private_key(data: bytes, password: bytes | None, source: str = "<key>") -> PrivateKey:
    """A cosign private key file (either encrypted label) or an unencrypted PKCS#8/SEC1 P-256 PEM.

    `password` is needed only for the encrypted labels; None there is an error."""
    block = pem_decode(data, source)
    if block.label in ENCRYPTED_LABELS:
        if password is None:
            raise KeyFileError(f"{source}: the key is encrypted and no password was given")
        return _load_der(decrypt_key_der(block.der, password, source), source)
    if block.label in PLAIN_LABELS:
        return _load_der(block.der, source)
    raise KeyFileError(f"{source}: unsupported PEM type {block.label!r} for a private key")


def key_is_encrypted(data: bytes, source: str = "<key>") -> bool:
    return pem_decode(data, source).label in ENCRYPTED_LABELS


PasswordSource = Callable[[str], bytes]  # given the prompt text; the front door asks env or terminal


def read_private_key(path: str | os.PathLike[str], password: bytes | PasswordSource | None = None) -> PrivateKey:
    """Read `path`; a password source (the front door's) is called only when the file is encrypted."""
    source = str(path)
    try:
        data = read_regular(path, KEY_CAP, "key")
    except OSError as e:
        raise KeyFileError(f"{source}: cannot read key file: {e.strerror or e}") from None
    if callable(password):
        password = password(f"Enter password for private key {source}: ") if key_is_encrypted(data, source) else None
    return load_private_key(data, password, source)


def load_public_key(data: bytes, source: str = "<public key>") -> ec.EllipticCurvePublicKey:
    """`cosign.pub`: PEM `PUBLIC KEY` (SubjectPublicKeyInfo), ECDSA."""
    block = pem_decode(data, source)
    if block.label != PUBLIC_LABEL:
        raise KeyFileError(f"{source}: expected a PEM PUBLIC KEY block, found {block.label!r}")
    try:
        key = serialization.load_der_public_key(block.der)
    except (ValueError, UnsupportedAlgorithm) as e:
        raise KeyFileError(f"{source}: corrupt public key ({e})") from e
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise KeyFileError(f"{source}: unsupported public key type {type(key).__name__} (ECDSA expected)")
    return key


def read_public_key(path: str | os.PathLike[str]) -> ec.EllipticCurvePublicKey:
    try:
        data = read_regular(path, KEY_CAP, "key")
    except OSError as e:
        raise KeyFileError(f"{path}: cannot read public key: {e.strerror or e}") from None
    return load_public_key(data, str(path))


def encrypt_private_key(key: ec.EllipticCurvePrivateKey, password: bytes, *, n: int = WRITE_N) -> bytes:
    """The `ENCRYPTED SIGSTORE PRIVATE KEY` PEM for `key` (PKCS#8 inside, as cosign requires)."""
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem_encode(LABEL_SIGSTORE, encrypt_key_der(der, password, n=n))


def generate_key_pair(password: bytes | str) -> tuple[bytes, bytes]:
    """A fresh P-256 pair as (encrypted private PEM, public PEM), the bytes cosign writes."""
    if isinstance(password, str):
        password = password.encode()
    key = ec.generate_private_key(ec.SECP256R1())
    return encrypt_private_key(key, password), public_key_pem(key.public_key())


