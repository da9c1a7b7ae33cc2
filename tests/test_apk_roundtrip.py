"""Writer → reader → index writer → index reader, signed, byte-reproducible."""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from distroless.apk import index, keys, pack, package, resign
from distroless.apk.gzmember import inflate_members
from distroless.apk.model import Package
from distroless.errors import VerificationError


@pytest.fixture(scope="module")
def key(tmp_path_factory) -> keys.SigningKey:
    d = tmp_path_factory.mktemp("key")
    keys.write_keypair(d / "test.rsa", keys.generate(2048))
    return keys.load_private(d / "test.rsa")


def make_tree(root: Path, mtime: int) -> Path:
    (root / "usr/bin").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "usr/bin/hello").write_bytes(b"#!/bin/sh\necho hello\n")
    (root / "usr/bin/hello").chmod(0o4755)
    (root / "etc/big").write_bytes(os.urandom(0) + bytes(range(256)) * 5000)
    (root / "usr/bin/hi").symlink_to("hello")
    os.link(root / "etc/big", root / "etc/big.link")
    deep = root / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    (deep / "long-name-file").write_text("x")
    for p in [root, *root.rglob("*")]:
        os.utime(p, (mtime, mtime), follow_symlinks=False)
    return root


META = Package(name="hello", version="1.2.3-r4", arch="x86_64", description="test", license="MIT",
               depends=["so:libc.musl-x86_64.so.1", "busybox"], provides=["cmd:hello=1.2.3-r4"])


def test_roundtrip_signed(tmp_path, key) -> None:
    tree = make_tree(tmp_path / "tree", 1234)
    out = tmp_path / "hello.apk"
    built = pack.pack(tree, META, out, signing_key=key, scripts={".post-install": b"#!/bin/sh\n"},
                      source_date_epoch=1700000000)
    ring = keys.Keyring({"test.rsa.pub": key.key.public_key()})
    apk = package.read(out, keyring=ring, require_signature=True, expected_checksum=built.checksum,
                       expected_sha256=built.sha256)
    assert apk.verified_by == ["test.rsa.pub"]
    assert apk.package.depends == sorted(META.depends)
    assert apk.package.build_time == 1700000000
    names = [e.name for e in apk.entries]
    assert names[:2] == ["d" * 60, "d" * 60 + "/" + "e" * 60]
    assert names.index("etc/big") < names.index("etc/big.link") < names.index("usr")
    by = {e.name: e for e in apk.entries}
    assert by["usr/bin/hello"].mode == 0o4755 and by["usr/bin/hello"].uid == 0
    assert by["etc/big.link"].type == "lnk" and by["etc/big.link"].linkname == "etc/big"
    assert by["usr/bin/hi"].type == "sym" and by["usr/bin/hi"].sha1
    assert all(e.mtime == 1700000000 for e in apk.entries)
    assert [e.name for e, _ in apk.scripts] == [".post-install"]

    # Member framing (melange.md §9): three members; control and signature tars have no end blocks.
    members = inflate_members(out.read_bytes(), "x", 1 << 30)
    assert len(members) == 3
    for _, tar in members[:2]:
        assert not tar.endswith(b"\0" * 1024)
    assert members[2][1].endswith(b"\0" * 1024)
    # An independent reader sees one continuous tar stream.
    with tarfile.open(out) as tf:
        assert tf.getnames()[:2] == [".SIGN.RSA256.test.rsa.pub", ".PKGINFO"]

    idx = index.build([apk.package], signing_key=key)
    ix = index.read(idx, "APKINDEX.tar.gz", ring)
    assert ix.verified_by == ["test.rsa.pub"]
    (entry,) = ix.packages
    assert entry.checksum == built.checksum and entry.size == out.stat().st_size
    assert entry.depends == apk.package.depends and entry.provides == ["cmd:hello=1.2.3-r4"]
    package.read(out, expected_checksum=entry.checksum)
    # Rebuilding the index gives the same bytes.
    assert index.build(ix.packages, signing_key=key) == idx


def test_same_bytes_when_rebuilt_elsewhere(tmp_path, key) -> None:
    a = pack.pack(make_tree(tmp_path / "a", 1), META, tmp_path / "a.apk", signing_key=key, source_date_epoch=99)
    b = pack.pack(make_tree(tmp_path / "b" / "tree", 5555), META, tmp_path / "b.apk", signing_key=key, source_date_epoch=99)
    assert (tmp_path / "a.apk").read_bytes() == (tmp_path / "b.apk").read_bytes()
    assert a.sha256 == b.sha256
    c = pack.pack(make_tree(tmp_path / "c", 1), META, tmp_path / "c.apk", signing_key=key, source_date_epoch=100)
    assert c.sha256 != a.sha256


def test_system_tar_lists_package(tmp_path, key) -> None:
    out = tmp_path / "p.apk"
    pack.pack(make_tree(tmp_path / "t", 1), META, out, signing_key=key)
    listing = subprocess.run(["tar", "tzf", str(out)], capture_output=True, text=True, check=True).stdout.split()
    assert ".PKGINFO" in listing and "usr/bin/hello" in listing


def test_resign_package_and_index(tmp_path, key) -> None:
    out = tmp_path / "p.apk"
    built = pack.pack(make_tree(tmp_path / "t", 1), META, out)
    assert resign.sign_file(out, key) == "package"
    ring = keys.Keyring({"test.rsa.pub": key.key.public_key()})
    apk = package.read(out, keyring=ring, require_signature=True)
    assert apk.checksum == built.checksum  # control bytes untouched
    idx = tmp_path / "APKINDEX.tar.gz"
    idx.write_bytes(index.build([apk.package]))
    with pytest.raises(VerificationError):
        index.read_file(idx, ring)
    assert resign.sign_file(idx, key) == "index"
    assert index.read_file(idx, ring).packages[0].checksum == built.checksum
    # Re-signing replaces the signature rather than stacking another member.
    other = keys.generate(2048)
    keys.write_keypair(tmp_path / "other.rsa", other)
    resign.sign_file(idx, keys.load_private(tmp_path / "other.rsa"))
    ix = index.read_file(idx, keys.Keyring.load([tmp_path / "other.rsa.pub"]))
    assert [s.keyname for s in ix.signatures] == ["other.rsa.pub"]
