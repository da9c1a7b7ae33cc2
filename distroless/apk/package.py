"""Read and verify an .apk: [signature member] + control member + data member.

The chain of trust is apk-tools' and apko's: a signed index (or a lock) gives the control
member's SHA-1 (`C:`), the control member's `.PKGINFO` gives the data member's SHA-256
(`datahash`), and each data entry may carry `APK-TOOLS.checksum.SHA1`. The package's own
`.SIGN.*` signature is checked too when a keyring is given (apko skips it).

Everything streams: the data member is decompressed and hashed as it is read, and file contents
are handed to an optional callback, never buffered whole.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator

from distroless.apk import pkginfo, signature, tarscan
from distroless.apk.gzmember import MemberReader
from distroless.apk.keys import Keyring
from distroless.apk.model import Package
from distroless.errors import FormatError, LimitError, VerificationError
from distroless.tarball import APK_CHECKSUM_SHA1, check_member_name

CONTROL_CAP = 10 << 20  # apko's default control-section limit
DATA_CAP = 16 << 30  # apko's default data-section limit
# Per-entry state is bounded, whoever signed the package: the number of entries (each is kept
# as metadata), one PAX header and all of them together, and GNU long names (PATH_MAX).
MAX_ENTRIES = 1 << 18
PAX_CAP = 1 << 20
PAX_TOTAL_CAP = 64 << 20
LONGNAME_CAP = 4096
_READ = 1 << 16
_SHA1_PIECE = 1 << 20
_HEX40 = re.compile("[0-9a-fA-F]{40}")

_TYPES = {
    tarfile.REGTYPE: "reg", tarfile.AREGTYPE: "reg", tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "sym",
    tarfile.LNKTYPE: "lnk", tarfile.CHRTYPE: "chr", tarfile.BLKTYPE: "blk", tarfile.FIFOTYPE: "fifo",
}


@dataclass(slots=True)
class Entry:
    """One tar entry of a control or data member, with its verified SHA-1 where it had one."""

    name: str
    type: str
    mode: int
    uid: int
    gid: int
    uname: str
    gname: str
    mtime: int
    size: int
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    sha1: str = ""  # hex, from the APK-TOOLS.checksum.SHA1 record, checked against the content
    offset: int = 0  # where the content starts in the uncompressed data tar
    xattrs: dict[str, bytes] = field(default_factory=dict)
    pax: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Section:
    """A gzip member's position in the file and the digest apk-tools keys it by."""

    offset: int
    size: int
    digest: str  # hex: SHA-1 for signature/control, SHA-256 for data


@dataclass(slots=True)
class ApkFile:
    package: Package
    pkginfo_text: str
    signatures: list[signature.Signature]
    verified_by: list[str]
    signature_section: Section | None
    control_section: Section
    data_section: Section
    sha256: str  # of the whole .apk: how BuildKit and Bazel pin a download
    file_size: int
    scripts: list[tuple[Entry, bytes]]
    entries: list[Entry]

    @property
    def checksum(self) -> str:
        """The index `C:` value: `Q1` + base64(SHA-1 of the control member)."""
        return q1(bytes.fromhex(self.control_section.digest))


def q1(sha1: bytes) -> str:
    return "Q1" + base64.b64encode(sha1).decode()


def q1_to_hex(value: str, what: str) -> str:
    if not value.startswith("Q1"):
        raise FormatError(f"{what}: checksum {value!r} is not a Q1 (SHA-1) checksum")
    try:
        raw = base64.b64decode(value[2:], validate=True)
    except ValueError:
        raw = b""
    if len(raw) != 20:
        raise FormatError(f"{what}: checksum {value!r} is not valid base64 SHA-1")
    return raw.hex()


def _record_sha1(value: str, what: str) -> str:
    """The per-file checksum record is hex, or Q1+base64 (both are accepted by apko)."""
    if value.startswith("Q1"):
        return q1_to_hex(value, what)
    if _HEX40.fullmatch(value) is None:
        raise FormatError(f"{what}: {APK_CHECKSUM_SHA1} {value!r} is not a SHA-1")
    return value.lower()


def _entry(info: tarfile.TarInfo | tarscan.Info, source: str) -> Entry:
    kind = _TYPES.get(info.type)
    if kind is None:
        raise FormatError(f"{source}: tar entry {info.name!r} has unsupported type {info.type!r}")
    name = check_member_name(info.name, source)
    if kind == "lnk":
        check_member_name(info.linkname, f"{source}: hard link {name!r}")
    pax = dict(info.pax_headers)
    xattrs = {
        k[len("SCHILY.xattr."):]: v.encode("utf-8", "surrogateescape")
        for k, v in pax.items() if k.startswith("SCHILY.xattr.")
    }
    return Entry(
        name=name, type=kind, mode=info.mode, uid=info.uid, gid=info.gid, uname=info.uname,
        gname=info.gname, mtime=int(info.mtime), size=info.size, linkname=info.linkname,
        devmajor=info.devmajor, devminor=info.devminor, offset=info.offset_data, xattrs=xattrs, pax=pax,
    )


class _HashingStream(io.RawIOBase):
    """What a callback reads of a file: every byte it reads is hashed on the way."""

    def __init__(self, f: BinaryIO):
        super().__init__()
        self._f = f
        self.sha1 = hashlib.sha1()

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:  # type: ignore[override]
        data = self._f.read(len(buf))
        self.sha1.update(data)
        buf[: len(data)] = data
        return len(data)

    def finish(self) -> str:
        while self.read(_READ):
            pass
        return self.sha1.hexdigest()


OnEntry = Callable[[Entry, BinaryIO | None], None]


def read(
    src: str | Path | BinaryIO,
    *,
    keyring: Keyring | None = None,
    require_signature: bool = False,
    expected_checksum: str | None = None,
    expected_sha256: str | None = None,
    on_entry: OnEntry | None = None,
    data_sink: BinaryIO | None = None,
    data_cap: int = DATA_CAP,
    source: str | None = None,
    control_cap: int = CONTROL_CAP,
) -> ApkFile:
    """Read and verify a package. Every check its contents allow is made; any failure raises.

    `on_entry` receives each data entry and, for regular files, a stream of its contents that is
    hashed as it is read; a checksum mismatch raises after the callback returns, so a caller
    that writes files must treat them as provisional until `read` returns. `data_sink` (a file
    open for reading and writing, instead of `on_entry`) receives the uncompressed data tar
    (entry offsets point into it), under the same proviso.
    """
    if data_sink is not None and on_entry is not None:
        raise ValueError("read: data_sink and on_entry are exclusive")
    if isinstance(src, (str, Path)):
        with open(src, "rb") as f:
            return read(f, keyring=keyring, require_signature=require_signature,
                        expected_checksum=expected_checksum, expected_sha256=expected_sha256,
                        on_entry=on_entry, data_sink=data_sink, data_cap=data_cap, source=source or str(src),
                        control_cap=control_cap)
    source = source or getattr(src, "name", "<package>")
    start = _position(src)
    whole = hashlib.sha256()
    reader = MemberReader(src, source)

    control_hashes = {"RSA": hashlib.sha1(), "RSA256": hashlib.sha256(), "RSA512": hashlib.sha512()}
    first = reader.next("control member", control_cap, whole, *control_hashes.values())
    first_data = first.read()
    sigs: list[signature.Signature] = []
    sig_section: Section | None = None
    offset = 0
    if signature.is_signature_tar(first_data):
        sigs = signature.parse_tar(first_data, source)
        sig_section = Section(0, first.raw_size, control_hashes["RSA"].hexdigest())
        offset = first.raw_size
        control_hashes = {"RSA": hashlib.sha1(), "RSA256": hashlib.sha256(), "RSA512": hashlib.sha512()}
        control = reader.next("control member", control_cap, whole, *control_hashes.values())
        control_data = control.read()
    else:
        control, control_data = first, first_data
    control_section = Section(offset, control.raw_size, control_hashes["RSA"].hexdigest())
    offset += control.raw_size

    info_text, scripts = _read_control(control_data, source)
    pkg = pkginfo.parse(info_text, source)

    if expected_checksum is not None:
        want = q1_to_hex(expected_checksum, source)
        if want != control_section.digest:
            raise VerificationError(
                f"{source}: control member: checksum {q1(bytes.fromhex(control_section.digest))} "
                f"does not match the expected {expected_checksum}"
            )
    verified: list[str] = []
    if keyring is not None and (sigs or require_signature):
        digests = {alg: h.digest() for alg, h in control_hashes.items()}
        verified = signature.verify(sigs, keyring, digests, f"{source}: signature member")
    elif require_signature:
        raise VerificationError(f"{source}: signature member: package is not signed")

    if not pkg.datahash:
        raise VerificationError(f"{source}: control member: .PKGINFO has no datahash, so the data cannot be verified")
    if start is not None and data_sink is None:
        # A file: hash the data member's bytes first (no decompression, no parsing, constant
        # memory), so a swapped data member is refused before any of it is expanded or kept.
        _check_datahash(src, start + offset, pkg.datahash, source)
        src.seek(start + offset)
        reader = MemberReader(src, source)
        reader.index = 2 if sig_section else 1
    data_hash = hashlib.sha256()
    data = reader.next("data member", data_cap, whole, data_hash)
    if data_sink is not None:
        # Inflate into the sink first (one pass: each raw byte is hashed once for the datahash
        # and once for the file's sha256, each data byte written once), and parse only what the
        # datahash has vouched for; the sink's bytes are the caller's to discard on an error.
        data.copy_to(data_sink)
        data_sink.flush()
    else:
        entries = _read_data(data, source, on_entry)
        data.drain()
    data_section = Section(offset, data.raw_size, data_hash.hexdigest())
    if not reader.at_end():
        raise FormatError(f"{source}: unexpected bytes after the data member")
    if data_section.digest != pkg.datahash.lower():
        raise VerificationError(
            f"{source}: data member: datahash mismatch (.PKGINFO says {pkg.datahash}, "
            f"data member hashes to {data_section.digest})"
        )
    if data_sink is not None:
        entries = _scan_data(data_sink, source)
    file_size = offset + data.raw_size
    sha256 = whole.hexdigest()
    if expected_sha256 is not None and expected_sha256 != sha256:
        raise VerificationError(f"{source}: file sha256 {sha256} does not match the expected {expected_sha256}")
    pkg.checksum = q1(bytes.fromhex(control_section.digest))
    pkg.size = file_size
    return ApkFile(pkg, info_text, sigs, verified, sig_section, control_section, data_section,
                   sha256, file_size, scripts, entries)


def _position(src: BinaryIO) -> int | None:
    """Where the package starts in `src`, when `src` can seek (a file); None for a stream."""
    try:
        return src.tell() if src.seekable() else None
    except (OSError, AttributeError):
        return None


def _check_datahash(src: BinaryIO, data_start: int, datahash: str, source: str) -> None:
    src.seek(data_start)
    h = hashlib.sha256()
    while chunk := src.read(1 << 20):
        h.update(chunk)
    if h.hexdigest() != datahash.lower():
        raise VerificationError(
            f"{source}: data member: datahash mismatch (.PKGINFO says {datahash}, "
            f"the bytes after the control member hash to {h.hexdigest()}: truncated or replaced?)"
        )


class _BoundedTarInfo(tarfile.TarInfo):
    """tarfile reads a PAX or GNU long-name header whole into memory: refuse oversized ones
    before they are read, and keep a per-archive budget for all PAX headers together."""

    where = "tar"
    charge: Callable[[int], None]

    def _proc_pax(self, tarfile_):  # type: ignore[no-untyped-def]
        self.charge(self.size)
        return super()._proc_pax(tarfile_)  # type: ignore[misc]

    def _proc_gnulong(self, tarfile_):  # type: ignore[no-untyped-def]
        if self.size > LONGNAME_CAP:
            raise LimitError(f"{self.where}: a GNU long-name header of {self.size} bytes "
                             f"(the cap is {LONGNAME_CAP})")
        return super()._proc_gnulong(tarfile_)  # type: ignore[misc]


def _bounded(where: str) -> type[_BoundedTarInfo]:
    """The TarInfo class for one archive: errors name it, and its PAX headers share one budget."""
    return type("_Bounded", (_BoundedTarInfo,), {"where": where, "charge": staticmethod(_pax_budget(where))})


def _pax_budget(where: str) -> Callable[[int], None]:
    """Charge each PAX header's size before it is read: a cap per header and one per archive."""
    left = PAX_TOTAL_CAP

    def charge(size: int) -> None:
        nonlocal left
        if size > PAX_CAP:
            raise LimitError(f"{where}: a PAX header of {size} bytes (the cap is {PAX_CAP})")
        left -= size
        if left < 0:
            raise LimitError(f"{where}: PAX headers exceed {PAX_TOTAL_CAP} bytes in total")
    return charge


def _read_control(data: bytes, source: str) -> tuple[str, list[tuple[Entry, bytes]]]:
    where = f"{source}: control member"
    info_text: str | None = None
    scripts: list[tuple[Entry, bytes]] = []
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
            for info in tf:
                entry = _entry(info, where)
                if not entry.name.startswith(".") or "/" in entry.name:
                    raise FormatError(f"{where}: entry {info.name!r} is not a control file (data in the control member?)")
                f = tf.extractfile(info)
                content = f.read() if f else b""
                if entry.name == ".PKGINFO":
                    try:
                        info_text = content.decode("utf-8")
                    except UnicodeDecodeError:
                        raise FormatError(f"{where}: .PKGINFO is not UTF-8") from None
                else:
                    scripts.append((entry, content))
    except tarfile.TarError as e:
        raise FormatError(f"{where}: not a tar ({e})") from None
    if info_text is None:
        raise FormatError(f"{where}: no .PKGINFO")
    return info_text, scripts


def _read_data(member: BinaryIO, source: str, on_entry: OnEntry | None) -> list[Entry]:
    where = f"{source}: data member"
    try:
        with tarfile.open(fileobj=io.BufferedReader(member, _READ), mode="r|",  # type: ignore[arg-type]
                          tarinfo=_bounded(where)) as tf:
            return [_data_entry(tf, info, where, on_entry) for info in _data_members(_infos(tf), where)]
    except tarfile.TarError as e:
        raise FormatError(f"{where}: not a valid tar ({e})") from None


def _infos(tf: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    while (info := tf.next()) is not None:
        tf.members.clear()  # only the Entry list is kept (stream mode would keep every header)
        yield info


def _data_members(infos: Iterable[tarfile.TarInfo | tarscan.Info], where: str
                  ) -> Iterator[tarfile.TarInfo | tarscan.Info]:
    """The data entries, capped in number; APK v1 compatibility: leading dot-files without a
    slash are metadata, not data."""
    leading, count = True, 0
    for info in infos:
        if leading and info.name.startswith(".") and "/" not in info.name:
            continue
        leading = False
        count += 1
        if count > MAX_ENTRIES:
            raise LimitError(f"{where}: more than {MAX_ENTRIES} entries")
        yield info


def _checked(entry: Entry, got: str, where: str) -> Entry:
    """`entry` with the SHA-1 its PAX record gives, once `got` (the content's, or "" where there
    is none to hash) agrees with it."""
    recorded = entry.pax.get(APK_CHECKSUM_SHA1)
    if recorded:
        want = _record_sha1(recorded, f"{where}: {entry.name}")
        if got and got != want:
            raise VerificationError(f"{where}: {entry.name}: {APK_CHECKSUM_SHA1} mismatch (recorded {want}, content {got})")
        entry.sha1 = want
    return entry


def _link_sha1(entry: Entry) -> str:
    return hashlib.sha1(entry.linkname.encode("utf-8", "surrogateescape")).hexdigest()


def _data_entry(tf: tarfile.TarFile, info: tarfile.TarInfo, where: str, on_entry: OnEntry | None) -> Entry:
    entry = _entry(info, where)
    got = ""
    if entry.type == "reg":
        f = tf.extractfile(info)
        assert f is not None
        stream = _HashingStream(f)  # type: ignore[arg-type]
        if on_entry:
            on_entry(entry, stream)  # type: ignore[arg-type]
        got = stream.finish()
    else:
        if entry.type == "sym":
            got = _link_sha1(entry)
        if on_entry:
            on_entry(entry, None)
    return _checked(entry, got, where)


def _scan_data(tar: BinaryIO, source: str) -> list[Entry]:
    """The entries of a data tar already on disk (and vouched for by the datahash): headers are
    read with positioned reads over the contents (`tarscan`, or tarfile for an archive outside
    its subset), and each file's SHA-1 is computed from positioned reads of the file, in large
    pieces (no per-64 KiB Python loop through tarfile's stream)."""
    where = f"{source}: data member"
    fd = tar.fileno()
    try:
        return _data_entries(tarscan.headers(fd, os.fstat(fd).st_size, _pax_budget(where)), fd, where)
    except tarscan.Unusual:
        pass  # tarfile decides what an unusual archive means
    return _data_entries(_tarfile_infos(tar, where), fd, where)


def _tarfile_infos(tar: BinaryIO, where: str) -> Iterator[tarfile.TarInfo]:
    tar.seek(0)
    try:
        with tarfile.open(fileobj=tar, mode="r:", tarinfo=_bounded(where)) as tf:  # type: ignore[call-overload]
            yield from _infos(tf)
    except tarfile.TarError as e:
        raise FormatError(f"{where}: not a valid tar ({e})") from None


def _data_entries(infos: Iterable[tarfile.TarInfo | tarscan.Info], fd: int, where: str) -> list[Entry]:
    entries: list[Entry] = []
    for info in _data_members(infos, where):
        entry = _entry(info, where)
        if entry.type == "reg":
            got = _file_sha1(fd, entry.offset, entry.size, where, entry.name)
        else:
            got = _link_sha1(entry) if entry.type == "sym" else ""
        entries.append(_checked(entry, got, where))
    return entries


def _file_sha1(fd: int, offset: int, size: int, where: str, name: str) -> str:
    h = hashlib.sha1()
    pos, left = offset, size
    while left:
        chunk = os.pread(fd, min(left, _SHA1_PIECE), pos)
        if not chunk:
            raise FormatError(f"{where}: {name}: truncated (the tar ends inside the file)")
        h.update(chunk)
        pos += len(chunk)
        left -= len(chunk)
    return h.hexdigest()


def verify_file(path: str | Path, keyring: Keyring | None, require_signature: bool = True) -> ApkFile:
    """`package verify`: every check, and a signature by a trusted key when a keyring is given."""
    return read(path, keyring=keyring, require_signature=require_signature and keyring is not None)
