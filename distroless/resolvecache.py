"""The resolve step's content-addressed cache: from its inputs' digests to the packages it chose.

`packages.resolve_config` is a function of: the world, the architectures, the bytes of every
index it reads (or that a local one is absent), the keys' bytes, whether signatures are checked
and under which decompression cap, and the code that parses, verifies and resolves. The key is
the sha256 of all of them (the index and key *bytes* by their sha256, so a changed index, even
one of the same size and mtime, is a new key), and an entry is written only after a resolution
from those inputs succeeded: every index was verified with those keys (or `--ignore-signatures`
was given, which is in the key), every key parsed as an RSA key, and the world resolved. The
same inputs would verify, parse and resolve the same way again, so the cache never serves what
the keys given now would not verify. A configuration with `contents.baseimage` is not cached
(the base's packages are an input read from its layout).

The code's identity is the sha256 of the sources that decide the answer, not a version number:
a change to the resolver while developing must not be answered by an entry of the old one.
Entries are `distroless.store.entries` (magic, CRC, marshal): a damaged one is a miss and is
written again.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING

from distroless.apk.model import Package
from distroless.store import entries

if TYPE_CHECKING:
    from distroless.fetch.fetcher import IndexData

MAGIC = b"distroless resolve step 1\n"
_FIELDS = tuple(f.name for f in fields(Package))
# what turns (world, index bytes, keys) into the answer; config reading is not here, its output
# (world, archs, repositories) is in the key itself
_SOURCES = ("packages.py", "resolvecache.py", "resolve/__init__.py", "resolve/provider.py", "resolve/resolver.py",
            "apk/model.py", "apk/atom.py", "apk/version.py", "apk/index.py", "apk/gzmember.py", "apk/signature.py",
            "apk/keys.py", "apk/pkginfo.py", "fetch/parsedindex.py", "fetch/repository.py", "fetch/fetcher.py",
            "config/model.py", "arch.py", "tarball.py")
_code: str | None = None

Pins = dict[str, list[tuple[Package, str]]]  # OCI arch → (package, its URL) in install order


def code_digest() -> str:
    """sha256 of the sources in `_SOURCES` (read once per process)."""
    global _code
    if _code is None:
        h = hashlib.sha256(f"{sys.version_info[:2]}\n".encode())
        base = Path(__file__).parent
        for name in _SOURCES:
            h.update(name.encode() + b"\0" + (base / name).read_bytes() + b"\0")
        _code = h.hexdigest()
    return _code


def key(world: list[str], archs: list[str], keys: list[tuple[str, str, bytes]], indexes: list[IndexData], *,
        verify: bool, cap: int) -> str | None:
    """The step's key, or None when the code's sources cannot be read (then nothing is cached)."""
    try:
        code = code_digest()
    except OSError:
        return None
    doc = {
        "code": code, "world": world, "archs": archs, "verify": verify, "cap": cap,
        "keys": [[name, hashlib.sha256(pem).hexdigest()] for name, _loc, pem in keys],
        "indexes": [[f.url, f.repo.url, f.repo.pin, None if f.data is None else hashlib.sha256(f.data).hexdigest()]
                    for f in indexes],
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _path(root: Path, digest: str) -> Path:
    return root / "steps" / "resolve" / digest


def load(root: Path, digest: str | None) -> Pins | None:
    """The packages stored under `digest`, or None (absent, damaged, or not this shape)."""
    if digest is None:
        return None
    value = entries.load(_path(root, digest), MAGIC)
    if not isinstance(value, dict):
        return None
    try:
        return {arch: [(Package(*row), url) for row, url in pins] for arch, pins in value.items()}
    except (TypeError, ValueError):
        return None


def store(root: Path, digest: str | None, pins: Pins) -> None:
    if digest is None:
        return
    value = {arch: [(tuple(getattr(p, f) for f in _FIELDS), url) for p, url in items] for arch, items in pins.items()}
    entries.store(_path(root, digest), MAGIC, value)
