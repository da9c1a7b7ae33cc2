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


def _write_content(node: Node, dest: Path) -> None:
    content = node.content
    with open(dest, "wb") as out:
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


def export_tree(tree: Tree, dest: str | os.PathLike[str], *, chown: bool | None = None) -> Path:
    """Write `tree` under `dest` (created; must be empty or absent). Returns `dest`."""
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise ExportError(f"{root}: export target is not empty")
    chown = os.geteuid() == 0 if chown is None else chown
    dirs: list[tuple[Path, Node]] = []
    for rel, node in tree.walk():
        path = root / rel
        if node.type == "dir":
            path.mkdir()
            dirs.append((path, node))  # modes and times after the children are written
        elif node.type == "reg":
            _write_content(node, path)
            os.chmod(path, node.mode)
            _owner(path, node, chown)
            os.utime(path, (node.mtime, node.mtime))
        elif node.type == "sym":
            os.symlink(node.linkname, path)
            _owner(path, node, chown)
            os.utime(path, (node.mtime, node.mtime), follow_symlinks=False)
        elif node.type == "lnk":
            target = root / node.linkname.lstrip("/")
            if not target.exists():
                raise ExportError(f"/{rel}: hard link to missing /{node.linkname}")
            os.link(target, path)
        elif node.type == "fifo":
            os.mkfifo(path, node.mode)
            _owner(path, node, chown)
        # chr/blk: skipped on purpose (see module docstring)
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
