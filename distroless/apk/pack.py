"""Write an .apk from a directory tree, to melange's layout (melange.md §4, §9).

Three gzip members: a signature member (when a key is given), the control member (`.PKGINFO`
first, then scripts; no end-of-archive blocks) and the data member (entries pre-order with
bytewise-sorted children, per-file `APK-TOOLS.checksum.SHA1`, closed normally). Every mtime is
SOURCE_DATE_EPOCH, so the same tree, metadata and key give the same bytes.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, Iterator, Sequence

from distroless.apk import pkginfo, signature
from distroless.apk.gzmember import MemberWriter, gzip_member
from distroless.apk.keys import SigningKey
from distroless.apk.model import Package
from distroless.apk.package import q1
from distroless.errors import FormatError
from distroless.fsutil import atomic_output
from distroless.tarball import (APK_CHECKSUM_SHA1, CHRTYPE, DIRTYPE, END_OF_ARCHIVE, LNKTYPE, REGTYPE, SYMTYPE,
                                BLKTYPE, FIFOTYPE, Header, encode_header, padding)

SCRIPTS = (".post-deinstall", ".post-install", ".post-upgrade", ".pre-deinstall", ".pre-install",
           ".pre-upgrade", ".trigger")
_COPY = 1 << 20


@dataclass(frozen=True, slots=True)
class Ownership:
    """How file owners are recorded. melange maps the build user 1000:1000 to root; `root` forces 0:0."""

    mode: str = "root"  # "root" | "keep"
    names: dict[int, str] | None = None  # uid/gid → name, from the guest's passwd/group
    build_ids: frozenset[int] = frozenset({1000})  # the build user, and the host id it maps to

    def owner(self, st: os.stat_result) -> tuple[int, int]:
        if self.mode == "root":
            return 0, 0
        uid = 0 if st.st_uid in self.build_ids else st.st_uid
        gid = 0 if st.st_gid in self.build_ids else st.st_gid
        return uid, gid

    def name(self, ident: int) -> str:
        if ident == 0:
            return "root"
        return (self.names or {}).get(ident, "")


@dataclass(frozen=True, slots=True)
class Built:
    package: Package
    checksum: str
    sha256: str
    size: int


def _walk(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    """Pre-order walk, children sorted bytewise (Go's fs.WalkDir order); the root itself
    excluded. Iterative, so a tree of any depth is fine."""
    stack = [_listing(root, "")]
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
            continue
        path, name = item
        st = path.lstat()
        yield name, st
        if stat.S_ISDIR(st.st_mode):
            stack.append(_listing(path, name))


def _listing(d: Path, rel: str) -> Iterator[tuple[Path, str]]:
    try:
        names = sorted(os.listdir(d), key=os.fsencode)
    except OSError as e:
        raise FormatError(f"{d}: cannot list directory: {e.strerror}") from None
    return iter([(d / n, f"{rel}/{n}" if rel else n) for n in names])


def _xattrs(path: Path) -> dict[str, str | bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    # SELinux labels belong to the build host, not the package.
    return {f"SCHILY.xattr.{n}": os.getxattr(path, n, follow_symlinks=False)
            for n in sorted(names) if not n.startswith("security.selinux")}


def write_data(root: Path, out: BinaryIO, mtime: int, ownership: Ownership) -> tuple[str, int]:
    """Stream the data member for `root` to `out`. Returns (datahash, installed size)."""
    datahash = hashlib.sha256()
    gz = MemberWriter(out, datahash)
    seen_inodes: dict[tuple[int, int], str] = {}
    installed = 0
    for name, st in _walk(root):
        path = root / name
        uid, gid = ownership.owner(st)
        h = Header(name, mode=stat.S_IMODE(st.st_mode), uid=uid, gid=gid, mtime=mtime,
                   uname=ownership.name(uid), gname=ownership.name(gid), pax=_xattrs(path))
        content: Path | None = None
        if stat.S_ISDIR(st.st_mode):
            h.type = DIRTYPE
        elif stat.S_ISLNK(st.st_mode):
            h.type = SYMTYPE
            h.linkname = os.readlink(path)
            h.pax[APK_CHECKSUM_SHA1] = hashlib.sha1(os.fsencode(h.linkname)).hexdigest()
            installed += len(os.fsencode(h.linkname))
        elif stat.S_ISREG(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in seen_inodes:
                h.type, h.linkname = LNKTYPE, seen_inodes[key]
            else:
                seen_inodes[key] = name
                h.type, h.size, content = REGTYPE, st.st_size, path
                h.pax[APK_CHECKSUM_SHA1] = _sha1_file(path)
                installed += st.st_size
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            h.type = CHRTYPE if stat.S_ISCHR(st.st_mode) else BLKTYPE
            h.devmajor, h.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(st.st_mode):
            h.type = FIFOTYPE
        else:
            raise FormatError(f"{path}: unsupported file type (sockets cannot be packaged)")
        gz.write(encode_header(h))
        if content is not None:
            with open(content, "rb") as f:
                copied = 0
                while chunk := f.read(_COPY):
                    gz.write(chunk)
                    copied += len(chunk)
            if copied != h.size:
                raise FormatError(f"{path}: file changed size while being packed")
            gz.write(padding(h.size))
    gz.write(END_OF_ARCHIVE)
    gz.close()
    # apk-tools treats size 0 as a virtual package, so a real package never reports 0 (as abuild).
    return datahash.hexdigest(), max(installed, 1)


def _sha1_file(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        while chunk := f.read(_COPY):
            h.update(chunk)
    return h.hexdigest()


def control_member(pkg: Package, scripts: dict[str, bytes], mtime: int, generator: str = "distroless",
                   melange_yaml: bytes | None = None, licenses: Sequence[str] = ()) -> bytes:
    """`.PKGINFO`, melange's `.melange.yaml` (the compiled recipe) when given, then scripts (0755,
    sorted) — names sorted bytewise as melange walks them — root-owned, without end blocks."""
    for name in scripts:
        if name not in SCRIPTS:
            raise FormatError(f"script {name!r}: not one of {', '.join(SCRIPTS)}")
    tar = b""
    info = pkginfo.render(pkg, generator, licenses).encode()
    entries = [(".PKGINFO", 0o644, info)]
    if melange_yaml is not None:
        entries.append((".melange.yaml", 0o644, melange_yaml))
    entries += [(n, 0o755, scripts[n]) for n in sorted(scripts)]
    for name, mode, data in entries:
        h = Header(name, mode=mode, size=len(data), mtime=mtime, uname="root", gname="root")
        tar += encode_header(h) + data + padding(len(data))
    return gzip_member(tar)


def pack(
    root: Path,
    meta: Package,
    output: Path,
    *,
    signing_key: SigningKey | None = None,
    scripts: dict[str, bytes] | None = None,
    source_date_epoch: int = 0,
    ownership: Ownership = Ownership(),
    melange_yaml: bytes | None = None,
    licenses: Sequence[str] = (),
) -> Built:
    """Pack `root` with metadata `meta` into `output` (written atomically)."""
    root = Path(root)
    if not root.is_dir():
        raise FormatError(f"{root}: not a directory")
    output = Path(output)
    with tempfile.TemporaryFile(dir=output.parent) as data:
        datahash, installed = write_data(root, data, source_date_epoch, ownership)
        pkg = replace(meta, datahash=datahash, installed_size=installed, build_time=source_date_epoch,
                      depends=list(meta.depends), provides=list(meta.provides))
        control = control_member(pkg, scripts or {}, source_date_epoch, melange_yaml=melange_yaml,
                                 licenses=licenses)
        head = control
        if signing_key is not None:
            sig = signature.sign(signing_key, {"RSA256": hashlib.sha256(control).digest()})
            head = signature.build_member([sig], mtime=source_date_epoch) + control
        whole = hashlib.sha256(head)
        data.seek(0)
        with atomic_output(output) as out:
            out.write(head)
            size = len(head)
            while chunk := data.read(_COPY):
                out.write(chunk)
                whole.update(chunk)
                size += len(chunk)
    pkg.checksum = q1(hashlib.sha1(control).digest())
    pkg.size = size
    return Built(pkg, pkg.checksum, whole.hexdigest(), size)
