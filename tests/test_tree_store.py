"""The tree keeps installed leaves in its SQLite store once its in-memory allowance is spent, so
memory does not grow with the file count; `get`, `peek`, `walk`, `place`, `put` and `remove`
behave as one tree across memory and store. Most tests here allow no leaf in memory."""

from __future__ import annotations

import gc
import io
import os
import tarfile
import tracemalloc
from pathlib import Path

import pytest

from distroless.apk import keys, pack
from distroless.apk.model import Package
from distroless.rootfs.export import export_tree
from distroless.rootfs.install import Installer, init_db
from distroless.rootfs.layer import write_rootfs_tar
from distroless.rootfs.tree import Children, Node, TarRef, Tree
from distroless.store.cache import Cache
from distroless.store.expand import expand


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    d = tmp_path_factory.mktemp("k")
    keys.write_keypair(d / "k.rsa", keys.generate(2048))
    return keys.load_private(d / "k.rsa")


def _package(tmp_path: Path, key, name: str, files: int, hard_link: bool = False) -> Path:
    root = tmp_path / f"tree-{name}"
    for i in range(files):
        f = root / "usr/share" / name / f"doc{i:05}.txt"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(f"{name} {i}\n".encode())
    if hard_link:
        os.link(root / "usr/share" / name / "doc00000.txt", root / "usr/share" / name / "same.txt")
    out = tmp_path / f"{name}.apk"
    pack.pack(root, Package(name=name, version="1-r0", arch="x86_64"), out, signing_key=key)
    return out


def _children(tree: Tree, path: str) -> Children:
    node = tree.get(path)
    assert node is not None and isinstance(node.children, Children)
    return node.children


def test_installed_files_are_rows_not_objects(tmp_path, key) -> None:
    """2,000 more installed files leave (almost) nothing on Python's heap: ~340 B each before.
    (The store's own fixed costs, such as its Bloom filter, come with the first package.)"""
    cache = Cache(tmp_path / "cache")
    first, more = (expand(_package(tmp_path, key, name, 2000), cache) for name in ("first", "more"))
    tree = Tree(memory_leaves=0)
    ins = Installer(tree)
    ins.install(first)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        ins.install(more)
        del more
        children = _children(tree, "usr/share/more")
        assert len(children) == 2000 and not children._hot  # the rows are all written now
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024, f"the tree kept {grown} bytes of Python objects for 2,000 files"
    node = tree.peek("usr/share/more/doc01999.txt")
    assert node is not None and node.data() == b"more 1999\n" and node.package == "more"


def test_get_keeps_changes_peek_does_not(tmp_path, key) -> None:
    tree = Tree(memory_leaves=0)
    ins = Installer(tree)
    ins.install(expand(_package(tmp_path, key, "p", 3), Cache(tmp_path / "cache")))
    children = _children(tree, "usr/share/p")
    peeked = tree.peek("usr/share/p/doc00001.txt")
    assert peeked is not None and not children._hot
    peeked.mode = 0o600
    assert tree.peek("usr/share/p/doc00001.txt").mode == 0o644, "a peeked copy is not the tree's node"
    held = tree.get("usr/share/p/doc00001.txt")
    assert held is not None and list(children._hot) == ["doc00001.txt"]
    held.mode = 0o600
    assert tree.get("usr/share/p/doc00001.txt") is held
    assert dict((p, n.mode) for p, n in tree.walk())["usr/share/p/doc00001.txt"] == 0o600
    assert len(children) == 3 and sorted(children) == ["doc00000.txt", "doc00001.txt", "doc00002.txt"]


def _place(tree: Tree, path: str, node: Node) -> None:
    children, name = tree.slot(path)
    children.place(name, node)


def _leaf(tar: Path, size: int = 1, package: str = "pkg") -> Node:
    return Node("reg", 0o644, size=size, content=TarRef(tar, 0, size), sha1="00" * 20, package=package)


def test_walk_merges_memory_and_store_in_byte_order(tmp_path) -> None:
    tar = tmp_path / "data.tar"
    tar.write_bytes(b"x")
    tree = Tree(memory_leaves=0)
    stored = ["b", "\u00e4", "a\udcff", "B", "zz"]  # ä is 0xC3 0xA4; the surrogate escapes byte 0xFF
    for name in stored:
        _place(tree, f"d/{name}", _leaf(tar))
    tree.write_file("d/a", b"generated")
    tree.mkdir_all("d/c", 0o755)
    tree.write_file("d/c/inner", b"")
    tree.put("d/y", Node("sym", 0o777, linkname="zz"))
    names = [p for p, _ in tree.walk()]
    expected = sorted(["d/" + n for n in stored + ["a", "c", "y"]] + ["d/c/inner"],
                      key=lambda p: p.encode("utf-8", "surrogateescape"))
    assert names == ["d", *expected]
    assert not _children(tree, "d")._hot.keys() & set(stored), "placed leaves stay in the store"


def test_replace_and_remove_across_memory_and_store(tmp_path) -> None:
    tar = tmp_path / "data.tar"
    tar.write_bytes(b"xy")
    tree = Tree(memory_leaves=0)
    _place(tree, "etc/f", _leaf(tar))
    generated = tree.write_file("etc/f", b"mine")  # a generated file replaces a stored one
    children = _children(tree, "etc")
    assert len(children) == 1 and tree.get("etc/f") is generated
    _place(tree, "etc/f", _leaf(tar, 2, "other"))  # and a package's leaf replaces it again
    assert len(children) == 1 and not children._hot and tree.peek("etc/f").data() == b"xy"
    tree.remove("etc/f")
    assert tree.peek("etc/f") is None and "f" not in children and len(children) == 0
    with pytest.raises(KeyError):
        del children["f"]
    _place(tree, "etc/g", _leaf(tar))
    del children["g"]
    assert list(children) == []


def test_leaves_that_stay_in_memory(tmp_path) -> None:
    """xattrs, generated bytes and directories are never stored; neither is a hard link's target."""
    tar = tmp_path / "data.tar"
    tar.write_bytes(b"x")
    tree = Tree(memory_leaves=0)
    _place(tree, "bin/ping", Node("reg", 0o755, size=1, content=TarRef(tar, 0, 1), xattrs={"security.capability": b"\x01"}))
    _place(tree, "etc/motd", Node("reg", 0o644, size=2, content=b"hi"))
    assert set(_children(tree, "bin")._hot) == {"ping"} and set(_children(tree, "etc")._hot) == {"motd"}


def test_hard_links_survive_the_store(tmp_path, key) -> None:
    """The target is brought into memory (and marked) so the layer and the export can name it."""
    tree = Tree(memory_leaves=0)
    init_db(tree, "x86_64")
    ins = Installer(tree)
    ins.install(expand(_package(tmp_path, key, "h", 2, hard_link=True), Cache(tmp_path / "cache")))
    ins.finish()
    target = tree.get("usr/share/h/doc00000.txt")
    assert target is not None and target.linked and set(_children(tree, "usr/share/h")._hot) == {"doc00000.txt", "same.txt"}
    buf = io.BytesIO()
    write_rootfs_tar(tree, buf)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tf:
        link = tf.getmember("usr/share/h/same.txt")
        assert link.islnk() and link.linkname == "usr/share/h/doc00000.txt"
        assert tf.getmember("usr/share/h/doc00001.txt").isreg()
    out = export_tree(tree, tmp_path / "out", chown=False)
    assert os.stat(out / "usr/share/h/same.txt").st_ino == os.stat(out / "usr/share/h/doc00000.txt").st_ino
    assert os.stat(out / "usr/share/h/doc00001.txt").st_nlink == 1


def test_what_a_package_still_owns_after_the_tree_changes(tmp_path, key) -> None:
    """Ownership is decided without a lookup per file: every put, place and remove that
    displaces a package's entry is remembered, and so is the directory each entry went in."""
    cache = Cache(tmp_path / "cache")
    tree = Tree(memory_leaves=0)
    ins = Installer(tree)
    ins.install(expand(_package(tmp_path, key, "a", 6), cache))
    tree.write_file("usr/share/a/doc00000.txt", b"generated")
    tree.remove("usr/share/a/doc00001.txt")
    tree.put("usr/share/a/doc00002.txt", Node("sym", 0o777, linkname="doc00003.txt", package="a"))
    tree.get("usr/share/a/doc00003.txt").mode = 0o600  # in memory now, still the package's
    children, name = tree.slot("usr/share/a/doc00004.txt")
    children.place(name, _leaf(tmp_path / "x.tar", package="someone-else"))
    owned = next(p for _, p in ins.owned_files())
    assert owned == ["usr/share/a/doc00002.txt", "usr/share/a/doc00003.txt", "usr/share/a/doc00005.txt"]
    records = list(ins.records())
    assert [f.name for d in records[0].dirs for f in d.files] == ["doc00002.txt", "doc00003.txt", "doc00005.txt"]
    tree.put("usr/share/a", Node("sym", 0o777, linkname="/etc"))  # the directory itself goes
    tree.mkdir_all("etc", 0o755)
    assert next(p for _, p in ins.owned_files()) == []


def test_the_first_leaves_stay_in_memory(tmp_path, key) -> None:
    """A small image never touches the store; past the allowance the rest go there, and the tree
    reads the same either way."""
    apk = _package(tmp_path, key, "m", 40)
    cache = Cache(tmp_path / "cache")
    trees = {}
    for allowance in (100, 25, 0):
        tree = Tree(memory_leaves=allowance)
        Installer(tree).install(expand(apk, cache))
        children = _children(tree, "usr/share/m")
        assert len(children._hot) == min(allowance, 40) and len(children) == 40
        assert (tree._store is None) == (allowance >= 40), "no database until a leaf is stored"
        trees[allowance] = [(p, n.type, n.mode, n.size, n.sha1, n.package, n.data() if n.type == "reg" else b"")
                            for p, n in tree.walk()]
    assert trees[100] == trees[25] == trees[0]


def test_a_bloom_filter_that_always_says_maybe_changes_nothing(tmp_path, key, monkeypatch) -> None:
    """Every name then costs a query (the filter's false "maybe"), and the tree is the same."""
    from distroless.rootfs import leaves

    apk = _package(tmp_path, key, "b", 30)
    cache = Cache(tmp_path / "cache")
    walks = []
    for mask in (leaves._MASK, 0):
        monkeypatch.setattr(leaves, "_MASK", mask)
        tree = Tree(memory_leaves=0)
        ins = Installer(tree)
        ins.install(expand(apk, cache))
        children, name = tree.slot("usr/share/b/doc00007.txt")
        assert not children.add(name, _leaf(tmp_path / "x.tar", package="other")), "a taken name stays taken"
        walks.append([(p, n.sha1, n.package) for p, n in tree.walk()])
        if mask == 0:  # the filter really did collapse to one bit
            assert tree._leaves._bloom[0] == 1 and not any(tree._leaves._bloom[1:])
    assert walks[0] == walks[1] and len(walks[0]) == 3 + 30
