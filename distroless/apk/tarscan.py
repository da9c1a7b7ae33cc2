"""A fast reader of the tar headers melange and apk-tools write, with tarfile's exact results.

Expanding a package parses every header of its data tar; `tarfile` spends most of an expansion's
Python time there (a TarInfo, eight number parses and a PAX regex loop per entry, then the same
for the entry behind each PAX header). This reader handles the common subset: USTAR/GNU-magic
headers of types 0, NUL, 1-6, each optionally preceded by one local PAX header (`x`) of UTF-8
records, with octal numbers and the unsigned checksum. It reproduces `tarfile`'s field rules
for that subset (V7 directories, prefix joining, trailing slashes, PAX overrides) and raises
`Unusual` on anything else (global or GNU headers, base-256 numbers, a signed checksum, a
`hdrcharset`, sparse records, short reads, a non-UTF-8 record): the caller then reads the whole
archive with `tarfile`, which decides what such an archive means. Nothing here is trusted for
bounds: headers are read with positioned reads, and PAX data is charged before it is read.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

BLOCK = 512
_WINDOW = 3 * BLOCK
_ZERO = bytes(BLOCK)
# tarfile's types whose content follows the header (REGULAR_TYPES minus the ones we refuse)
_REGULAR = (b"0", b"\0")
_PLAIN = frozenset((b"0", b"\0", b"1", b"2", b"3", b"4", b"5", b"6"))
_PAX_FIELDS = ("path", "linkpath", "size", "mtime", "uid", "gid", "uname", "gname")
_PAX_RECORD = re.compile(rb"(\d+) ([^=]+)=")  # tarfile's own record pattern


class Unusual(Exception):
    """The archive leaves the subset this reader handles: read it with tarfile instead."""


@dataclass(slots=True)
class Info:
    """The fields of a `tarfile.TarInfo` that a package entry is made from."""

    name: str
    type: bytes
    mode: int
    uid: int
    gid: int
    size: int
    mtime: int | float
    linkname: str
    uname: str
    gname: str
    devmajor: int
    devminor: int
    offset_data: int
    pax_headers: dict[str, str] = field(default_factory=dict)


_SEEN: dict[bytes, int] = {}  # field bytes → value: modes, owners and mtimes repeat (one int each)
_SEEN_CAP = 4096


def _num(f: bytes) -> int:
    """`_parse_num` of a field whose values repeat, each value kept once."""
    n = _SEEN.get(f)
    if n is not None:
        return n
    n = _parse_num(f)
    if len(_SEEN) < _SEEN_CAP:
        _SEEN[f] = n
    return n


def _parse_num(f: bytes) -> int:
    """tarfile's `nti` for octal fields; base-256, negative and invalid numbers are Unusual."""
    if f[0] in (0o200, 0o377):
        raise Unusual
    p = f.find(b"\0")
    digits = f[:p] if p != -1 else f
    try:
        n = int(digits, 8)  # the usual field: digits and a NUL (int() of bytes is ASCII-only)
    except ValueError:
        try:  # tarfile's way, for blank fields and unusual spacing
            n = int(digits.decode("ascii").strip() or "0", 8)
        except ValueError:
            raise Unusual from None
    if n < 0:
        raise Unusual
    return n


def _str(f: bytes) -> str:
    p = f.find(b"\0")
    return (f[:p] if p != -1 else f).decode("utf-8", "surrogateescape")


def _round(n: int) -> int:
    return -(-n // BLOCK) * BLOCK


# name mode uid gid size mtime chksum type linkname magic+version uname gname devmajor devminor prefix
_LAYOUT = struct.Struct("100s8s8s8s12s12s8sc100s8s32s32s8s8s155s")


def _header(buf: bytes, offset: int) -> Info:
    """One 512-byte header as tarfile's `frombuf` + `_proc_builtin` read it (any type; every
    number is parsed, as tarfile does, so a header it would refuse is Unusual here)."""
    (name_f, mode, uid, gid, size, mtime, chksum, kind, link_f, _magic, uname, gname, major, minor,
     prefix_f) = _LAYOUT.unpack_from(buf)
    if _parse_num(chksum) != sum(buf) - sum(chksum) + 256:  # the unsigned sum; a signed one is Unusual
        raise Unusual
    name = _str(name_f)
    if kind == b"\0" and name.endswith("/"):
        kind = b"5"  # V7: a directory is a regular file whose name ends in a slash
    if kind == b"5":
        name = name.rstrip("/")
    if prefix_f[0]:
        name = _str(prefix_f) + "/" + name
        if kind == b"5":
            name = name.rstrip("/")
    return Info(name, kind, _num(mode), _num(uid), _num(gid), _parse_num(size), _num(mtime), _str(link_f),
                _str(uname), _str(gname), _num(major), _num(minor), offset + BLOCK)


def _read_header(buf: bytes, offset: int) -> Info | None:
    """The header in `buf` (read at `offset`); None at the end of the archive (a zero block,
    or the end of the file after the first member, where tarfile stops too)."""
    if len(buf) != BLOCK:
        if offset > 0:
            return None
        raise Unusual  # tarfile: an empty or truncated archive is an error
    if buf == _ZERO:
        return None
    return _header(buf, offset)


def _pax_records(data: bytes) -> dict[str, str]:
    """tarfile's record loop over a local PAX header's data, when every field is UTF-8."""
    if b"hdrcharset=" in data and re.search(rb"\d+ hdrcharset=([^\n]+)\n", data):
        raise Unusual
    out: dict[str, str] = {}
    pos = 0
    while (m := _PAX_RECORD.match(data, pos)) is not None:
        length = int(m.group(1))
        if length == 0:
            raise Unusual
        try:
            key = m.group(2).decode("utf-8")
            out[key] = data[m.end(2) + 1:m.start(1) + length - 1].decode("utf-8")
        except UnicodeDecodeError:
            raise Unusual from None
        if key.startswith("GNU.sparse."):
            raise Unusual
        pos += length
    return out


def _apply_pax(info: Info, pax: dict[str, str]) -> None:
    for key, value in pax.items():
        if key not in _PAX_FIELDS:
            continue
        if key in ("uid", "gid", "size"):
            try:
                setattr(info, key, int(value))
            except ValueError:
                setattr(info, key, 0)
        elif key == "mtime":
            try:
                info.mtime = float(value)
            except ValueError:
                info.mtime = 0
        elif key == "path":
            info.name = value.rstrip("/")
        elif key == "linkpath":
            info.linkname = value
        else:
            setattr(info, key, value)
    info.pax_headers = dict(pax)


def headers(fd: int, file_size: int, charge_pax: Callable[[int], None]) -> Iterator[Info]:
    """The entries of the tar in `fd` (of `file_size` bytes), in order, as tarfile reads them.
    `charge_pax(size)` is called before a PAX header's data is read (it raises over a cap)."""
    offset = 0
    while True:
        # one read for the usual entry: a PAX header, one block of records, then the entry's own
        # header (what a read past the end of the file returns is what a later read would)
        window = os.pread(fd, _WINDOW, offset)
        info = _read_header(window[:BLOCK], offset)
        if info is None:
            return
        if info.type == b"x":
            charge_pax(info.size)
            span = _round(info.size)
            at = BLOCK + span  # the entry's header, from the window's start
            data = window[BLOCK:at] if at <= _WINDOW else os.pread(fd, span, info.offset_data)
            if len(data) != span:
                raise Unusual
            pax = _pax_records(data)
            entry = _read_header(window[at:at + BLOCK] if at + BLOCK <= _WINDOW else os.pread(fd, BLOCK, offset + at),
                                 offset + at)
            if entry is None or entry.type == b"x":
                raise Unusual
            _apply_pax(entry, pax)
            info = entry
        if info.type not in _PLAIN:
            raise Unusual
        end = info.offset_data + (_round(info.size) if info.type in _REGULAR else 0)
        if end > file_size:
            raise Unusual  # tarfile: "unexpected end of data"
        yield info
        offset = end
