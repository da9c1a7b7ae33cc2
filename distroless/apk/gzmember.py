"""Stream concatenated gzip members one at a time.

An .apk is two or three gzip members back to back, and apk-tools hashes the *compressed* bytes of
each member separately. `MemberReader` walks a raw byte stream member by member, decompressing
lazily (so a data member is never held whole in memory), feeding each member's raw bytes to the
hashers the caller asks for, and enforcing a cap on decompressed size.
"""

from __future__ import annotations

import io
from typing import BinaryIO, Iterator, Protocol

from isal import isal_zlib

from distroless.errors import FormatError, LimitError

_CHUNK = 1 << 16
_BIG_RAW = 1 << 18  # copy_to: raw bytes read at once
_BIG_OUT = 1 << 20  # copy_to: decompressed bytes per step (bounds memory whatever the ratio)
_GZIP_WBITS = 31  # gzip wrapper, maximum window


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...


class Member(io.RawIOBase):
    """Decompressed bytes of one gzip member; raw bytes consumed go to `hashers`."""

    def __init__(self, reader: "MemberReader", label: str, limit: int, hashers: tuple[Hasher, ...]):
        super().__init__()
        self._reader = reader
        self._label = label
        self._limit = limit
        self._hashers = hashers
        self._inflate = isal_zlib.decompressobj(wbits=_GZIP_WBITS)
        self._pending = b""  # raw input not yet handed to the decompressor
        self._out = b""
        self._out_pos = 0
        self.raw_size = 0
        self.size = 0
        self.done = False

    def readable(self) -> bool:
        return True

    def _consume_raw(self, data: bytes) -> None:
        self.raw_size += len(data)
        for h in self._hashers:
            h.update(data)

    def _step(self, max_out: int, raw_size: int = _CHUNK) -> bytes:
        """Feed the decompressor once; up to `max_out` decompressed bytes (possibly none)."""
        if not self._pending:
            self._pending = self._reader._read_raw(raw_size)
            if not self._pending:
                raise FormatError(f"{self._reader.source}: {self._label}: truncated gzip member")
        fed = self._pending
        try:
            chunk = self._inflate.decompress(fed, max_out)
        except isal_zlib.error as e:
            raise FormatError(f"{self._reader.source}: {self._label}: not valid gzip ({e})") from None
        if self._inflate.eof:
            rest = self._inflate.unused_data
            used = len(fed) - len(rest)
            self._reader._push_back(rest)
            self._pending = b""
            self.done = True
        else:
            tail = self._inflate.unconsumed_tail
            used = len(fed) - len(tail)
            self._pending = tail
        self._consume_raw(fed[:used] if used != len(fed) else fed)
        self.size += len(chunk)
        if self.size > self._limit:
            raise LimitError(
                f"{self._reader.source}: {self._label}: decompressed size exceeds the cap of {self._limit} bytes"
            )
        return chunk

    def _fill(self, want: int) -> None:
        while not self.done and len(self._out) - self._out_pos < want:
            chunk = self._step(_CHUNK)
            if self._out_pos:
                self._out = self._out[self._out_pos:]
                self._out_pos = 0
            self._out += chunk

    def readinto(self, buf) -> int:  # type: ignore[override]
        n = len(buf)
        self._fill(n)
        avail = len(self._out) - self._out_pos
        k = min(n, avail)
        buf[:k] = self._out[self._out_pos:self._out_pos + k]
        self._out_pos += k
        return k

    def copy_to(self, sink: BinaryIO) -> None:
        """Decompress the rest of the member into `sink` in large pieces: the inflate, the
        hashing and the write each run in C without the GIL, so several packages expand in
        parallel on as many cores."""
        if self._out_pos < len(self._out):
            sink.write(memoryview(self._out)[self._out_pos:])
        self._out, self._out_pos = b"", 0
        while not self.done:
            chunk = self._step(_BIG_OUT, _BIG_RAW)
            if chunk:
                sink.write(chunk)

    def drain(self) -> None:
        """Read (and discard) the rest of the member, so its hashes and size are complete."""
        while not self.done:
            self._fill(_CHUNK)
            self._out = b""
            self._out_pos = 0


class MemberReader:
    """Iterates the gzip members of a raw stream; `source` names the file in errors."""

    def __init__(self, raw: BinaryIO, source: str):
        self._raw = raw
        self.source = source
        self._back = b""
        self.index = 0

    def _read_raw(self, size: int = _CHUNK) -> bytes:
        if self._back:
            data, self._back = self._back, b""
            return data
        return self._raw.read(size)

    def _push_back(self, data: bytes) -> None:
        self._back = data + self._back

    def at_end(self) -> bool:
        if not self._back:
            self._back = self._raw.read(_CHUNK)
        return not self._back

    def next(self, label: str, limit: int, *hashers: Hasher) -> Member:
        """The next member, which must exist: a missing one is a format error naming `label`."""
        if self.at_end():
            raise FormatError(f"{self.source}: {label}: missing (file ends after {self.index} gzip members)")
        self.index += 1
        return Member(self, label, limit, hashers)

    def rest_raw(self) -> Iterator[bytes]:
        """The remaining raw bytes, undecompressed, in chunks."""
        while data := self._read_raw():
            yield data


def inflate_members(data: bytes, source: str, limit: int) -> list[tuple[int, bytes]]:
    """Decompress every member of a small in-memory gzip file (indexes, signatures) in one pass.

    Returns, per member, the raw offset where it ends and its decompressed bytes; the total
    output is capped at `limit` bytes.
    """
    members: list[tuple[int, bytes]] = []
    total = 0
    pos = 0
    while pos < len(data):
        label = f"{source}: gzip member {len(members) + 1}"
        d = isal_zlib.decompressobj(wbits=_GZIP_WBITS)
        out: list[bytes] = []
        buf = data[pos:] if pos else data
        while True:
            try:
                chunk = d.decompress(buf, limit - total + 1)
            except isal_zlib.error as e:
                raise FormatError(f"{label}: not valid gzip ({e})") from None
            total += len(chunk)
            if total > limit:
                raise LimitError(f"{label}: decompressed size exceeds the cap of {limit} bytes")
            out.append(chunk)
            if d.eof or not d.unconsumed_tail:
                break
            buf = d.unconsumed_tail
        if not d.eof:
            raise FormatError(f"{label}: truncated gzip member")
        pos = len(data) - len(d.unused_data)
        members.append((pos, b"".join(out)))
    return members


# melange's member header: FLG=0, MTIME = Go's zero time truncated (00 09 6e 88), XFL=0, OS=255.
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x09\x6e\x88\x00\xff"


class MemberWriter:
    """Compress one gzip member deterministically, streaming; `hashers` see the compressed bytes."""

    def __init__(self, out: BinaryIO, *hashers: Hasher, level: int = 6):
        import zlib

        self._out = out
        self._hashers = hashers
        self._deflate = zlib.compressobj(level, zlib.DEFLATED, -15, 9)
        self._crc = 0
        self._isize = 0
        self.raw_size = 0
        self._zlib = zlib
        self._emit(GZIP_HEADER)

    def _emit(self, data: bytes) -> None:
        if data:
            self._out.write(data)
            self.raw_size += len(data)
            for h in self._hashers:
                h.update(data)

    def write(self, data: bytes) -> None:
        self._crc = self._zlib.crc32(data, self._crc)
        self._isize += len(data)
        self._emit(self._deflate.compress(data))

    def close(self) -> None:
        self._emit(self._deflate.flush())
        self._emit(self._crc.to_bytes(4, "little") + (self._isize & 0xFFFFFFFF).to_bytes(4, "little"))


def gzip_member(data: bytes, level: int = 6) -> bytes:
    out = io.BytesIO()
    w = MemberWriter(out, level=level)
    w.write(data)
    w.close()
    return out.getvalue()
