"""Deterministic tar headers in the byte layout of Go's archive/tar.

apk packages (melange) and image layers (apko) are written by Go's archive/tar, so the project
writes every tar header the same way: USTAR with 7-digit octal numbers, and a preceding PAX `x`
header named `<dir>/PaxHeaders.0/<base>` (mode 0, mtime 0) only when records are needed. Records
are sorted by key, as Go sorts them.
"""

from __future__ import annotations

import posixpath
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


def _octal(value: int, width: int) -> bytes:
    # Go's formatOctal: zero-padded digits then NUL; a value that does not fit becomes 0.
    digits = format(value, "o") if value >= 0 else "0"
    if len(digits) > width - 1:
        digits = "0"
    return digits.rjust(width - 1, "0").encode() + b"\0"


def _field(text: bytes, width: int) -> bytes:
    return text[:width].ljust(width, b"\0")


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


def _raw_header(
    name: bytes, typeflag: bytes, mode: int, uid: int, gid: int, size: int, mtime: int,
    linkname: bytes, uname: bytes, gname: bytes, devmajor: int, devminor: int, prefix: bytes = b"",
) -> bytes:
    block = bytearray(
        _field(name, 100) + _octal(mode, 8) + _octal(uid, 8) + _octal(gid, 8)
        + _octal(size, 12) + _octal(mtime, 12) + b" " * 8 + typeflag + _field(linkname, 100)
        + b"ustar\x0000" + _field(uname, 32) + _field(gname, 32)
        + _octal(devmajor, 8) + _octal(devminor, 8) + _field(prefix, 155)
    )
    block += b"\0" * (BLOCK - len(block))
    checksum = sum(block)
    block[148:156] = format(checksum, "o").rjust(6, "0").encode() + b"\0 "
    return bytes(block)


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
