"""RSA keys for apk signatures: generation, PEM loading, PKCS#1 v1.5 sign/verify, keyrings.

Signature entries are named `.SIGN.<ALG>.<keyname>`; ALG fixes the digest (RSA = SHA-1,
RSA256 = SHA-256, RSA512 = SHA-512) and `keyname` is the public key's file name.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from distroless.fsutil import KEY_CAP, atomic_write, read_regular
from distroless.errors import FormatError

MIN_BITS = 2048
DEFAULT_BITS = 4096

DIGESTS: dict[str, tuple[str, hashes.HashAlgorithm]] = {
    "RSA": ("sha1", hashes.SHA1()),
    "RSA256": ("sha256", hashes.SHA256()),
    "RSA512": ("sha512", hashes.SHA512()),
}


@dataclass(frozen=True)
class SigningKey:
    """A private key and the file name its public half is published under (`<name>.rsa.pub`)."""

    key: rsa.RSAPrivateKey
    pub_name: str

    def sign(self, message: bytes, alg: str = "RSA256") -> bytes:
        return self.key.sign(message, padding.PKCS1v15(), DIGESTS[alg][1])

    def sign_digest(self, digest: bytes, alg: str = "RSA256") -> bytes:
        return self.key.sign(digest, padding.PKCS1v15(), Prehashed(DIGESTS[alg][1]))

    def public_pem(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def _check_size(bits: int, source: str) -> None:
    if bits < MIN_BITS:
        raise FormatError(f"{source}: RSA key of {bits} bits is too small (at least {MIN_BITS} required)")


def generate(bits: int = DEFAULT_BITS) -> rsa.RSAPrivateKey:
    _check_size(bits, "keygen")
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def write_keypair(path: Path, key: rsa.RSAPrivateKey) -> tuple[Path, Path]:
    """Write `path` (PKCS#1 PEM, mode 0600) and `path.pub` (SPKI PEM), atomically."""
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    pub_path = path.with_name(path.name + ".pub")
    atomic_write(path, private, mode=0o600)
    atomic_write(pub_path, public, mode=0o644)
    return path, pub_path


def load_private(path: Path) -> SigningKey:
    """Read a PKCS#1 or PKCS#8 RSA private key; its public name is `<basename>.pub` as in melange."""
    source = str(path)
    try:
        data = read_regular(path, KEY_CAP, "key")
    except OSError as e:
        raise FormatError(f"{source}: cannot read signing key: {e.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise FormatError(f"{source}: not a PEM RSA private key ({_reason(e)})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise FormatError(f"{source}: not an RSA private key")
    _check_size(key.key_size, source)
    return SigningKey(key, Path(path).name + ".pub")


def load_public(data: bytes, source: str) -> rsa.RSAPublicKey:
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise FormatError(f"{source}: not a PEM public key ({_reason(e)})") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise FormatError(f"{source}: not an RSA public key")
    _check_size(key.key_size, source)
    return key


def _reason(e: Exception) -> str:
    return str(e).split("\n")[0] or type(e).__name__


class Keyring:
    """Trusted public keys by file name, as in `/etc/apk/keys`."""

    def __init__(self, keys: dict[str, rsa.RSAPublicKey] | None = None):
        self.keys: dict[str, rsa.RSAPublicKey] = dict(keys or {})

    @classmethod
    def load(cls, paths: list[str | os.PathLike[str]]) -> "Keyring":
        """Keys from files and directories (every regular file in a directory is a key)."""
        ring = cls()
        for p in paths:
            p = Path(p)
            files = sorted(f for f in p.iterdir() if f.is_file()) if p.is_dir() else [p]
            for f in files:
                try:
                    data = read_regular(f, KEY_CAP, "key")
                except OSError as e:
                    raise FormatError(f"{f}: cannot read key: {e.strerror}") from None
                ring.add(f.name, data, str(f))
        return ring

    def add(self, name: str, pem: bytes, source: str | None = None) -> None:
        self.keys[name] = load_public(pem, source or name)

    def find(self, keyname: str) -> rsa.RSAPublicKey | None:
        """Match by exact file name, or by the name without `.rsa.pub` (proxies drop it), as apko does."""
        if keyname in self.keys:
            return self.keys[keyname]
        if keyname.endswith(".rsa.pub"):
            return self.keys.get(keyname[: -len(".rsa.pub")])
        return None

    def __len__(self) -> int:
        return len(self.keys)


def verify_digest(key: rsa.RSAPublicKey, signature: bytes, digest: bytes, alg: str) -> bool:
    try:
        key.verify(signature, digest, padding.PKCS1v15(), Prehashed(DIGESTS[alg][1]))
        return True
    except InvalidSignature:
        return False


def digest_of(alg: str, message: bytes) -> bytes:
    return hashlib.new(DIGESTS[alg][0], message).digest()
