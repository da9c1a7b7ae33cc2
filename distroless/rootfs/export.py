"""Materialise an in-memory root filesystem tree as a real directory (for a sandbox to bind as /).

Modes, symlinks, hard links, owners (when running as root) and mtimes are kept. Device nodes
are skipped: sandboxes provide their own `/dev` (bubblewrap `--dev`, Docker's devtmpfs).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from distroless.errors import DistrolessError
from distroless.rootfs.tree import Node, TarRef, Tree

_CHUNK = 1 << 20


class ExportError(DistrolessError):
    pass


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _write_content(node: Node, dest: Path) -> None:
    # O_EXCL|O_NOFOLLOW: a new file at exactly this name, never through a link placed there.
    content = node.content
    with os.fdopen(os.open(dest, _CREATE, 0o600), "wb") as out:
        if isinstance(content, TarRef):
            with open(content.path, "rb") as src:
                src.seek(content.offset)
                left = content.size
                while left:
                    chunk = src.read(min(_CHUNK, left))
                    if not chunk:
                        raise ExportError(f"/{dest}: {content.path} ended early")
                    out.write(chunk)
                    left -= len(chunk)
        else:
            out.write(content or b"")


def _owner(path: Path, node: Node, chown: bool) -> None:
    if chown:
        os.chown(path, node.uid, node.gid, follow_symlinks=False)


def _regular(path: Path, node: Node, chown: bool) -> None:
    _write_content(node, path)
    os.chmod(path, node.mode)  # the regular file just created: no link to follow
    _owner(path, node, chown)
    os.utime(path, (node.mtime, node.mtime), follow_symlinks=False)


def export_tree(tree: Tree, dest: str | os.PathLike[str], *, chown: bool | None = None) -> Path:
    """Write `tree` under `dest` (created; must be empty or absent). Returns `dest`.

    Nothing is resolved through the exported files: the tree's paths name real directories this
    function created (no `..`, parents before children), symlinks are written but never
    followed, and a hard link is made to the exported file of its target *node*, never to its
    link name (which may pass through a symlink that points out of the tree)."""
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise ExportError(f"{root}: export target is not empty")
    chown = os.geteuid() == 0 if chown is None else chown
    dirs: list[tuple[Path, Node]] = []
    written: dict[int, Path] = {}  # hard-link target node -> where it was exported
    links: list[tuple[str, Node]] = []
    for rel, node in tree.walk():
        if any(part in ("", ".", "..") for part in rel.split("/")):
            raise ExportError(f"/{rel}: not a plain path inside the tree")
        path = root / rel
        if node.type == "dir":
            path.mkdir()
            dirs.append((path, node))  # modes and times after the children are written
        elif node.type == "reg":
            _regular(path, node, chown)
            if node.linked:
                written.setdefault(id(node), path)
        elif node.type == "sym":
            os.symlink(node.linkname, path)
            _owner(path, node, chown)
            os.utime(path, (node.mtime, node.mtime), follow_symlinks=False)
        elif node.type == "lnk":
            links.append((rel, node))  # after every regular file exists
        elif node.type == "fifo":
            os.mkfifo(path, node.mode)
            _owner(path, node, chown)
        # chr/blk: skipped on purpose (see module docstring)
    for rel, node in links:
        target = node.target
        if target is None or target.type != "reg":
            raise ExportError(f"/{rel}: hard link to missing /{node.linkname}")
        source = written.get(id(target))
        if source is None:  # the target was replaced in the tree since: keep the contents
            _regular(root / rel, target, chown)
        else:
            os.link(source, root / rel, follow_symlinks=False)
    for path, node in reversed(dirs):
        os.chmod(path, node.mode)
        _owner(path, node, chown)
        os.utime(path, (node.mtime, node.mtime))
    os.chmod(root, tree.root.mode)
    return root


def remove_tree(path: str | os.PathLike[str]) -> None:
    """Remove an exported tree, even where modes deny writes to directories."""
    def fix(func, p, _exc):  # type: ignore[no-untyped-def]
        os.chmod(os.path.dirname(p), 0o700)
        func(p)
    if os.path.lexists(path):
        shutil.rmtree(path, onerror=fix)
