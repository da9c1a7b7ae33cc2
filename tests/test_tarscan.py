"""The fast header reader gives tarfile's entries, or steps aside (Unusual) for tarfile to decide."""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
from dataclasses import asdict

import pytest

from distroless.apk import package, tarscan
from distroless.apk.gzmember import inflate_members
from distroless.errors import DistrolessError
from shared import APK

PACKAGES = sorted((APK / "packages").glob("*.apk"))
W = "t: data member"  # what _scan_data names in errors


def _both(data: bytes):
    """(entries by tarscan or the string 'unusual', entries or the error by tarfile) for a tar."""
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.flush()
        fd = f.fileno()
        try:
            fast = [asdict(e) for e in package._data_entries(
                tarscan.headers(fd, len(data), package._pax_budget(W)), fd, W)]
        except tarscan.Unusual:
            fast = "unusual"
        try:
            slow = [asdict(e) for e in package._data_entries(package._tarfile_infos(f, W), fd, W)]
        except DistrolessError as e:
            slow = f"error: {e}"
        return fast, slow


def _tar(fmt: int, *members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tf:
        for info, data in members:
            info.size = len(data) if info.type in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
            tf.addfile(info, io.BytesIO(data) if data else None)
    return out.getvalue()


def _info(name: str, kind: bytes = tarfile.REGTYPE, **kw) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mtime = 1700000000
    for k, v in kw.items():
        setattr(info, k, v)
    return info


@pytest.mark.parametrize("path", PACKAGES, ids=lambda p: p.name)
def test_real_data_members_read_the_same_and_fast(path) -> None:
    data = inflate_members(path.read_bytes(), str(path), 1 << 30)[-1][1]
    fast, slow = _both(data)
    assert fast != "unusual", "the packages melange writes are the fast reader's subset"
    assert fast == slow and slow


LONG = "usr/share/" + "d" * 90 + "/" + "f" * 60  # > 100 bytes: a USTAR prefix, or a PAX path


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.PAX_FORMAT, tarfile.GNU_FORMAT],
                         ids=["ustar", "pax", "gnu"])
def test_archive_formats_read_the_same(fmt) -> None:
    members = [
        (_info("usr", tarfile.DIRTYPE, mode=0o755), b""),
        (_info("usr/bin", tarfile.DIRTYPE, mode=0o755, uid=12, gid=34, uname="u", gname="g"), b""),
        (_info("usr/bin/tool", mode=0o4755), b"#!/bin/true\n" * 100),
        (_info("usr/bin/link", tarfile.SYMTYPE, linkname="tool"), b""),
        (_info("usr/bin/hard", tarfile.LNKTYPE, linkname="usr/bin/tool"), b""),
        (_info("usr/lib", tarfile.DIRTYPE), b""),
        (_info(LONG), b"x" * 513),
        (_info("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3), b""),
        (_info("run/fifo", tarfile.FIFOTYPE), b""),
        (_info("empty"), b""),
    ]
    if fmt == tarfile.PAX_FORMAT:
        members += [
            (_info("usr/lib/é-ünïcode", pax_headers={"SCHILY.xattr.user.k": "v", "APK-TOOLS.checksum.SHA1":
                                                      "da39a3ee5e6b4b0d3255bfef95601890afd80709"}), b""),
            (_info("usr/lib/" + "l" * 120, tarfile.SYMTYPE, linkname="t" * 150), b""),
            (_info("usr/lib/big-uid", uid=10_000_000_000), b"abc"),  # a PAX uid
            (_info("usr/lib/frac", pax_headers={"mtime": "1700000000.75"}), b""),
        ]
    fast, slow = _both(_tar(fmt, *members))
    assert isinstance(slow, list) and len(slow) == len(members)
    if fmt == tarfile.GNU_FORMAT:
        assert fast == "unusual"  # GNU long names: tarfile reads them
    else:
        assert fast == slow


def _patch(data: bytes, offset: int, new: bytes, *, fix_checksum: bool = True) -> bytes:
    """`data` with `new` written at `offset` (inside one header), its checksum recomputed."""
    buf = bytearray(data)
    buf[offset:offset + len(new)] = new
    if fix_checksum:
        start = offset - offset % 512
        block = buf[start:start + 512]
        block[148:156] = b" " * 8
        buf[start + 148:start + 156] = format(sum(block), "06o").encode() + b"\0 "
    return bytes(buf)


BASE = _tar(tarfile.USTAR_FORMAT, (_info("a", mode=0o644), b"1" * 600), (_info("b/", tarfile.DIRTYPE), b""),
            (_info("c"), b"2"))


@pytest.mark.parametrize("case", [
    "v7-directory", "bad-checksum-later", "bad-checksum-first", "signed-checksum", "base256-uid",
    "blank-number", "spaced-number", "no-end-blocks", "truncated-content", "global-pax", "unknown-type",
    "prefix-dir",
])
def test_unusual_headers_read_the_same_or_step_aside(case) -> None:
    data = BASE
    second = 1536  # "a" has 600 bytes: header at 0, content 512..1536, "b/" at 1536
    if case == "v7-directory":
        data = _patch(_patch(data, second, b"b/\0"), second + 156, b"\0")
    elif case == "bad-checksum-later":
        data = _patch(data, second + 100, b"0000777\0", fix_checksum=False)  # tarfile: the archive ends
    elif case == "bad-checksum-first":
        data = _patch(data, 100, b"0000777\0", fix_checksum=False)
    elif case == "signed-checksum":
        data = _patch(data, second + 265, b"\xe9t\xe9\0")  # uname bytes >= 0x80: signed != unsigned
        block = bytearray(data[second:second + 512])
        block[148:156] = b" " * 8
        signed = sum(b - 256 if b > 127 else b for b in block)
        data = data[:second + 148] + format(signed, "06o").encode() + b"\0 " + data[second + 156:]
    elif case == "base256-uid":
        data = _patch(data, 108, b"\x80" + b"\0" * 6 + b"\x07")
    elif case == "blank-number":
        data = _patch(data, 116, b"       \0")
    elif case == "spaced-number":
        data = _patch(data, 100, b"  644  \0")
    elif case == "no-end-blocks":
        data = data[:second + 3 * 512]  # "b/", then "c" and its one block
    elif case == "truncated-content":
        data = data[:1000]
    elif case == "global-pax":
        g = tarfile.TarInfo("g")
        data = g.tobuf(tarfile.PAX_FORMAT) + data  # a global header with no records (kept by tarfile)
        data = _patch(data, 156, b"g")
    elif case == "unknown-type":
        data = _patch(data, second + 156, b"Z")
    elif case == "prefix-dir":
        data = _patch(_patch(data, second, b"\0" * 100), second + 345, b"b/dir")
    fast, slow = _both(data)
    assert fast in ("unusual", slow), (fast, slow)
    with tempfile.TemporaryFile() as f:  # what expansion uses: the same as tarfile in every case
        f.write(data)
        f.flush()
        try:
            got = [asdict(e) for e in package._scan_data(f, "t")]
        except DistrolessError as e:
            got = f"error: {e}"
    assert got == slow
    if case in ("v7-directory", "spaced-number", "blank-number", "no-end-blocks", "prefix-dir"):
        assert fast != "unusual", "the fast reader handles this case itself"


def test_pax_caps_apply_on_the_fast_path() -> None:
    big = _tar(tarfile.PAX_FORMAT, (_info("a", pax_headers={"comment": "x" * (package.PAX_CAP + 10)}), b""))
    with tempfile.TemporaryFile() as f:
        f.write(big)
        f.flush()
        with pytest.raises(DistrolessError, match="a PAX header of .* bytes"):
            list(tarscan.headers(f.fileno(), len(big), package._pax_budget("t")))


def test_headers_are_read_with_positioned_reads_only() -> None:
    # the file position is the caller's: the reader never moves it
    with tempfile.TemporaryFile() as f:
        f.write(BASE)
        f.flush()
        f.seek(7)
        assert [i.name for i in tarscan.headers(f.fileno(), len(BASE), lambda n: None)] == ["a", "b", "c"]
        assert os.lseek(f.fileno(), 0, os.SEEK_CUR) == 7
