"""Lock files: apko's samples load; ours round-trip and carry the whole-file sha256."""

from __future__ import annotations

import json

import pytest

from distroless import lock
from distroless.apk import package
from distroless.errors import FormatError
from shared import APK, FIXTURES

LOCKS = sorted((FIXTURES / "configs" / "apko-locks").glob("*.json"))


def test_every_sample_lock_is_collected() -> None:
    """A missing fixture folder must fail, not parametrize nothing."""
    assert [p.name for p in LOCKS] == ["apko-discover.lock.json", "apko.lock.json", "apko.pre-0.13.lock.json"]


@pytest.mark.parametrize("path", LOCKS, ids=lambda p: p.name)
def test_apko_sample_locks_load(path) -> None:
    lk = lock.load(path)
    raw = json.loads(path.read_text())
    assert [p.name for p in lk.packages] == [p["name"] for p in raw["contents"]["packages"]]
    assert all(p.checksum.startswith("Q1") for p in lk.packages)
    assert lk.archs()
    for p, r in zip(lk.packages, raw["contents"]["packages"]):
        if "checksum" in r:
            assert p.checksum == r["checksum"]
        # the Q1 checksum and the control range's sha1 are the same digest
        assert p.checksum[2:] == r["control"]["checksum"][len("sha1-"):]


def test_apko_lock_reserialises_byte_identically() -> None:
    path = FIXTURES / "configs" / "apko-locks" / "apko.lock.json"
    assert lock.dumps(lock.load(path)) == path.read_text()


def test_locked_package_from_real_apk_round_trips() -> None:
    apk = package.read(APK / "packages" / "alpine-baselayout-3.2.0-r23.aarch64.apk")
    lp = lock.locked_package(apk, "https://example.invalid/main/aarch64/alpine-baselayout-3.2.0-r23.apk", "aarch64")
    assert lp.signature.range == "bytes=0-665" and lp.control.range == "bytes=666-2228"
    assert lp.data.range == f"bytes=2229-{apk.file_size - 1}"
    assert lp.checksum == "Q1LLq2qDNrS/qRnhxQ3hsY/sHbQnc="  # the C: of the signed RSA256 fixture index
    assert lp.sha256 == apk.sha256
    lk = lock.Lock(config_name="x.yaml", config_checksum="sha256-abc", packages=[lp])
    again = lock.loads(lock.dumps(lk), "x")
    assert again == lk


def test_bad_lock_names_the_field(tmp_path) -> None:
    bad = {"version": "v1", "contents": {"packages": [{"name": "a", "url": 3}]}}
    with pytest.raises(FormatError, match=r"contents.packages\[0\].url: expected a string"):
        lock.loads(json.dumps(bad), "bad.lock.json")
    with pytest.raises(FormatError, match="bad.lock.json:1:2: not valid JSON"):
        lock.loads("{oops", "bad.lock.json")
    with pytest.raises(FormatError, match="version: expected 'v1'"):
        lock.loads('{"version": "v2", "contents": {}}', "bad.lock.json")
