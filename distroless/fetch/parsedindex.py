"""Parsed indexes kept in the cache, so that reading a known index skips parsing and RSA.

An entry is keyed by the sha256 of the index file's bytes and is written only after those bytes
were parsed and (unless the caller asked not to) verified. It records, for every signature in
the file, the fingerprint of the trusted key of that name at the time (or None: no such key).
It is served only for the same bytes and a keyring whose keys of those names have exactly the
same fingerprints: the verification would then run on the same bytes with the same keys and
end the same way, so the cache never serves what the keys given now would not verify.
Unverified reads (`--ignore-signatures`) have their own entries and never serve verified ones.

An entry (`distroless.store.entries`: magic, CRC-32, marshal) holds the signers and one list per
`Package` field (columns load faster than rows: no tuple per package).
"""

from __future__ import annotations

import gc
import hashlib
from dataclasses import fields
from itertools import repeat
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from distroless.apk import index
from distroless.apk.keys import Keyring
from distroless.apk.model import Package
from distroless.store import entries

MAGIC = b"distroless parsed index 3\n"
# every Package field but where it came from (the last two, which the caller gives), in order
_FIELDS = tuple(f.name for f in fields(Package))[:-2]
assert tuple(f.name for f in fields(Package))[-2:] == ("repository", "pin")
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

    columns = [[one(getattr(p, f)) for p in parsed.packages] for f in _FIELDS]
    entries.store(path, MAGIC, (signers, columns))
    return parsed.packages


def _load(path: Path, keyring: Keyring | None) -> list[list] | None:
    entry = entries.load(path, MAGIC)
    try:
        signers, columns = entry  # type: ignore[misc]
        if len(columns) != len(_FIELDS):
            return None
    except (TypeError, ValueError):
        return None  # absent, or not this shape
    if keyring is not None and tuple((name, fingerprint(keyring, name)) for name, _ in signers) != tuple(
            (name, fp) for name, fp in signers):
        return None  # other keys now: verify again
    return columns


def _packages(columns: list[list], repository: str, pin: str) -> list[Package]:
    # thousands of small objects at once: the cyclic GC would run many times for nothing
    enabled = gc.isenabled()
    gc.disable()
    try:
        n = len(columns[0])
        return list(map(Package, *columns, repeat(repository, n), repeat(pin, n)))
    finally:
        if enabled:
            gc.enable()
