"""Installing packages into the root filesystem: idb format, conflicts, ownership, the layer tar."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from distroless.apk import keys, pack
from distroless.apk.model import Package
from distroless.store.expand import expand
from distroless.store.cache import Cache
from distroless.rootfs import idb
from distroless.rootfs.install import FileConflictError, Installer, init_db
from distroless.rootfs.layer import write_rootfs_tar
from distroless.rootfs.tree import Tree
from shared import APK

IDB = APK / "installed-db"


def test_idb_apko_format_byte_identical() -> None:
    text = (IDB / "wolfi-base").read_text()
    assert idb.render(idb.parse(text, "wolfi-base")).decode() == text


@pytest.mark.parametrize("name", ["alpine-style", "redis-operator-compat"])
def test_idb_apk_tools_format_field_for_field(name: str) -> None:
    recs = idb.parse((IDB / name).read_text(), name)
    assert idb.parse(idb.render(recs).decode(), "again") == recs
    assert all(r.package.name and r.package.version and r.package.checksum.startswith("Q1") for r in recs)


def test_scripts_tar_and_triggers_formats() -> None:
    with tarfile.open(IDB / "scripts.tar") as tf:
        names = tf.getnames()
    assert names[0] == "busybox-1.35.0-r17.Q1Meo+LHGPSi3uY9gIouEVb9z8Fbo=.post-install"
    assert idb.triggers([("Q1Meo+LHGPSi3uY9gIouEVb9z8Fbo=", ["/bin", "/usr/bin", "/sbin", "/usr/sbin", "/lib/modules/*"])]) \
        == (IDB / "triggers").read_bytes()


def fixture_rootfs(tmp_path, names: list[str], keep_owners: bool = False) -> tuple[Tree, Installer]:
    cache = Cache(tmp_path / "cache")
    tree = Tree()
    init_db(tree, "x86_64")
    ins = Installer(tree, keep_owners=keep_owners)
    for n in names:
        ins.install(expand(APK / "packages" / n, cache))
    ins.finish()
    return tree, ins


def test_install_real_packages_and_layer(tmp_path) -> None:
    tree, ins = fixture_rootfs(tmp_path, ["alpine-baselayout-3.2.0-r23.aarch64.apk", "hello-wolfi-2.12.1-r0.apk",
                                          "replaces-0.0.1-r0.apk"])
    buf = io.BytesIO()
    diff_id = write_rootfs_tar(tree, buf)
    data = buf.getvalue()
    assert data.endswith(b"\0" * 1024) and len(data) % 512 == 0
    import hashlib
    assert diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        members = {m.name: m for m in tf.getmembers()}
        hello = tf.extractfile("usr/bin/hello").read()
        assert hashlib.sha1(hello).hexdigest() == "5445a8546f7818d0d624f62328bee1c4ffdf0c2d"
    # apko's base layout and device nodes
    assert oct(members["tmp"].mode) == oct(0o1777) and members["dev/console"].ischr()
    assert (members["dev/console"].devmajor, members["dev/console"].devminor) == (5, 1)
    assert members["lib/apk"].issym() and members["lib/apk"].linkname == "../usr/lib/apk"
    # package files are 0:0 in the layer even when the APK says otherwise (replaces: 501:20)
    assert members["hello"].uid == 0 and members["hello"].gid == 0
    assert all(not n.startswith("./") and not n.endswith("/") for n in members)
    assert "APK-TOOLS.checksum.SHA1" not in members["usr/bin/hello"].pax_headers
    # ... while the installed database records the APK headers' owners
    recs = {r.package.name: r for r in idb.parse(tree.get("usr/lib/apk/db/installed").data().decode(), "idb")}
    assert list(recs) == ["alpine-baselayout", "hello-wolfi", "replaces"]
    root_files = next(d for d in recs["replaces"].dirs if d.path == "")
    assert [(f.name, f.uid, f.gid) for f in root_files.files] == [("hello", 501, 20)]
    scripts = tarfile.open(fileobj=io.BytesIO(tree.get("usr/lib/apk/db/scripts.tar").data())).getnames()
    assert scripts == [f"alpine-baselayout-3.2.0-r23.Q1LLq2qDNrS/qRnhxQ3hsY/sHbQnc={s}"
                       for s in (".pre-install", ".pre-upgrade", ".post-upgrade", ".post-install")]


def test_keep_owners_opt_in(tmp_path) -> None:
    tree, _ = fixture_rootfs(tmp_path, ["replaces-0.0.1-r0.apk"], keep_owners=True)
    node = tree.get("hello")
    assert (node.uid, node.gid) == (501, 20)


def _pkg(tmp_path: Path, key, name: str, content: bytes, **meta) -> Path:
    tree = tmp_path / f"t-{name}"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc/shared.conf").write_bytes(content)
    out = tmp_path / f"{name}.apk"
    pack.pack(tree, Package(name=name, version="1-r0", arch="x86_64", **meta), out, signing_key=key)
    return out


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    d = tmp_path_factory.mktemp("k")
    keys.write_keypair(d / "k.rsa", keys.generate(2048))
    return keys.load_private(d / "k.rsa")


def _install(tmp_path, paths: list[Path]) -> Tree:
    cache = Cache(tmp_path / "cache")
    tree = Tree()
    init_db(tree, "x86_64")
    ins = Installer(tree)
    for p in paths:
        ins.install(expand(p, cache))
    ins.finish()
    return tree


def test_conflict_names_both_packages(tmp_path, key) -> None:
    a = _pkg(tmp_path, key, "alpha", b"a\n")
    b = _pkg(tmp_path, key, "beta", b"b\n")
    with pytest.raises(FileConflictError, match=r"beta-1-r0: /etc/shared.conf: conflicts with the same file from alpha-1-r0"):
        _install(tmp_path, [a, b])


def test_conflict_resolution_rules(tmp_path, key) -> None:
    same = [_pkg(tmp_path, key, "alpha", b"x\n"), _pkg(tmp_path, key, "beta", b"x\n")]
    tree = _install(tmp_path, same)  # identical content: no conflict, the first file and owner kept
    node = tree.get("etc/shared.conf")
    assert node.data() == b"x\n" and node.package == "alpha"
    recs = idb.parse(tree.get("usr/lib/apk/db/installed").data().decode(), "idb")
    assert {r.package.name: [f.name for d in r.dirs for f in d.files] for r in recs} == \
        {"alpha": ["shared.conf"], "beta": []}
    rep = [_pkg(tmp_path, key, "gamma", b"g\n"), _pkg(tmp_path, key, "delta", b"d\n", replaces=["gamma"])]
    tree = _install(tmp_path, rep)
    assert tree.get("etc/shared.conf").data() == b"d\n"
    recs = idb.parse(tree.get("usr/lib/apk/db/installed").data().decode(), "idb")
    owners = {r.package.name: [f.name for d in r.dirs for f in d.files] for r in recs}
    assert owners == {"gamma": [], "delta": ["shared.conf"]}, "overwritten files leave the earlier record"
    origin = [_pkg(tmp_path, key, "eps", b"e\n", origin="o"), _pkg(tmp_path, key, "zeta", b"z\n", origin="o")]
    assert _install(tmp_path, origin).get("etc/shared.conf").data() == b"z\n"


def test_tree_walk_5000_deep_and_symlink_loops() -> None:
    """Graph walks over a package's tree are iterative; a symlink loop resolves to nothing."""
    t = Tree()
    path = "/".join(f"d{i}" for i in range(5000))
    t.mkdir_all(path, 0o755)
    t.write_file(path + "/f", b"x")
    walked = [p for p, _ in t.walk()]
    assert len(walked) == 5001 and walked[-1] == path + "/f"
    from distroless.rootfs.tree import Node
    t.put("a", Node("sym", 0o777, linkname="b"))
    t.put("b", Node("sym", 0o777, linkname="a"))
    assert t.get("a", follow=True) is None and t.get("a").linkname == "b"
    from distroless.rootfs.install import _empty_dirs_only
    assert _empty_dirs_only(t.get("d0")) is False
