"""Deterministic layer compression: gzip in pgzip's framing, and zstd.

apko compresses layers with klauspost/pgzip. Its stream is a gzip member whose deflate data is
a chain of independent raw-deflate pieces, one per 1 MiB block of input: each piece is primed
with the previous block's last 16 KiB as dictionary and ends with a sync flush (an empty stored
block, so the next piece starts byte-aligned); closing adds a final empty stored block. We keep
that framing, the 10-byte header (MTIME = 0x886E0900, OS = 255) and the CRC32/ISIZE trailer.
Inside each piece the encoder is ISA-L or zlib, not klauspost's level-5 encoder, so the layer
*digest* differs from apko's while the *diff_id* (sha256 of the tar) is the same.

Because every block depends only on its own bytes and the previous block's tail, blocks compress
in parallel (ISA-L and zlib release the GIL) and the output is the same for any thread count.
It does depend on the encoder and its version (ISA-L, or the zlib / zlib-ng Python links).
"""

from __future__ import annotations

import hashlib
import io
import os
import zlib
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO, Literal

from isal import isal_zlib

from distroless.errors import DistrolessError
from distroless.oci.mediatypes import OCI_LAYER_GZIP, OCI_LAYER_ZSTD

GZIP_MEDIA_TYPE = OCI_LAYER_GZIP
ZSTD_MEDIA_TYPE = OCI_LAYER_ZSTD

# ID1 ID2 CM=deflate FLG=0 | MTIME = uint32(time.Time{}.Unix()) little-endian | XFL=0 OS=255
GZIP_HEADER = bytes.fromhex("1f8b0800" "00096e88" "00ff")
BLOCK_SIZE = 1 << 20  # pgzip's default block
DICT_SIZE = 16 << 10  # pgzip's tailSize: dictionary carried from one block to the next
SYNC_EMPTY = b"\x00\x00\x00\xff\xff"  # klauspost Flush() with no pending input
FINAL_EMPTY = b"\x01\x00\x00\xff\xff"  # klauspost Close() after a flush: empty stored, BFINAL

Engine = Literal["isal", "zlib"]
# bench/bench_gzip.py (200 MB synthetic tar, and 250 MB of real /usr binaries and libraries):
# zlib 5 on 2 threads is 1.2-1.6x as fast as `pigz -p 2 -6` at +0.3-1 % size, so it is the
# default. ISA-L 2 is 4-10x as fast but +5-11 % larger; ask for it when speed matters more.
DEFAULT_ENGINE: Engine = "zlib"
DEFAULT_LEVEL = {"zlib": 5, "isal": 2}
# memLevel: for ISA-L it sizes the level buffer; the small one (3) re-derives Huffman tables more
# often, which gives ~1 % smaller output on mixed layers at ~the same speed. zlib's usual 8.
DEFAULT_MEM_LEVEL = {"isal": 3, "zlib": 8}
ZSTD_LEVEL = 3



@dataclass(frozen=True, slots=True)
class FileSpan:
    """`size` bytes at `offset` of the open file `fd`, as a piece of a source: read straight
    into the compressor's block buffers (no intermediate copy)."""

    fd: int
    offset: int
    size: int


Source = BinaryIO | Iterable[bytes | FileSpan] | bytes


class CompressionError(DistrolessError):
    """Bad compression parameters (unknown engine, level out of range)."""


@dataclass(frozen=True, slots=True)
class Compressed:
    """What a layer blob needs: digest and size of the compressed bytes, diff_id of the tar."""

    digest: str  # "sha256:<hex>" of the compressed stream
    size: int
    diff_id: str  # "sha256:<hex>" of the uncompressed stream
    uncompressed_size: int
    media_type: str


def default_threads() -> int:
    """pgzip's concurrency, min(GOMAXPROCS, 8)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    return max(1, min(n, 8))


def _check(engine: str, level: int, mem_level: int | None = None) -> None:
    if mem_level is not None and not 1 <= mem_level <= 9:
        raise CompressionError(f"memory level must be 1..9, not {mem_level}")
    if engine == "isal":
        if not 0 <= level <= 3:
            raise CompressionError(f"ISA-L compression level must be 0..3, not {level}")
    elif engine == "zlib":
        if not 0 <= level <= 9:
            raise CompressionError(f"zlib compression level must be 0..9, not {level}")
    else:
        raise CompressionError(f"unknown deflate engine {engine!r} (isal or zlib)")


def deflate_block(
    block: bytes | memoryview, tail: bytes, *, engine: Engine, level: int, mem_level: int | None = None
) -> bytes:
    """One pgzip piece: raw deflate of `block` primed with `tail`, ended by a sync flush."""
    if not block:
        return SYNC_EMPTY  # the encoders differ on an empty flush; pin klauspost's bytes
    mod = isal_zlib if engine == "isal" else zlib
    mem = DEFAULT_MEM_LEVEL[engine] if mem_level is None else mem_level
    if tail:
        c = mod.compressobj(level, mod.DEFLATED, -15, mem, 0, zdict=tail)
    else:
        c = mod.compressobj(level, mod.DEFLATED, -15, mem, 0)
    return c.compress(block) + c.flush(mod.Z_SYNC_FLUSH)


def iter_blocks(source: Source, size: int) -> Iterator[bytes]:
    """Exactly `size`-byte blocks, then one last block (short, possibly empty).

    Block boundaries sit at fixed input offsets whatever the caller's chunking, which keeps
    the output independent of how the tar stream is produced.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        full = len(data) // size
        for i in range(full):
            yield data[i * size:(i + 1) * size]
        yield data[full * size:]
        return
    if hasattr(source, "read"):
        read = source.read  # type: ignore[union-attr]
        while True:
            block = read(size)
            while block and len(block) < size:  # pipes and sockets return short reads
                more = read(size - len(block))
                if not more:
                    break
                block += more
            if len(block) < size:
                yield bytes(block)
                return
            yield bytes(block)
    pending = bytearray()
    for chunk in source:  # type: ignore[union-attr]
        pending += chunk
        while len(pending) >= size:
            yield bytes(pending[:size])
            del pending[:size]
    yield bytes(pending)


def ring_blocks(source: Iterable[bytes | FileSpan], size: int, ring: int) -> Iterator[memoryview]:
    """Like `iter_blocks` for an iterable, but into `ring` reused buffers: a yielded block stays
    valid until `ring - 1` more have been yielded (the caller keeps fewer in flight), so memory
    is a fixed few MiB whatever the layer's size, and file spans are read in place."""
    bufs: list[bytearray] = []
    k, fill = 0, 0
    bufs.append(bytearray(size))
    buf = memoryview(bufs[0])

    def advance() -> memoryview:
        nonlocal k
        k = (k + 1) % ring
        if k == len(bufs):
            bufs.append(bytearray(size))
        return memoryview(bufs[k])

    for piece in source:
        if isinstance(piece, FileSpan):
            pos, left = piece.offset, piece.size
            while left:
                got = os.preadv(piece.fd, [buf[fill:fill + min(left, size - fill)]], pos)
                if not got:
                    raise OSError(f"a file ends before the {piece.size} bytes at offset {piece.offset} it should hold")
                fill, pos, left = fill + got, pos + got, left - got
                if fill == size:
                    yield buf
                    buf, fill = advance(), 0
            continue
        data = memoryview(piece)
        while data:
            n = min(len(data), size - fill)
            buf[fill:fill + n] = data[:n]
            fill += n
            data = data[n:]
            if fill == size:
                yield buf
                buf, fill = advance(), 0
    yield buf[:fill]


def _blocks(source: Source, size: int, in_flight: int) -> Iterator[bytes | memoryview]:
    if isinstance(source, (bytes, bytearray, memoryview)) or hasattr(source, "read"):
        return iter_blocks(source, size)
    return ring_blocks(source, size, in_flight + 2)  # type: ignore[arg-type]


def gzip_compress(
    source: Source,
    out: BinaryIO,
    *,
    engine: Engine = DEFAULT_ENGINE,
    level: int | None = None,
    threads: int | None = None,
    block_size: int = BLOCK_SIZE,
    mem_level: int | None = None,
) -> Compressed:
    """Compress `source` (file, iterable of chunks, or bytes) into `out` in pgzip framing.

    The bytes depend on (engine, level, mem_level, block_size) and the encoder library, never
    on `threads` or on how `source` is chunked. zlib's bytes also depend on the zlib the
    interpreter links (zlib, zlib-ng); ISA-L's come from the wheel's bundled copy.
    """
    if engine not in DEFAULT_LEVEL:
        raise CompressionError(f"unknown deflate engine {engine!r} (isal or zlib)")
    level = DEFAULT_LEVEL[engine] if level is None else level
    _check(engine, level, mem_level)
    if block_size <= 0:
        raise CompressionError(f"block size must be positive, not {block_size}")
    threads = default_threads() if threads is None else max(1, threads)
    raw_hash = hashlib.sha256()
    gz_hash = hashlib.sha256()
    crc = 0
    isize = 0
    written = 0

    def emit(data: bytes) -> None:
        nonlocal written
        out.write(data)
        gz_hash.update(data)
        written += len(data)

    emit(GZIP_HEADER)
    tail = b""
    if threads == 1:
        for block in _blocks(source, block_size, 1):
            raw_hash.update(block)
            crc = isal_zlib.crc32(block, crc)
            isize += len(block)
            emit(deflate_block(block, tail, engine=engine, level=level, mem_level=mem_level))
            tail = bytes(block[-DICT_SIZE:]) if len(block) > DICT_SIZE else b""
    else:
        pending: deque[Future[bytes]] = deque()
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="pgzip") as pool:
            for block in _blocks(source, block_size, 2 * threads):
                pending.append(pool.submit(
                    deflate_block, block, tail, engine=engine, level=level, mem_level=mem_level))
                # Hash on this thread while the workers compress (sha256 releases the GIL too).
                raw_hash.update(block)
                crc = isal_zlib.crc32(block, crc)
                isize += len(block)
                # a copy: the block's buffer is reused once its piece is written
                tail = bytes(block[-DICT_SIZE:]) if len(block) > DICT_SIZE else b""
                while len(pending) > 2 * threads:  # bound memory: a few MiB per worker
                    emit(pending.popleft().result())
            while pending:
                emit(pending.popleft().result())
    emit(FINAL_EMPTY)
    emit(crc.to_bytes(4, "little") + (isize & 0xFFFFFFFF).to_bytes(4, "little"))
    return Compressed(
        digest="sha256:" + gz_hash.hexdigest(),
        size=written,
        diff_id="sha256:" + raw_hash.hexdigest(),
        uncompressed_size=isize,
        media_type=GZIP_MEDIA_TYPE,
    )


class _HashingWriter(io.RawIOBase):
    """Counts and hashes what zstd writes, passing it on to the real file."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        self.out.write(data)
        self.hash.update(data)
        self.size += len(data)
        return len(data)


def zstd_compress(
    source: Source,
    out: BinaryIO,
    *,
    level: int = ZSTD_LEVEL,
    threads: int | None = None,
) -> Compressed:
    """Compress into one zstd frame with no content size, checksum or dictionary id.

    libzstd gives the same bytes for any worker count >= 1 (but other bytes for 0), so we
    always run its multi-threaded mode, with at least one worker.
    """
    import zstandard  # imported here: only zstd layers need it

    if not 1 <= level <= 22:
        raise CompressionError(f"zstd compression level must be 1..22, not {level}")
    workers = default_threads() if threads is None else max(1, threads)
    cctx = zstandard.ZstdCompressor(
        level=level,
        threads=workers,
        write_checksum=False,
        write_content_size=False,
        write_dict_id=False,
    )
    sink = _HashingWriter(out)
    raw_hash = hashlib.sha256()
    isize = 0
    with cctx.stream_writer(sink, closefd=False) as writer:
        for block in _blocks(source, BLOCK_SIZE, 1):  # libzstd copies what it is given
            raw_hash.update(block)
            isize += len(block)
            writer.write(block)
    return Compressed(
        digest="sha256:" + sink.hash.hexdigest(),
        size=sink.size,
        diff_id="sha256:" + raw_hash.hexdigest(),
        uncompressed_size=isize,
        media_type=ZSTD_MEDIA_TYPE,
    )


def compress(
    source: Source,
    out: BinaryIO,
    *,
    compression: Literal["gzip", "zstd"] = "gzip",
    level: int | None = None,
    engine: Engine = DEFAULT_ENGINE,
    threads: int | None = None,
) -> Compressed:
    """Either compressor by name; `level=None` picks the module default for it."""
    if compression == "gzip":
        return gzip_compress(source, out, engine=engine, level=level, threads=threads)
    if compression == "zstd":
        return zstd_compress(source, out, level=ZSTD_LEVEL if level is None else level, threads=threads)
    raise CompressionError(f"unknown layer compression {compression!r} (gzip or zstd)")
