"""Deterministic tar headers in the byte layout of Go's archive/tar.

apk packages (melange) and image layers (apko) are written by Go's archive/tar, so the project
writes every tar header the same way: USTAR with 7-digit octal numbers, and a preceding PAX `x`
header named `<dir>/PaxHeaders.0/<base>` (mode 0, mtime 0) only when records are needed. Records
are sorted by key, as Go sorts them.
"""

from __future__ import annotations

import posixpath
import struct
from dataclasses import dataclass, field

from distroless.errors import FormatError

BLOCK = 512
END_OF_ARCHIVE = b"\0" * (2 * BLOCK)

REGTYPE = b"0"
LNKTYPE = b"1"
SYMTYPE = b"2"
CHRTYPE = b"3"
BLKTYPE = b"4"
DIRTYPE = b"5"
FIFOTYPE = b"6"
XHDTYPE = b"x"

APK_CHECKSUM_SHA1 = "APK-TOOLS.checksum.SHA1"


@dataclass(slots=True)
class Header:
    name: str
    type: bytes = REGTYPE
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    size: int = 0
    mtime: int = 0
    linkname: str = ""
    uname: str = ""
    gname: str = ""
    devmajor: int = 0
    devminor: int = 0
    pax: dict[str, str | bytes] = field(default_factory=dict)


def _digits(value: int, width: int) -> bytes:
    """Go's formatOctal for a `width`-byte field, without its NUL (the struct pads with it):
    zero-padded digits; a value that does not fit becomes 0."""
    if 0 <= value < 8 ** (width - 1):
        return b"%0*o" % (width - 1, value)
    return b"0" * (width - 1)


def _split_ustar(name: bytes) -> tuple[bytes, bytes] | None:
    """Go's splitUSTARPath: prefix ≤ 155 bytes and name ≤ 100, split at the last usable slash."""
    length = len(name)
    if length <= 100 or not name.isascii():
        return None
    if length > 156:
        length = 156
    elif name[length - 1] == 0x2F:
        length -= 1
    i = name.rfind(b"/", 0, length)
    suffix_len = len(name) - i - 1
    if i <= 0 or suffix_len > 100 or suffix_len == 0 or i > 155:
        return None
    return name[:i], name[i + 1:]


# name mode uid gid size mtime chksum typeflag linkname magic+version uname gname devmajor devminor
# prefix, then padding to the block: `s` fields are cut to their width or padded with NULs
_USTAR = struct.Struct("100s8s8s8s12s12s8s1s100s8s32s32s8s8s155s12x")


def _raw_header(
    name: bytes, typeflag: bytes, mode: int, uid: int, gid: int, size: int, mtime: int,
    linkname: bytes, uname: bytes, gname: bytes, devmajor: int, devminor: int, prefix: bytes = b"",
) -> bytes:
    block = _USTAR.pack(
        name, _digits(mode, 8), _digits(uid, 8), _digits(gid, 8), _digits(size, 12), _digits(mtime, 12),
        b" " * 8, typeflag, linkname, b"ustar\x0000", uname, gname, _digits(devmajor, 8), _digits(devminor, 8),
        prefix)
    return b"%s%06o\0 %s" % (block[:148], sum(block), block[156:])


def pax_record(key: str, value: str | bytes) -> bytes:
    """One `%d key=value\\n` record whose length prefix counts the whole record."""
    body = b" " + key.encode() + b"=" + (value if isinstance(value, bytes) else value.encode()) + b"\n"
    n = len(body) + 1
    while len(str(n)) + len(body) != n:
        n = len(str(n)) + len(body)
    return str(n).encode() + body


def encode_header(h: Header) -> bytes:
    """The header block(s) for `h`: an optional PAX `x` header with its data, then the entry."""
    name = h.name.encode()
    link = h.linkname.encode()
    records = dict(h.pax)
    prefix = b""
    if len(link) > 100:
        records["linkpath"] = h.linkname
    if len(name) > 100:
        split = None if records else _split_ustar(name)
        if split:
            prefix, name = split
        else:
            records["path"] = h.name
    out = b""
    if records:
        data = b"".join(pax_record(k, records[k]) for k in sorted(records))
        dirname, base = posixpath.split(h.name)
        xname = posixpath.join(dirname, "PaxHeaders.0", base).encode()
        out = _raw_header(xname, XHDTYPE, 0, 0, 0, len(data), 0, b"", b"", b"", 0, 0)
        out += data + b"\0" * (-len(data) % BLOCK)
    out += _raw_header(
        name, h.type, h.mode, h.uid, h.gid, h.size, h.mtime, link,
        h.uname.encode(), h.gname.encode(), h.devmajor, h.devminor, prefix,
    )
    return out


def padding(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


def check_member_name(name: str, source: str) -> str:
    """Refuse names that would land outside the root; returns the name without `./` or `/` ends."""
    if name.startswith("/") or "\0" in name:
        raise FormatError(f"{source}: tar entry {name!r} has an absolute path")
    clean = name[2:] if name.startswith("./") else name
    clean = clean.rstrip("/")
    if any(part == ".." for part in clean.split("/")):
        raise FormatError(f"{source}: tar entry {name!r} escapes the root ('..')")
    return clean
