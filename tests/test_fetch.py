"""Fetching from a real HTTP server on loopback: parallel, cached, verified, offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from distroless.apk import index, keys, pack
from distroless.apk.model import Package
from distroless.errors import FetchError, VerificationError
from distroless.store.cache import Cache
from distroless.fetch.fetcher import Fetcher
from distroless.fetch.repository import Repository
from distroless.fetch.transport import Transport, parse_http_auth
from httpserver import StaticServer
from shared import APK

ARCH = "x86_64"


def build_repo(root: Path, key: keys.SigningKey, count: int = 12) -> list[Package]:
    arch_dir = root / ARCH
    arch_dir.mkdir(parents=True)
    pkgs = []
    for i in range(count):
        tree = root.parent / f"tree{i}"
        (tree / "usr/share" / f"p{i}").mkdir(parents=True)
        (tree / "usr/share" / f"p{i}" / "data").write_bytes(os.urandom(4096) * (i + 1))
        meta = Package(name=f"p{i}", version=f"1.{i}-r0", arch=ARCH, depends=[f"p{i - 1}"] if i else [])
        built = pack.pack(tree, meta, arch_dir / f"p{i}-1.{i}-r0.apk", signing_key=key)
        pkgs.append(built.package)
    (arch_dir / "APKINDEX.tar.gz").write_bytes(index.build(pkgs, signing_key=key))
    return pkgs


@pytest.fixture()
def repo(tmp_path):
    keys.write_keypair(tmp_path / "repo.rsa", keys.generate(2048))
    key = keys.load_private(tmp_path / "repo.rsa")
    root = tmp_path / "srv"
    pkgs = build_repo(root, key)
    server = StaticServer(root).start()
    yield server, pkgs, tmp_path / "repo.rsa.pub", root
    server.stop()


def test_fetch_parallel_cache_then_offline(repo, tmp_path) -> None:
    server, built, pub, _ = repo
    cache = Cache(tmp_path / "cache")
    f = Fetcher(cache, jobs=4)
    ring = f.keyring([str(pub)])
    pkgs = f.index(Repository.parse(server.url), ARCH, ring)
    assert [p.name for p in pkgs] == [p.name for p in built]
    assert all(p.repository == server.url for p in pkgs)
    got = f.packages(pkgs, ARCH)
    assert all(r.apk is not None for r in got), "first fetch downloads and verifies"
    assert len(list((cache.root / "blobs" / "sha256").iterdir())) == len(pkgs) + 1  # + the index
    again = f.packages(pkgs, ARCH)
    assert all(r.apk is None for r in again), "second fetch is served by the cache"

    server.stop()
    off = Fetcher(cache, offline=True)
    pkgs2 = off.index(Repository.parse(server.url), ARCH, ring)
    assert pkgs2 == pkgs
    res = off.packages(pkgs2, ARCH)
    assert [r.sha256 for r in res] == [r.sha256 for r in got]
    assert [r.path.read_bytes() for r in res] == [r.path.read_bytes() for r in got]


def test_offline_miss_is_a_clear_error(repo, tmp_path) -> None:
    server, built, pub, _ = repo
    off = Fetcher(Cache(tmp_path / "empty"), offline=True)
    with pytest.raises(FetchError, match="not in the cache and --offline was given"):
        off.index(Repository.parse(server.url), ARCH, off.keyring([str(pub)]))


def test_tampered_package_rejected_and_never_cached(repo, tmp_path) -> None:
    server, built, pub, root = repo
    victim = root / ARCH / "p3-1.3-r0.apk"
    data = bytearray(victim.read_bytes())
    data[-40] ^= 0x01
    victim.write_bytes(bytes(data))
    cache = Cache(tmp_path / "cache")
    f = Fetcher(cache)
    pkgs = f.index(Repository.parse(server.url), ARCH, f.keyring([str(pub)]))
    with pytest.raises(Exception) as err:
        f.packages(pkgs, ARCH)
    assert "p3-1.3-r0.apk" in str(err.value)
    assert cache.find_apk(pkgs[3].checksum) is None
    blobs = {p.name for p in (cache.root / "blobs" / "sha256").iterdir()}
    assert not any((cache.root / "tmp").iterdir()), "no partial download left behind"
    # Only verified content is stored: every blob's name is its own sha256.
    import hashlib
    for b in blobs:
        assert hashlib.sha256((cache.root / "blobs" / "sha256" / b).read_bytes()).hexdigest() == b


def test_cache_evicts_a_blob_corrupted_at_rest(repo, tmp_path) -> None:
    server, built, pub, _ = repo
    cache = Cache(tmp_path / "cache")
    f = Fetcher(cache)
    pkgs = f.index(Repository.parse(server.url), ARCH, f.keyring([str(pub)]))
    (r,) = f.packages(pkgs[:1], ARCH)
    blob = r.path
    blob.chmod(0o644)
    raw = bytearray(blob.read_bytes())
    raw[420] ^= 0xFF  # inside the control member
    blob.write_bytes(bytes(raw))
    assert cache.find_apk(pkgs[0].checksum) is None
    assert not blob.exists()


def test_index_by_unknown_key_refused_unless_ignored(repo, tmp_path) -> None:
    server, built, pub, _ = repo
    f = Fetcher(Cache(tmp_path / "cache"))
    other = f.keyring([str(APK / "keys")])
    with pytest.raises(VerificationError, match="no signature by a trusted key"):
        f.index(Repository.parse(server.url), ARCH, other)
    assert len(f.index(Repository.parse(server.url), ARCH, other, verify=False)) == len(built)


def test_http_404_names_the_url(repo, tmp_path) -> None:
    server, *_ = repo
    t = Transport(retries=0)
    with pytest.raises(FetchError, match=r"/nope/x86_64/APKINDEX.tar.gz: HTTP 404"):
        t.get(server.url + "/nope/x86_64/APKINDEX.tar.gz")


def test_repository_forms() -> None:
    r = Repository.parse("@local https://example.invalid/repo/")
    assert (r.url, r.pin) == ("https://example.invalid/repo", "local")
    assert r.index_url("aarch64") == "https://example.invalid/repo/aarch64/APKINDEX.tar.gz"
    assert r.lock_name("x86_64") == "example.invalid/repo/x86_64"
    assert Repository.parse("file:///srv/repo").lock_name("x86_64") == "/srv/repo/x86_64"


def test_http_auth_parsing_hides_password() -> None:
    (a,) = parse_http_auth("basic:apk.example:user:pa:ss")
    assert (a.host, a.user, a.password) == ("apk.example", "user", "pa:ss")
    assert "pa:ss" not in repr(a)


def test_resigned_package_is_not_served_from_an_older_copy(repo, tmp_path) -> None:
    # Re-signing keeps the control member (and so `C:`) but changes the file; the index's size
    # tells the copies apart, so the cache does not hand out the old bytes.
    import hashlib

    from distroless.apk import resign

    server, built, pub, root = repo
    cache = Cache(tmp_path / "cache")
    f = Fetcher(cache)
    ring = f.keyring([str(pub)])
    pkgs = f.index(Repository.parse(server.url), ARCH, ring)
    (first,) = f.packages(pkgs[:1], ARCH)
    keys.write_keypair(tmp_path / "big.rsa", keys.generate(3072))
    victim = root / ARCH / "p0-1.0-r0.apk"
    resign.sign_file(victim, keys.load_private(tmp_path / "big.rsa"))
    from distroless.apk import package as apkpkg
    entries = [apkpkg.read(p).package for p in sorted((root / ARCH).glob("*.apk"))]
    (root / ARCH / "APKINDEX.tar.gz").write_bytes(index.build(entries, signing_key=keys.load_private(root.parent / "repo.rsa")))
    pkgs2 = f.index(Repository.parse(server.url), ARCH, ring)
    p0 = next(p for p in pkgs2 if p.name == "p0")
    assert p0.checksum == first.package.checksum
    (again,) = f.packages([p0], ARCH)
    assert again.sha256 == hashlib.sha256(victim.read_bytes()).hexdigest() != first.sha256


def test_local_download_is_a_kernel_copy_with_the_cap(tmp_path) -> None:
    from distroless.errors import LimitError

    src = tmp_path / "p.apk"
    data = os.urandom(3 * (1 << 20) + 17)
    src.write_bytes(data)
    seen: list[int] = []
    with open(tmp_path / "out", "w+b") as out:
        assert Transport().download(str(src), out, on_bytes=seen.append) == len(data)
        out.write(b"!")  # the file object's position follows what the kernel wrote
    assert (tmp_path / "out").read_bytes() == data + b"!"
    assert sum(seen) == len(data)
    import io
    buf = io.BytesIO()  # not a file: the copy goes through Python
    assert Transport().download(str(src), buf) == len(data) and buf.getvalue() == data
    for sink in (open(tmp_path / "capped", "w+b"), io.BytesIO()):
        with sink, pytest.raises(LimitError, match="larger than the cap of 1000 bytes"):
            Transport().download(str(src), sink, 1000)
