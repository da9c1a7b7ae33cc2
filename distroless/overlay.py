"""The metadata layer for layer-per-package builds (BuildKit MergeOp, Bazel per-package layers).

When each package's data tar is unpacked as its own layer and the layers are stacked in install
order, the result differs from the engine's root filesystem only where apko changes things:
generated files (installed database, world, passwd, apko.json, device nodes, …), files a
conflict rule kept from an earlier package, owners forced to 0:0, and post-install mutations.
`metadata_entries` returns exactly those nodes — plus every directory, re-asserted with the
engine's metadata so that directory modes and mtimes never depend on layer order — as one more
layer placed last.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from distroless.store.expand import Expanded
from distroless.rootfs.tree import Node, Tree


@dataclass(frozen=True, slots=True)
class Attr:
    type: str
    mode: int
    uid: int
    gid: int
    mtime: int
    ident: str  # content SHA-1, link target or device numbers


def stacked_view(expanded: list[Expanded]) -> dict[str, Attr]:
    """What stacking the packages' own data tars (later wins) puts at each path."""
    view: dict[str, Attr] = {}
    for exp in expanded:
        for e in exp.apk.entries:
            if e.type == "lnk":
                target = view.get(e.linkname)
                ident = target.ident if target else ""
                kind = "reg"
            else:
                ident = {"reg": e.sha1, "sym": e.linkname}.get(e.type, f"{e.devmajor}:{e.devminor}")
                kind = e.type
            view[e.name] = Attr(kind, e.mode & 0o7777, e.uid, e.gid, e.mtime, ident)
    return view


def _attr(node: Node) -> Attr:
    kind = "reg" if node.type == "lnk" else node.type
    ident = {"reg": node.sha1, "lnk": node.sha1, "sym": node.linkname}.get(node.type, f"{node.devmajor}:{node.devminor}")
    return Attr(kind, node.mode & 0o7777, node.uid, node.gid, node.mtime, ident)


def metadata_entries(tree: Tree, expanded: list[Expanded]) -> list[tuple[str, Node]]:
    """Walk-ordered (path, node) pairs of the metadata layer."""
    view = stacked_view(expanded)
    wanted: set[str] = set()
    for path, node in tree.walk():
        if node.type == "dir":
            wanted.add(path)
        elif view.get(path) != _attr(node):
            wanted.add(path)
            parent = posixpath.dirname(path)
            while parent and parent not in wanted:
                wanted.add(parent)
                parent = posixpath.dirname(parent)
    out = []
    for path, node in tree.walk():  # again, now that every wanted parent is known
        if path in wanted:
            if node.type == "lnk":
                # a hard link into a package layer cannot point across layers: carry the bytes
                assert node.target is not None
                node = Node("reg", node.mode, uid=node.uid, gid=node.gid, mtime=node.mtime,
                            size=node.target.size, content=node.target.content, sha1=node.target.sha1)
            out.append((path, node))
    return out
