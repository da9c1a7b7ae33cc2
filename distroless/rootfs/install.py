"""Install expanded packages into the in-memory tree, exactly as apko does (apko.md §2.2, §2.6).

Install scripts are stored in `scripts.tar`, never run. Package files end up 0:0 in the layer
(apko's behaviour; `keep_owners=True` keeps the APK's uid/gid, which users have asked apko for),
while the installed database records the APK headers' owners.
"""

from __future__ import annotations

import itertools
import marshal
import os
import posixpath
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import BinaryIO

from distroless.apk.model import Package
from distroless.store.expand import Expanded
from distroless.errors import DistrolessError
from distroless.rootfs import idb
from distroless.rootfs.tree import NO_XATTRS, Children, Node, TarRef, Tree, TreeError
from distroless.tarball import Header

DB = "usr/lib/apk/db"
_ATOM_NAME = re.compile(r"^[^<>=~]+")


class FileConflictError(DistrolessError):
    pass


def init_db(tree: Tree, arch: str) -> None:
    """apko's InitDB: base directories, apk's own files, device nodes and an empty scripts.tar."""
    for path, mode in (("tmp", 0o1777), ("dev", 0o755), ("etc", 0o755), ("opt", 0o755), ("proc", 0o555),
                       ("var", 0o755), ("usr", 0o755)):
        if tree.get(path) is None:
            tree.put(path, Node("dir", mode, children={}))
    for path in ("etc/apk", "etc/apk/keys", "usr/lib", "usr/lib/apk", DB, "usr/lib/apk/exec", "var/cache",
                 "var/cache/apk", "var/cache/misc"):
        tree.mkdir_all(path, 0o755)
    tree.write_file("etc/apk/world", b"\n")
    tree.write_file("etc/apk/repositories", b"\n")
    tree.write_file(f"{DB}/lock", b"", mode=0o600)
    tree.write_file(f"{DB}/triggers", b"")
    tree.write_file(f"{DB}/installed", b"")
    tree.write_file("etc/apk/arch", f"{arch}\n".encode())
    add_devices(tree)
    tree.write_file(f"{DB}/scripts.tar", b"\0" * 1024)


DEVICES = (("dev/zero", 1, 5, 0o666), ("dev/urandom", 1, 9, 0o666), ("dev/null", 1, 3, 0o666),
           ("dev/random", 1, 8, 0o666), ("dev/console", 5, 1, 0o620))


def add_devices(tree: Tree) -> None:
    for path, major, minor, mode in DEVICES:
        if tree.get(path) is None:
            tree.put(path, Node("chr", mode, devmajor=major, devminor=minor))


def _names(atoms: list[str]) -> set[str]:
    out = set()
    for a in atoms:
        m = _ATOM_NAME.match(a)
        if m:
            out.add(m.group(0))
    return out


# A package's file records, in install order: (path as packaged, uid, gid, mode, sha1 hex, the
# number of the tree directory it went in)
FileRow = tuple[str, int, int, int, str, int]


@dataclass(slots=True)
class _Installed:
    package: Package
    dirs: dict[str, idb.IdbDir] = field(default_factory=dict)
    files: tuple[int, int] = (0, 0)  # where its `FileRow`s are in the spill file (offset, size)


class _Spill:
    """Every installed package's file records, written once each package is installed and read
    back (by position, so two readers never disturb each other) when the installed database is
    written: thousands of per-file records stay out of memory. An unnamed temporary file."""

    def __init__(self) -> None:
        self._f: BinaryIO | None = None
        self._end = 0

    def put(self, rows: list[tuple]) -> tuple[int, int]:
        if not rows:
            return (self._end, 0)
        if self._f is None:
            self._f = tempfile.TemporaryFile(prefix="distroless-idb-")
        data = marshal.dumps(rows)
        os.pwrite(self._f.fileno(), data, self._end)
        at, self._end = self._end, self._end + len(data)
        return (at, len(data))

    def get(self, where: tuple[int, int]) -> list[tuple]:
        offset, size = where
        if not size or self._f is None:
            return []
        data = os.pread(self._f.fileno(), size, offset)
        if len(data) != size:
            raise OSError(f"{self._f.name}: the installed-file records end early")
        return marshal.loads(data)


@dataclass(slots=True)
class Installer:
    tree: Tree
    scripts_epoch: int = 0  # scripts.tar mtimes: apko's SourceDateEpoch option
    keep_owners: bool = False
    installed: list[_Installed] = field(default_factory=list)
    base_records: list[idb.IdbRecord] = field(default_factory=list)  # a base image's, written first
    _by_name: dict[str, Package] = field(default_factory=dict)
    _spill: _Spill = field(default_factory=_Spill)
    _scripts: list[tuple[str, Header, bytes]] = field(default_factory=list)
    _triggers: list[tuple[str, list[str]]] = field(default_factory=list)
    _settled: bool = False  # the installed database is written: records() gives what it lists

    def install(self, exp: Expanded) -> None:
        pkg = exp.apk.package
        if pkg.name in self._by_name or any(r.package.name == pkg.name for r in self.base_records):
            return  # already installed (apko skips a name the installed database has)
        self._by_name[pkg.name] = pkg
        rec = _Installed(pkg)
        self.installed.append(rec)
        rows: list[FileRow] = []
        for e in exp.apk.entries:
            try:
                if e.type == "dir":
                    self._dir(e, rec)
                else:
                    self._file(e, exp, rec, rows)
            except TreeError as err:
                raise FileConflictError(f"{pkg.name}-{pkg.version}: /{e.name}: {err}") from None
        rec.files = self._spill.put(rows)
        for entry, data in exp.apk.scripts:
            if entry.mode & 0o555 == 0o555:
                h = Header(entry.name, mode=entry.mode, uid=entry.uid, gid=entry.gid, uname=entry.uname,
                           gname=entry.gname, mtime=self.scripts_epoch,
                           pax={k: v for k, v in entry.pax.items() if k not in _BASIC_PAX})
                self._scripts.append((f"{pkg.name}-{pkg.version}.{pkg.checksum}{entry.name}", h, data))
        if pkg.triggers:
            self._triggers.append((pkg.checksum, list(pkg.triggers)))

    def _dir(self, e, rec: _Installed) -> None:
        rec.dirs[e.name] = idb.IdbDir(e.name, e.uid, e.gid, e.mode & 0o7777)
        existing = self.tree.get(e.name)
        if existing is not None:
            if existing.type == "sym":
                target = self.tree.get(e.name, follow=True)
                if target is not None and target.type == "dir":
                    return  # usr-merge: a symlink to a directory stands in for it
            if existing.type != "dir":
                raise FileConflictError(f"{rec.package.name}: /{e.name}: a directory conflicts with an existing {existing.type}")
            existing.mtime = e.mtime  # the last package to list a directory sets its mtime
            existing.xattrs.update(e.xattrs)
            return
        uid, gid = (e.uid, e.gid) if self.keep_owners else (0, 0)
        node = self.tree.mkdir_all(e.name, e.mode & 0o777)
        node.mtime, node.uid, node.gid, node.xattrs = e.mtime, uid, gid, dict(e.xattrs)

    def _file(self, e, exp: Expanded, rec: _Installed, rows: list[FileRow]) -> None:
        pkg = rec.package
        children, name = self.tree.slot(e.name)
        uid, gid = (e.uid, e.gid) if self.keep_owners else (0, 0)
        node = Node(e.type, e.mode & 0o7777, uid=uid, gid=gid, mtime=e.mtime, linkname=e.linkname,
                    devmajor=e.devmajor, devminor=e.devminor, sha1=e.sha1,
                    xattrs=dict(e.xattrs) if e.xattrs else NO_XATTRS, package=pkg.name)
        if e.type == "reg":
            node.size = e.size
            node.content = TarRef(exp.tar, e.offset, e.size)
        if e.type != "lnk" and children.add(name, node):  # the common case: a new name
            rows.append((e.name, e.uid, e.gid, e.mode & 0o7777, e.sha1, children.key))
            return
        where = f"{pkg.name}-{pkg.version}: /{e.name}"
        existing = children.peek(name)
        if existing is not None and not self._may_replace(existing, e, pkg, where):
            return
        if e.type == "lnk":
            target = self.tree.get(e.linkname)
            if target is None or target.type != "reg":
                raise FileConflictError(f"{where}: hard link to /{e.linkname}, which is not an installed regular file")
            node.target, node.size, node.sha1 = target, target.size, target.sha1
        children.place(name, node)
        rows.append((e.name, e.uid, e.gid, e.mode & 0o7777, e.sha1, children.key))

    def _may_replace(self, existing: Node, e, pkg: Package, where: str) -> bool:
        """apko's conflict rules: True to overwrite, False to keep the existing file."""
        if existing.type == "dir":
            raise FileConflictError(f"{where}: a {e.type} conflicts with an existing directory")
        if existing.type == "sym" and e.type == "sym" and existing.linkname == e.linkname:
            return False
        if existing.sha1 and existing.sha1 == e.sha1:
            return False
        if not existing.package:
            raise FileConflictError(f"{where}: conflicts with a file the build generated")
        owner = self._by_name[existing.package]
        if pkg.name in _names(owner.replaces):
            return False
        if owner.name in _names(pkg.replaces) or (owner.origin and owner.origin == pkg.origin):
            return True
        raise FileConflictError(
            f"{where}: conflicts with the same file from {owner.name}-{owner.version} "
            f"(neither replaces the other and their origins differ)"
        )

    def records(self, settle: bool = False) -> Iterator[idb.IdbRecord]:
        """Installed-database records: per package, its directories (component order) and the
        files it still owns; files under a directory the package does not list are dropped.
        One package at a time (its file records come back from the spill file). `finish` settles
        them as written into the installed database, so later calls (the layered builds' per-layer
        databases) give those same records even after generated files replaced packaged ones."""
        folders: dict[str, Node | None] = {}
        for rec in self.installed:
            dirs = {path: replace(d, files=[]) for path, d in rec.dirs.items()}
            kept: list[FileRow] = []
            rows = self._spill.get(rec.files)
            placed = ([(row, posixpath.split(row[0])) for row in rows] if self._settled
                      else self._still_owned(rec.package, rows, folders))
            for row, (parent, name) in placed:
                _, uid, gid, mode, sha1, _ = row
                if parent not in dirs:
                    if parent:
                        continue
                    dirs[""] = idb.IdbDir("")
                dirs[parent].files.append(idb.IdbFile(name, uid, gid, mode, idb.q1(sha1)))
                kept.append(row)
            if settle:
                rec.files = self._spill.put(kept)
            ordered = sorted(dirs.values(), key=lambda d: d.path.split("/") if d.path else [])
            for d in ordered:
                d.files.sort(key=lambda f: f.name.encode())
            yield idb.IdbRecord(rec.package, ordered)

    def owned_files(self) -> Iterator[tuple[Package, list[str]]]:
        """Per installed package, the paths it still owns (what the installed database lists)."""
        folders: dict[str, Node | None] = {}
        for rec in self.installed:
            yield rec.package, [row[0] for row, _ in self._still_owned(rec.package, self._spill.get(rec.files), folders)]

    def _still_owned(self, pkg: Package, rows: list[FileRow],
                     folders: dict[str, Node | None]) -> list[tuple[FileRow, tuple[str, str]]]:
        """(row, its path split) of the `rows` of `pkg` whose paths still hold its entries: the
        path leads to the directory the entry went in, and the tree saw no other put or remove
        it. `folders` remembers each directory's node (the tree holds still meanwhile)."""
        out = []
        for row in rows:
            parent, name = at = posixpath.split(row[0])
            if parent not in folders:
                folders[parent] = self.tree.get(parent, follow=True) if parent else self.tree.root
            folder = folders[parent]
            key = row[5]
            if (folder is not None and isinstance(folder.children, Children) and folder.children.key == key
                    and not self.tree.disowned(key, name, pkg.name)):
                out.append((row, at))
        return out

    def finish(self) -> None:
        """Write the installed database, scripts.tar and triggers, then place `lib/apk`."""
        self.tree.write_file(f"{DB}/installed", idb.render(itertools.chain(self.base_records, self.records(settle=True))))
        self._settled = True
        self.tree.write_file(f"{DB}/scripts.tar", idb.scripts_tar(self._scripts))
        self.tree.write_file(f"{DB}/triggers", idb.triggers(self._triggers))
        resolve_apk_db(self.tree)


_BASIC_PAX = {"path", "linkpath", "size", "uid", "gid", "uname", "gname", "mtime", "atime", "ctime"}


def resolve_apk_db(tree: Tree) -> None:
    """The DB lives in usr/lib/apk; `lib/apk` points there unless /lib already leads to usr/lib."""
    lib = tree.get("lib")
    if lib is not None and lib.type == "sym" and lib.linkname.strip("/") in ("usr/lib",):
        return
    apk = tree.get("lib/apk")
    if apk is not None and apk.type == "sym" and apk.linkname.rstrip("/") in ("../usr/lib/apk", "/usr/lib/apk"):
        return
    if lib is None:
        tree.put("lib", Node("dir", 0o755, children={}))
    if apk is not None and apk.type == "dir" and _empty_dirs_only(apk):
        tree.remove("lib/apk")
    if tree.get("lib/apk") is None:
        parent = tree.get("lib", follow=True)
        # a symlink made by apko takes its parent directory's mtime
        tree.put("lib/apk", Node("sym", 0o777, linkname="../usr/lib/apk", mtime=parent.mtime if parent else 0))


def _empty_dirs_only(node: Node) -> bool:
    stack = [node]
    while stack:
        n = stack.pop()
        if n.type != "dir":
            return False
        stack.extend((n.children or {}).values())
    return True
