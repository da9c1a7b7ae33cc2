"""The Java truststore apko updates with additional certificates (`etc/ssl/certs/java/cacerts`).

A minimal JKS ("Java KeyStore", Sun's proprietary format) reader and writer:

* header: magic 0xFEEDFEED, version (1 or 2), entry count, all big-endian u32;
* each entry: tag u32 (1 = private key, 2 = trusted certificate), alias (Java "modified UTF-8":
  u16 length + bytes), creation time u64 in milliseconds since the epoch, then
  - trusted certificate: [version 2: certificate type, modified UTF-8] u32 length + DER;
  - private key: u32 length + protected key, u32 chain length, each certificate as above;
* trailer: SHA-1 over the password as UTF-16BE, the bytes "Mighty Aphrodite" and everything before.

apko loads the store with ordered aliases and writes every entry back sorted by alias; new aliases
are lower-cased (as Java and apko's library both do) and replace an entry of the same alias.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from distroless.errors import FormatError, VerificationError

MAGIC = 0xFEEDFEED
TAG_PRIVATE_KEY, TAG_TRUSTED_CERT = 1, 2
WHITENER = b"Mighty Aphrodite"  # fixed salt of the JKS integrity digest
PASSWORD = "changeit"  # the password every distribution's cacerts uses
X509 = "X.509"


class KeyStoreError(FormatError):
    pass


@dataclass(frozen=True, slots=True)
class TrustedCert:
    alias: str
    timestamp_ms: int
    der: bytes
    cert_type: str = X509


@dataclass(frozen=True, slots=True)
class PrivateKey:
    """Kept opaque: apko never touches these, they are only carried through."""

    alias: str
    timestamp_ms: int
    protected_key: bytes
    chain: tuple[tuple[str, bytes], ...]  # (certificate type, encoding)


Entry = TrustedCert | PrivateKey


@dataclass(frozen=True, slots=True)
class KeyStore:
    entries: tuple[Entry, ...]
    version: int = 2


# ---------------------------------------------------------------------------------------------
# Java's modified UTF-8 (DataOutputStream.writeUTF): NUL is C0 80, characters beyond the BMP are
# written as two 3-byte surrogates.


def mutf8_encode(s: str) -> bytes:
    out = bytearray()
    utf16 = s.encode("utf-16-be", "surrogatepass")
    for unit in struct.unpack(f">{len(utf16) // 2}H", utf16):
        if 0 < unit < 0x80:
            out.append(unit)
        elif unit < 0x800:
            out += bytes((0xC0 | unit >> 6, 0x80 | unit & 0x3F))
        else:
            out += bytes((0xE0 | unit >> 12, 0x80 | unit >> 6 & 0x3F, 0x80 | unit & 0x3F))
    return bytes(out)


def mutf8_decode(b: bytes) -> str:
    units: list[int] = []
    i = 0
    while i < len(b):
        c = b[i]
        if c < 0x80:
            units.append(c)
            i += 1
        elif c & 0xE0 == 0xC0 and i + 1 < len(b):
            units.append((c & 0x1F) << 6 | b[i + 1] & 0x3F)
            i += 2
        elif c & 0xF0 == 0xE0 and i + 2 < len(b):
            units.append((c & 0x0F) << 12 | (b[i + 1] & 0x3F) << 6 | b[i + 2] & 0x3F)
            i += 3
        else:
            raise KeyStoreError(f"JKS: malformed modified UTF-8 at byte {i}")
    return struct.pack(f">{len(units)}H", *units).decode("utf-16-be", "surrogatepass")


def _utf(s: str) -> bytes:
    b = mutf8_encode(s)
    if len(b) > 0xFFFF:
        raise KeyStoreError("JKS: string longer than 65535 bytes")
    return struct.pack(">H", len(b)) + b


def digest(password: str, data: bytes) -> bytes:
    return hashlib.sha1(password.encode("utf-16-be") + WHITENER + data).digest()


# ---------------------------------------------------------------------------------------------


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise KeyStoreError(f"JKS: truncated at byte {self.pos} (wanted {n} more)")
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return b

    def u16(self) -> int:
        return struct.unpack(">H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack(">I", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack(">Q", self.take(8))[0]

    def utf(self) -> str:
        return mutf8_decode(self.take(self.u16()))

    def blob(self) -> bytes:
        return self.take(self.u32())


def parse(data: bytes, password: str | None = PASSWORD) -> KeyStore:
    """Read a JKS store; the integrity digest is checked unless `password` is None."""
    if len(data) < 32:
        raise KeyStoreError("JKS: file too short")
    body, trailer = data[:-20], data[-20:]
    if password is not None and digest(password, body) != trailer:
        raise VerificationError("JKS: integrity check failed (wrong password or corrupted store)")
    r = _Reader(body)
    magic, version, count = r.u32(), r.u32(), r.u32()
    if magic != MAGIC:
        raise KeyStoreError(f"JKS: bad magic {magic:#010x} (not a JKS keystore)")
    if version not in (1, 2):
        raise KeyStoreError(f"JKS: unsupported version {version}")
    entries: list[Entry] = []
    for i in range(count):
        tag = r.u32()
        alias, ts = r.utf(), r.u64()
        if tag == TAG_TRUSTED_CERT:
            ctype = r.utf() if version == 2 else X509
            entries.append(TrustedCert(alias, ts, r.blob(), ctype))
        elif tag == TAG_PRIVATE_KEY:
            key = r.blob()
            chain = []
            for _ in range(r.u32()):
                ctype = r.utf() if version == 2 else X509
                chain.append((ctype, r.blob()))
            entries.append(PrivateKey(alias, ts, key, tuple(chain)))
        else:
            raise KeyStoreError(f"JKS: entry {i} ({alias!r}) has unknown tag {tag}")
    if r.pos != len(body):
        raise KeyStoreError(f"JKS: {len(body) - r.pos} stray bytes after the last entry")
    return KeyStore(tuple(entries), version)


def _cert(version: int, ctype: str, der: bytes) -> bytes:
    return (_utf(ctype) if version == 2 else b"") + struct.pack(">I", len(der)) + der


def render(ks: KeyStore, password: str = PASSWORD) -> bytes:
    out = bytearray(struct.pack(">III", MAGIC, ks.version, len(ks.entries)))
    for e in ks.entries:
        if isinstance(e, TrustedCert):
            out += struct.pack(">I", TAG_TRUSTED_CERT) + _utf(e.alias) + struct.pack(">Q", e.timestamp_ms)
            out += _cert(ks.version, e.cert_type, e.der)
        else:
            out += struct.pack(">I", TAG_PRIVATE_KEY) + _utf(e.alias) + struct.pack(">Q", e.timestamp_ms)
            out += struct.pack(">I", len(e.protected_key)) + e.protected_key + struct.pack(">I", len(e.chain))
            for ctype, der in e.chain:
                out += _cert(ks.version, ctype, der)
    return bytes(out + digest(password, bytes(out)))


def _alias_key(alias: str) -> bytes:
    return alias.encode("utf-8", "surrogatepass")


def add_to_truststore(jks: bytes | None, certs: list[tuple[str, bytes]], timestamp: int,
                      password: str = PASSWORD) -> bytes:
    """The store with each (alias, DER certificate) added as a trusted entry created at
    `timestamp` (seconds since the epoch: the build date), written as apko writes it: version 2,
    entries sorted by alias, new aliases lower-cased, a same-named entry replaced. `jks` None
    starts an empty store."""
    entries: dict[str, Entry] = {}
    if jks is not None:
        for e in parse(jks, password).entries:
            entries[e.alias] = e
    for alias, der in certs:
        a = alias.lower()
        entries[a] = TrustedCert(a, timestamp * 1000, der)
    ordered = tuple(entries[a] for a in sorted(entries, key=_alias_key))
    return render(KeyStore(ordered, 2), password)
