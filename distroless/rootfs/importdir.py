"""A directory on disk → an in-memory tree whose files reference the disk (nothing is copied).

Used to turn prepared root filesystems (the frontend image's Debian base, a Python site
directory) into layers with the same tar writer as everything else.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from distroless.rootfs.tree import Node, TarRef, Tree


def _sha1(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def import_dir(src: Path, tree: Tree | None = None, *, prefix: str = "", mtime: int | None = None,
               root_owner: bool = True) -> Tree:
    """Add everything under `src` to `tree` at `prefix`. `mtime` (when given) replaces every
    timestamp, and `root_owner` makes everything 0:0, so the layer does not depend on when or by
    whom the directory was made."""
    tree = tree or Tree()
    seen: dict[tuple[int, int], str] = {}
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, src)
        for name in sorted(dirnames) + sorted(filenames):
            full = Path(dirpath) / name
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            path = f"{prefix.strip('/')}/{rel}" if prefix.strip("/") else rel
            st = full.lstat()
            uid, gid = (0, 0) if root_owner else (st.st_uid, st.st_gid)
            when = int(st.st_mtime) if mtime is None else mtime
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISDIR(st.st_mode):
                node = tree.get(path)
                if node is None or node.type != "dir":
                    tree.put(path, Node("dir", mode, uid=uid, gid=gid, mtime=when, children={}))
            elif stat.S_ISLNK(st.st_mode):
                tree.put(path, Node("sym", 0o777, uid=uid, gid=gid, mtime=when, linkname=os.readlink(full)))
            elif stat.S_ISREG(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in seen:
                    target = tree.get(seen[key])
                    tree.put(path, Node("lnk", mode, uid=uid, gid=gid, mtime=when, linkname=seen[key], target=target,
                                        size=target.size if target else 0, sha1=target.sha1 if target else ""))
                    continue
                seen[key] = path
                tree.put(path, Node("reg", mode, uid=uid, gid=gid, mtime=when, size=st.st_size,
                                    content=TarRef(full, 0, st.st_size), sha1=_sha1(full)))
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                tree.put(path, Node("chr" if stat.S_ISCHR(st.st_mode) else "blk", mode, uid=uid, gid=gid, mtime=when,
                                    devmajor=os.major(st.st_rdev), devminor=os.minor(st.st_rdev)))
            elif stat.S_ISFIFO(st.st_mode):
                tree.put(path, Node("fifo", mode, uid=uid, gid=gid, mtime=when))
    return tree
