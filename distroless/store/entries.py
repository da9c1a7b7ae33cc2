"""Derived entries in the cache: what a step computed from verified inputs, kept for the next run.

An entry is a magic line naming its kind and format, the CRC-32 of the payload in hex, and the
payload (`marshal`: Python's fastest loader of plain values). One that does not start with its
magic, does not match its CRC or does not unmarshal is a miss, and the caller computes (and
stores) it again. Entries are written atomically and best effort (a full or read-only cache
skips them: they are shortcuts; the writes that matter, downloads, name their file when they
fail). They live under the cache root with the blobs they are derived from and the same trust:
the cache directory is the user's own (the CRC catches damage, not a forger with write access).
The caller's key must cover everything the value depends on; see its module.
"""

from __future__ import annotations

import gc
import marshal
import os
import zlib
from pathlib import Path

_CRC = 8  # hex digits


def load(path: Path, magic: bytes) -> object | None:
    """The value stored at `path`, or None (absent, damaged, another format)."""
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    head = len(magic) + _CRC
    payload = memoryview(blob)[head:]
    if not blob.startswith(magic) or b"%08x" % zlib.crc32(payload) != blob[len(magic):head]:
        return None
    enabled = gc.isenabled()
    gc.disable()  # tens of thousands of containers at once: the cyclic GC would run for nothing
    try:
        return marshal.loads(payload)
    except (ValueError, EOFError, TypeError):
        return None
    finally:
        if enabled:
            gc.enable()


def store(path: Path, magic: bytes, value: object) -> None:
    """Write `value` (plain values only: what marshal takes) to `path` atomically, best effort."""
    import tempfile  # (not needed to read an entry, the common case)

    try:
        payload = marshal.dumps(value)
    except ValueError:  # nested deeper than marshal goes: not kept
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(magic + b"%08x" % zlib.crc32(payload) + payload)
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
