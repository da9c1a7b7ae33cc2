"""Derived cache entries: what is stored reads back; anything damaged, foreign or unstorable is a miss."""

from __future__ import annotations

from pathlib import Path

from distroless.store import entries

MAGIC = b"test entry 1\n"


def test_round_trip_and_misses(tmp_path: Path) -> None:
    path = tmp_path / "d" / "e"
    value = {"a": [1, "x", (2.5, None)], "b": b"\x00"}
    entries.store(path, MAGIC, value)
    assert entries.load(path, MAGIC) == value
    assert entries.load(path, b"another kind 1\n") is None  # another kind or format
    assert entries.load(tmp_path / "absent", MAGIC) is None
    blob = path.read_bytes()
    for damaged in (blob[:-1], blob[: len(MAGIC) + 8], blob.replace(MAGIC, MAGIC.upper()), b""):
        path.write_bytes(damaged)
        assert entries.load(path, MAGIC) is None
    # a payload with a right CRC that is not marshal data
    junk = b"\xff\xfe not marshal"
    import zlib

    path.write_bytes(MAGIC + b"%08x" % zlib.crc32(junk) + junk)
    assert entries.load(path, MAGIC) is None


def test_what_cannot_be_stored_is_skipped(tmp_path: Path) -> None:
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    for value in (object(), deep):
        entries.store(tmp_path / "e", MAGIC, value)
        assert not (tmp_path / "e").exists()
    (tmp_path / "ro").mkdir(mode=0o500)
    entries.store(tmp_path / "ro" / "sub" / "e", MAGIC, 1)  # unwritable: skipped, not an error
