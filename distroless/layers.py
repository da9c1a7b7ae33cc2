"""Split an assembled root filesystem into layers.

- single layer: the whole tree (apko's default);
- `origin` (apko.md §3.3): packages grouped by origin (groups joined through `replaces`), sized
  by installed size, the `budget - 1` largest kept and the rest merged; each package file goes
  to its group's layer with the parent directories it needs, everything else (directories,
  devices, generated files, the full installed database) to a final top layer, and each group
  layer carries the installed-database records of its own packages;
- `package` (ours): one layer per package, so images that share packages share layers.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, replace

from distroless.apk.model import Package
from distroless.apk.version import matches
from distroless.rootfs import idb
from distroless.rootfs.install import DB, Installer
from distroless.rootfs.tree import Node, Tree

IDB_PATH = f"{DB}/installed"
_ATOM = re.compile(r"^([^<>=~]+)(?:([<>=~]+)(.+))?$")


@dataclass(frozen=True, slots=True)
class Group:
    packages: tuple[str, ...]  # sorted by name
    size: int


def _replaced(pkg: Package, by_name: dict[str, Package]) -> list[str]:
    """Names in `pkg.replaces` whose installed version satisfies the constraint."""
    out = []
    for r in pkg.replaces:
        m = _ATOM.match(r)
        if not m or m.group(1) not in by_name:
            continue
        name, op, ver = m.groups()
        if op and not matches(op, by_name[name].version, ver):
            continue
        out.append(name)
    return out


def origin_groups(packages: list[Package], budget: int) -> list[Group]:
    by_name = {p.name: p for p in packages}
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    def origin(p: Package) -> str:
        return p.origin or p.name

    for p in packages:
        find(origin(p))
        for r in _replaced(p, by_name):
            a, b = find(origin(p)), find(origin(by_name[r]))
            if a != b:
                parent[b] = a
    members: dict[str, list[Package]] = {}
    for p in packages:
        members.setdefault(find(origin(p)), []).append(p)
    groups = [Group(tuple(sorted(p.name for p in ms)), sum(p.installed_size for p in ms)) for ms in members.values()]
    groups.sort(key=lambda g: (-g.size, max(g.packages)))
    if budget > 0 and len(groups) > budget - 1:
        keep, rest = groups[: max(budget - 1, 0)], groups[max(budget - 1, 0):]
        if rest:
            merged = tuple(sorted(n for g in rest for n in g.packages))
            keep.append(Group(merged, sum(g.size for g in rest)))
        groups = keep
    return groups


def package_groups(packages: list[Package]) -> list[Group]:
    return [Group((p.name,), p.installed_size) for p in packages]


def split(tree: Tree, installer: Installer, groups: list[Group]) -> list[list[tuple[str, Node]]]:
    """Layers for `groups` (in order) plus the top layer, each a list of (path, node) in walk order."""
    group_of = {name: i for i, g in enumerate(groups) for name in g.packages}
    layers: list[list[tuple[str, Node]]] = [[] for _ in groups]
    have_dirs: list[set[str]] = [set() for _ in groups]
    top: list[tuple[str, Node]] = []
    records = {r.package.name: r for r in installer.records()}
    placed: dict[int, int] = {}  # id(node) → layer of a hard link's target
    for path, node in tree.walk():
        i = group_of.get(node.package) if node.type in ("reg", "sym", "lnk") and node.package else None
        if i is None:
            top.append((path, node))
            if path == IDB_PATH:
                for j, g in enumerate(groups):
                    recs = [records[n] for n in _install_order(installer, g) if n in records]
                    part = idb.render(recs)
                    _add_parents(tree, layers[j], have_dirs[j], path, node.mtime)
                    layers[j].append((path, replace(node, content=part, size=len(part), package="")))
            continue
        if node.type == "lnk" and placed.get(id(node.target)) != i:
            # a hard link whose target lives in another layer must carry its own bytes
            assert node.target is not None
            node = replace(node, type="reg", linkname="", content=node.target.content, size=node.target.size)
        if node.type == "reg" and node.linked:
            placed[id(node)] = i
        _add_parents(tree, layers[i], have_dirs[i], path, node.mtime)
        layers[i].append((path, node))
    return [*layers, top]


def _install_order(installer: Installer, g: Group) -> list[str]:
    names = set(g.packages)
    return [r.package.name for r in installer.installed if r.package.name in names]


def _add_parents(tree: Tree, layer: list[tuple[str, Node]], have: set[str], path: str, mtime: int) -> None:
    """Missing parent directories, stamped with the triggering file's mtime (so identical
    package layers dedupe across images)."""
    parents = []
    d = posixpath.dirname(path)
    while d and d not in have:
        parents.append(d)
        d = posixpath.dirname(d)
    for p in reversed(parents):
        node = tree.get(p)
        assert node is not None
        layer.append((p, replace(node, mtime=mtime, children=None)))
        have.add(p)
