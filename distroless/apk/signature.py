"""Signature members: the leading gzip member of a signed .apk or APKINDEX.tar.gz.

It holds one tar entry per signature, `.SIGN.<ALG>.<keyname>`, each a PKCS#1 v1.5 signature over
the digest of what follows: the control member (packages) or all later bytes (indexes). The tar
has no end-of-archive blocks, so apk-tools reads on into the next member.
"""

from __future__ import annotations

import io
import re
import tarfile
from dataclasses import dataclass

from distroless.apk import keys
from distroless.apk.gzmember import gzip_member
from distroless.errors import FormatError, VerificationError
from distroless.tarball import Header, encode_header, padding

_SIGN_NAME = re.compile(r"^\.SIGN\.([A-Z0-9]+)\.(.+)$")


@dataclass(frozen=True, slots=True)
class Signature:
    alg: str
    keyname: str
    blob: bytes

    @property
    def entry_name(self) -> str:
        return f".SIGN.{self.alg}.{self.keyname}"


def parse_tar(data: bytes, source: str) -> list[Signature]:
    """The signatures in a decompressed signature member (a tar without end blocks)."""
    sigs: list[Signature] = []
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
            for info in tf:
                m = _SIGN_NAME.match(info.name)
                if not m or not info.isfile():
                    raise FormatError(f"{source}: signature member: unexpected entry {info.name!r}")
                f = tf.extractfile(info)
                assert f is not None
                sigs.append(Signature(m.group(1), m.group(2), f.read()))
    except tarfile.TarError as e:
        raise FormatError(f"{source}: signature member: not a tar ({e})") from None
    return sigs


def is_signature_tar(data: bytes) -> bool:
    """apk-tools and apko take a first member as signatures when its first entry is `.SIGN.*`."""
    return data[:6] == b".SIGN."


def build_member(sigs: list[Signature], mtime: int = 0) -> bytes:
    """A gzip member with one 0644 root entry per signature and no end-of-archive blocks."""
    tar = b""
    for s in sigs:
        h = Header(s.entry_name, mode=0o644, size=len(s.blob), mtime=mtime, uname="root", gname="root")
        tar += encode_header(h) + s.blob + padding(len(s.blob))
    return gzip_member(tar)


def sign(key: keys.SigningKey, digests: dict[str, bytes], alg: str = "RSA256") -> Signature:
    return Signature(alg, key.pub_name, key.sign_digest(digests[alg], alg))


def verify(sigs: list[Signature], keyring: keys.Keyring, digests: dict[str, bytes], what: str) -> list[str]:
    """Check every signature whose key is known; at least one must hold. Returns the verified key names.

    A signature by an unknown key is skipped, as apk-tools and apko do; a known key whose signature
    does not match is an error, since that means the signed bytes were altered.
    """
    if not sigs:
        raise VerificationError(f"{what}: not signed")
    if not len(keyring):
        raise VerificationError(f"{what}: no trusted keys provided")
    good: list[str] = []
    unknown: list[str] = []
    for s in sigs:
        if s.alg not in keys.DIGESTS:
            continue  # DSA and other legacy algorithms are ignored, as in apko
        key = keyring.find(s.keyname)
        if key is None:
            unknown.append(s.keyname)
            continue
        if not keys.verify_digest(key, s.blob, digests[s.alg], s.alg):
            raise VerificationError(f"{what}: signature {s.entry_name} does not match (BAD signature)")
        good.append(s.keyname)
    if not good:
        names = ", ".join(unknown) or "none usable"
        raise VerificationError(f"{what}: no signature by a trusted key (signed by: {names})")
    return good
