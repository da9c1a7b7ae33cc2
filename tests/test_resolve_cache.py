"""The resolve step's cache: served only for the same inputs, never for bytes the keys given now
would not verify; a damaged entry is ignored and written again."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from distroless import packages as pkgset
from distroless import resolvecache
from distroless.apk import index, keys
from distroless.apk.model import Package
from distroless.config import Overrides, load_image_config
from distroless.errors import DistrolessError, VerificationError
from distroless.fetch import parsedindex
from distroless.fetch.fetcher import Fetcher
from distroless.store import entries
from distroless.store.cache import Cache
from shared import APK

ALPINE = APK / "alpine-v3.16-main-x86_64" / "APKINDEX.tar.gz"
ALPINE_KEY = APK / "keys" / "alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub"


@pytest.fixture(scope="module")
def signer(tmp_path_factory) -> tuple[keys.SigningKey, Path]:
    d = tmp_path_factory.mktemp("key")
    keys.write_keypair(d / "repo.rsa", keys.generate(2048))
    return keys.load_private(d / "repo.rsa"), d / "repo.rsa.pub"


def own_index(key: keys.SigningKey, app_version: str) -> bytes:
    pkgs = [Package("base", "1.0-r0", "x86_64", checksum="Q1" + "A" * 27 + "="),
            Package("app", app_version, "x86_64", checksum="Q1" + "B" * 27 + "=", depends=["base"])]
    return index.build(pkgs, signing_key=key)


def setup_repo(tmp: Path, data: bytes, key: Path, packages: str) -> Path:
    (tmp / "repo" / "x86_64").mkdir(parents=True, exist_ok=True)
    (tmp / "repo" / "x86_64" / "APKINDEX.tar.gz").write_bytes(data)
    cfg = tmp / "image.yaml"
    cfg.write_text(f"contents:\n  repositories: [{tmp / 'repo'}]\n  keyring: [{key}]\n"
                   f"  packages: [{packages}]\narchs: [x86_64]\n")
    return cfg


def resolve(cfg: Path, cache: Path, **kw) -> pkgset.PackageSet:
    return pkgset.resolve_config(load_image_config(cfg, Overrides()), Fetcher(Cache(cache)), **kw)


def count_resolutions(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = pkgset.resolve_packages

    def counted(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(pkgset, "resolve_packages", counted)
    return calls


def the_entry(cache: Path) -> Path:
    (entry,) = (cache / "steps" / "resolve").iterdir()
    return entry


def test_a_known_world_is_answered_from_the_step_cache_with_the_same_result(tmp_path: Path, monkeypatch) -> None:
    cfg = setup_repo(tmp_path, ALPINE.read_bytes(), ALPINE_KEY, "pango-dev, ifupdown-any, busybox")
    first = resolve(cfg, tmp_path / "cache")
    assert len(first.archs["amd64"]) > 50
    assert "ifupdown-ng" in {p.package.name for p in first.archs["amd64"]}

    def refuse(*a, **k):
        raise AssertionError("resolved or parsed again")

    monkeypatch.setattr(pkgset, "resolve_packages", refuse)
    monkeypatch.setattr(parsedindex, "read_index", refuse)
    second = resolve(cfg, tmp_path / "cache")
    assert second.archs == first.archs  # every field of every package, its URL, the order
    assert second.key_sources == first.key_sources
    # another world, or --ignore-signatures, is another key
    with pytest.raises(AssertionError, match="again"):
        resolve(cfg, tmp_path / "cache", world=("busybox",))
    with pytest.raises(AssertionError, match="again"):
        resolve(cfg, tmp_path / "cache", ignore_signatures=True)


def test_a_damaged_entry_is_ignored_and_written_again(tmp_path: Path, signer, monkeypatch) -> None:
    key, pub = signer
    cfg = setup_repo(tmp_path, own_index(key, "1.0-r0"), pub, "app")
    cache = tmp_path / "cache"
    calls = count_resolutions(monkeypatch)
    first = resolve(cfg, cache)
    entry = the_entry(cache)
    blob = bytearray(entry.read_bytes())
    blob[-5] ^= 0xFF
    entry.write_bytes(bytes(blob))
    assert resolve(cfg, cache).archs == first.archs and len(calls) == 2  # the damaged entry was not used
    assert entry.read_bytes() != bytes(blob)  # and was written again
    # intact, but not an answer: another shape, or rows that are not packages
    for n, value in enumerate([["not", "the", "shape"], {"amd64": [(("app",), "url")]}, {"amd64": [1]}]):
        entries.store(entry, resolvecache.MAGIC, value)
        assert resolve(cfg, cache).archs == first.archs and len(calls) == 3 + n
    entry.write_bytes(b"")
    assert resolve(cfg, cache).archs == first.archs and len(calls) == 6
    assert resolve(cfg, cache).archs == first.archs and len(calls) == 6  # and now served


def test_a_changed_index_is_read_again_even_with_the_same_mtime(tmp_path: Path, signer) -> None:
    key, pub = signer
    cfg = setup_repo(tmp_path, own_index(key, "1.0-r0"), pub, "app")
    cache = tmp_path / "cache"
    assert [p.package.version for p in resolve(cfg, cache).archs["amd64"]] == ["1.0-r0", "1.0-r0"]
    path = tmp_path / "repo" / "x86_64" / "APKINDEX.tar.gz"
    newer = own_index(key, "2.0-r0")
    st = path.stat()
    path.write_bytes(newer)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert [p.package.version for p in resolve(cfg, cache).archs["amd64"]] == ["1.0-r0", "2.0-r0"]
    # the same size and mtime, bytes altered after signing: verified afresh, and refused
    flipped = bytearray(newer)
    flipped[-40] ^= 1
    path.write_bytes(bytes(flipped))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(DistrolessError):
        resolve(cfg, cache)


def test_other_keys_are_still_refused(tmp_path: Path, signer) -> None:
    key, pub = signer
    cfg = setup_repo(tmp_path, own_index(key, "1.0-r0"), pub, "app")
    cache = tmp_path / "cache"
    resolve(cfg, cache)
    # the same key name with another key: the signature is checked, and fails
    impostor_dir = tmp_path / "impostor"
    impostor_dir.mkdir()
    keys.write_keypair(impostor_dir / "repo.rsa", keys.generate(2048))
    cfg.write_text(cfg.read_text().replace(str(pub), str(impostor_dir / "repo.rsa.pub")))
    with pytest.raises(VerificationError, match="BAD signature"):
        resolve(cfg, cache)
    # an unverified resolution never answers a verified one
    other = tmp_path / "other"
    other.mkdir()
    shutil.copytree(tmp_path / "repo", other / "repo")
    cfg2 = setup_repo(other, (tmp_path / "repo" / "x86_64" / "APKINDEX.tar.gz").read_bytes(),
                      APK / "keys" / "wrong-key" / "alpine-devel@lists.alpinelinux.org-4a6a0840.rsa.pub", "app")
    assert resolve(cfg2, cache, ignore_signatures=True).archs["amd64"]
    with pytest.raises(VerificationError, match="no signature by a trusted key"):
        resolve(cfg2, cache)


def test_a_key_that_is_not_one_fails_even_when_an_index_entry_exists(tmp_path: Path, signer) -> None:
    key, pub = signer
    cfg = setup_repo(tmp_path, own_index(key, "1.0-r0"), pub, "app")
    cache = tmp_path / "cache"
    resolve(cfg, cache)
    bad = tmp_path / "bad.rsa.pub"
    bad.write_text("not a key\n")
    cfg.write_text(cfg.read_text().replace(f"keyring: [{pub}]", f"keyring: [{pub}, {bad}]"))
    with pytest.raises(DistrolessError, match="not a PEM public key"):
        resolve(cfg, cache)


def test_a_downloaded_index_answered_from_the_step_cache_is_still_kept_for_offline(tmp_path: Path, signer) -> None:
    """Served from the step cache, a downloaded index is still recorded by URL (its bytes are the
    ones verified when the entry was made), so `--offline` next sees what this run saw."""
    from httpserver import StaticServer

    key, pub = signer
    srv = tmp_path / "srv"
    (srv / "x86_64").mkdir(parents=True)
    old, new = own_index(key, "1.0-r0"), own_index(key, "2.0-r0")
    server = StaticServer(srv).start()
    try:
        cfg = tmp_path / "image.yaml"
        cfg.write_text(f"contents:\n  repositories: [{server.url}]\n  keyring: [{pub}]\n"
                       "  packages: [app]\narchs: [x86_64]\n")
        cache = tmp_path / "cache"

        def app(offline: bool = False) -> str:
            fetcher = Fetcher(Cache(cache), offline=offline)
            ps = pkgset.resolve_config(load_image_config(cfg, Overrides()), fetcher)
            return [p.package.version for p in ps.archs["amd64"] if p.package.name == "app"][0]

        for data, want in ((old, "1.0-r0"), (new, "2.0-r0"), (old, "1.0-r0")):  # the last: a step-cache hit
            (srv / "x86_64" / "APKINDEX.tar.gz").write_bytes(data)
            assert app() == want
        assert app(offline=True) == "1.0-r0"
    finally:
        server.stop()
