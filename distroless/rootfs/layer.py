"""The layer tar of a root filesystem, in apko's byte layout (apko.md §3.1).

Pre-order walk with bytewise-sorted children, relative names without `./` or trailing `/`, Go
`FileInfoHeader` semantics, owner names looked up in the image's own passwd and group, no APK
checksum records, xattrs as `SCHILY.xattr.*` on files and directories only, and two zero blocks
at the end with no record padding.
"""

from __future__ import annotations

import hashlib
import os
from typing import BinaryIO, Callable, Iterable, Iterator

from distroless.oci.gzip import FileSpan
from distroless.rootfs.tree import Node, TarRef, Tree
from distroless.tarball import (BLKTYPE, CHRTYPE, DIRTYPE, END_OF_ARCHIVE, FIFOTYPE, LNKTYPE, REGTYPE, SYMTYPE,
                                Header, encode_header, padding)

_TYPES = {"dir": DIRTYPE, "reg": REGTYPE, "sym": SYMTYPE, "lnk": LNKTYPE, "chr": CHRTYPE, "blk": BLKTYPE,
          "fifo": FIFOTYPE}
_CHUNK = 1 << 20


def id_names(text: str) -> dict[int, str]:
    """`name:x:id:…` lines of passwd or group → id → first name."""
    out: dict[int, str] = {}
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) >= 3 and parts[2].isdigit():
            out.setdefault(int(parts[2]), parts[0])
    return out


def owner_names(tree: Tree) -> tuple[dict[int, str], dict[int, str]]:
    def read(path: str) -> str:
        node = tree.get(path, follow=True)
        return node.data().decode("utf-8", "replace") if node is not None and node.type == "reg" else ""
    return id_names(read("etc/passwd")), id_names(read("etc/group"))


class _Contents:
    """Where file contents are: spans of expanded package tars, whose descriptors stay open."""

    def __init__(self) -> None:
        self._fds: dict[str, tuple[int, int]] = {}  # path → (descriptor, size when opened)

    def pieces(self, node: Node) -> Iterable[bytes | FileSpan]:
        content = node.content
        if not isinstance(content, TarRef):
            yield content or b""
            return
        key = str(content.path)
        opened = self._fds.get(key)
        if opened is None:
            fd = os.open(key, os.O_RDONLY)
            opened = self._fds[key] = (fd, os.fstat(fd).st_size)
        fd, size = opened
        # a tar that shrinks later is caught by the compressor's reads ("a file ends before…")
        if size < content.offset + content.size:
            raise OSError(f"{key}: ends before the file at offset {content.offset} does")
        yield FileSpan(fd, content.offset, content.size)

    def close(self) -> None:
        for fd, _ in self._fds.values():
            os.close(fd)
        self._fds.clear()


def header(path: str, node: Node, users: dict[int, str], groups: dict[int, str]) -> Header:
    h = Header(path, type=_TYPES[node.type], mode=node.mode, uid=node.uid, gid=node.gid, mtime=node.mtime,
               uname=users.get(node.uid, ""), gname=groups.get(node.gid, ""))
    if node.type == "reg":
        h.size = node.size
    elif node.type in ("sym", "lnk"):
        h.linkname = node.linkname
    elif node.type in ("chr", "blk"):
        h.devmajor, h.devminor = node.devmajor, node.devminor
    if node.xattrs and node.type in ("reg", "dir"):
        h.pax = {f"SCHILY.xattr.{k}": v for k, v in sorted(node.xattrs.items())}
    return h


def _link_entry(path: str, node: Node, written: dict[int, str]) -> Node:
    """What a hard link becomes in the tar: a link naming the real in-image path of its target
    when that target is an earlier entry of this tar, else a copy of the target as a regular
    file (a link's tar name as packaged may pass through symlinks, or precede its target)."""
    target = node.target
    if target is None or target.type != "reg":
        raise OSError(f"/{path}: hard link without a regular-file target in the image")
    earlier = written.get(id(target))
    if earlier is not None:
        return Node("lnk", node.mode, uid=node.uid, gid=node.gid, mtime=node.mtime, linkname=earlier,
                    target=target, xattrs=node.xattrs)
    written[id(target)] = path
    return Node("reg", node.mode, uid=node.uid, gid=node.gid, mtime=node.mtime, size=target.size,
                content=target.content, sha1=target.sha1, xattrs=node.xattrs)


def iter_tar_pieces(entries: Iterable[tuple[str, Node]], users: dict[int, str],
                    groups: dict[int, str]) -> Iterator[bytes | FileSpan]:
    """The tar of `entries` as headers, padding and end blocks (bytes) and file contents as
    spans of the expanded package tars (read in place by the compressor); a span's descriptor
    is open until the generator finishes."""
    contents = _Contents()
    seen: dict[int, str] = {}  # hard-link target node -> its path in this tar
    try:
        for path, node in entries:
            if ".." in path.split("/") or path.startswith("/"):
                raise OSError(f"{path}: a layer entry must be a relative path inside the root")
            if node.type == "lnk":
                node = _link_entry(path, node, seen)
            elif node.type == "reg" and node.linked:
                seen.setdefault(id(node), path)
            yield encode_header(header(path, node, users, groups))
            if node.type == "reg":
                written = 0
                for piece in contents.pieces(node):
                    written += len(piece) if isinstance(piece, bytes) else piece.size
                    yield piece
                if written != node.size:
                    raise OSError(f"/{path}: expected {node.size} bytes of content, read {written}")
                yield padding(written)
        yield END_OF_ARCHIVE
    finally:
        contents.close()


def iter_tar(entries: Iterable[tuple[str, Node]], users: dict[int, str], groups: dict[int, str]) -> Iterator[bytes]:
    """The tar of `entries` as a stream of chunks (headers, contents, padding, end blocks)."""
    for piece in iter_tar_pieces(entries, users, groups):
        if isinstance(piece, bytes):
            yield piece
            continue
        pos, left = piece.offset, piece.size
        while left:
            data = os.pread(piece.fd, min(left, _CHUNK), pos)
            if not data:
                raise OSError(f"a package tar ends before offset {pos + left}")
            pos += len(data)
            left -= len(data)
            yield data


def write_tar(entries: Iterable[tuple[str, Node]], out: Callable[[bytes], object], users: dict[int, str],
              groups: dict[int, str]) -> str:
    """Write the tar of `entries` through `out`; returns the diff_id (sha256 of the tar)."""
    digest = hashlib.sha256()
    for chunk in iter_tar(entries, users, groups):
        digest.update(chunk)
        out(chunk)
    return "sha256:" + digest.hexdigest()


def write_rootfs_tar(tree: Tree, out: BinaryIO) -> str:
    users, groups = owner_names(tree)
    return write_tar(tree.walk(), out.write, users, groups)
