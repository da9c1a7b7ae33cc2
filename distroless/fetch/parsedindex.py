"""Parsed indexes kept in the cache, so that reading a known index skips parsing and RSA.

An entry is keyed by the sha256 of the index file's bytes and is written only after those bytes
were parsed and (unless the caller asked not to) verified. It records, for every signature in
the file, the fingerprint of the trusted key of that name at the time (or None: no such key).
It is served only for the same bytes and a keyring whose keys of those names have exactly the
same fingerprints: the verification would then run on the same bytes with the same keys and
end the same way, so the cache never serves what the keys given now would not verify.
Unverified reads (`--ignore-signatures`) have their own entries and never serve verified ones.

An entry is `MAGIC`, the CRC-32 of the payload and the payload (marshal, each distinct string
stored once); one that does not match its CRC is ignored and rewritten. Entries are written
atomically and live under the cache root like the blobs they describe, with the same trust: the
cache directory is the user's own (the CRC catches damage, not a forger with write access there).
"""

from __future__ import annotations

import gc
import hashlib
import marshal
import os
import tempfile
import zlib
from dataclasses import fields
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from distroless.apk import index
from distroless.apk.keys import Keyring
from distroless.apk.model import Package

MAGIC = b"distroless parsed index 2\n"
# every Package field but where it came from, which the caller gives
_FIELDS = tuple(f.name for f in fields(Package) if f.name not in ("repository", "pin"))
Signers = tuple[tuple[str, str | None], ...]


def fingerprint(keyring: Keyring, keyname: str) -> str | None:
    """sha256 of the DER public key the keyring would use for `keyname`, if any."""
    key = keyring.find(keyname)
    if key is None:
        return None
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def read_index(root: Path, data: bytes, source: str, keyring: Keyring, *, verify: bool = True,
               repository: str = "", pin: str = "", cap: int = index.INDEX_CAP) -> list[Package]:
    """The packages of the index file `data`, verified with `keyring` unless `verify` is False;
    from the cache when these bytes were verified before with the same keys (and read under the
    same decompression cap: another cap parses again, so a lower one still refuses)."""
    digest = hashlib.sha256(data).hexdigest()
    path = root / "parsed" / f"{digest}.{cap}.{'verified' if verify else 'unverified'}"
    hit = _load(path, keyring if verify else None)
    if hit is not None:
        return _packages(hit, repository, pin)
    parsed = index.read(data, source, keyring, verify=verify, repository=repository, pin=pin, cap=cap)
    signers: Signers = tuple((s.keyname, fingerprint(keyring, s.keyname)) for s in parsed.signatures) if verify else ()
    seen: dict[str, str] = {}  # one object per distinct string: marshal then writes references

    def one(value):
        if isinstance(value, str):
            return seen.setdefault(value, value)
        if isinstance(value, list):
            return [seen.setdefault(v, v) for v in value]
        return value

    rows = [tuple(one(getattr(p, f)) for f in _FIELDS) for p in parsed.packages]
    _store(path, marshal.dumps((signers, rows)))
    return parsed.packages


def _load(path: Path, keyring: Keyring | None) -> list[tuple] | None:
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    head = len(MAGIC) + 8
    if not blob.startswith(MAGIC) or b"%08x" % zlib.crc32(blob[head:]) != blob[len(MAGIC):head]:
        return None
    try:
        signers, rows = marshal.loads(blob[head:])
    except (ValueError, EOFError, TypeError):
        return None
    if keyring is not None and tuple((name, fingerprint(keyring, name)) for name, _ in signers) != tuple(
            (name, fp) for name, fp in signers):
        return None  # other keys now: verify again
    return rows


def _packages(rows: list[tuple], repository: str, pin: str) -> list[Package]:
    # thousands of small objects at once: the cyclic GC would run many times for nothing
    enabled = gc.isenabled()
    gc.disable()
    try:
        return [Package(*row, repository=repository, pin=pin) for row in rows]
    finally:
        if enabled:
            gc.enable()


def _store(path: Path, payload: bytes) -> None:
    """Best effort: the parse is a shortcut for the next run, so a full or read-only cache skips
    it (the writes that matter, the downloads, name their file when they fail)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(MAGIC + b"%08x" % zlib.crc32(payload) + payload)
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
