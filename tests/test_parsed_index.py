"""The parsed-index cache serves only what the keys given now would verify."""

from __future__ import annotations

from pathlib import Path

import pytest

from distroless.apk import index, keys
from distroless.apk.keys import Keyring
from distroless.errors import DistrolessError, VerificationError
from distroless.fetch import parsedindex
from shared import APK

INDEX = APK / "alpine-v3.16-main-x86_64" / "APKINDEX.tar.gz"
KEYNAME = "alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub"
KEY = APK / "keys" / KEYNAME


def ring(*entries: tuple[str, bytes]) -> Keyring:
    r = Keyring()
    for name, pem in entries:
        r.add(name, pem)
    return r


@pytest.fixture
def good() -> Keyring:
    return ring((KEYNAME, KEY.read_bytes()))


def no_parse(monkeypatch) -> None:
    def refuse(*a, **k):
        raise AssertionError("parsed again")
    monkeypatch.setattr(index, "read", refuse)


def test_second_read_is_served_from_the_cache(tmp_path: Path, good: Keyring, monkeypatch) -> None:
    data = INDEX.read_bytes()
    first = parsedindex.read_index(tmp_path, data, "idx", good, repository="https://r/main", pin="edge")
    assert len(first) == 4929
    no_parse(monkeypatch)
    second = parsedindex.read_index(tmp_path, data, "idx", good, repository="https://r/main", pin="edge")
    assert second == first and second[0].repository == "https://r/main" and second[0].pin == "edge"
    other = parsedindex.read_index(tmp_path, data, "idx", good, repository="/elsewhere")
    assert other[0].repository == "/elsewhere" and other[0].pin == ""


def test_other_keys_verify_again(tmp_path: Path, good: Keyring) -> None:
    data = INDEX.read_bytes()
    parsedindex.read_index(tmp_path, data, "idx", good)
    # the same key name with another key: the signature must be checked, and fails
    keys.write_keypair(tmp_path / "other", keys.generate(2048))
    impostor = ring((KEYNAME, (tmp_path / "other.pub").read_bytes()))
    with pytest.raises(VerificationError, match="BAD signature"):
        parsedindex.read_index(tmp_path, data, "idx", impostor)
    with pytest.raises(VerificationError, match="no trusted keys"):
        parsedindex.read_index(tmp_path, data, "idx", Keyring())
    wrong = APK / "keys" / "wrong-key" / "alpine-devel@lists.alpinelinux.org-4a6a0840.rsa.pub"
    with pytest.raises(VerificationError, match="no signature by a trusted key"):
        parsedindex.read_index(tmp_path, data, "idx", ring((wrong.name, wrong.read_bytes())))


def test_unverified_entry_never_serves_a_verified_read(tmp_path: Path) -> None:
    data = INDEX.read_bytes()
    assert len(parsedindex.read_index(tmp_path, data, "idx", Keyring(), verify=False)) == 4929
    with pytest.raises(VerificationError):
        parsedindex.read_index(tmp_path, data, "idx", Keyring())


def test_changed_bytes_and_damaged_entries(tmp_path: Path, good: Keyring, monkeypatch) -> None:
    data = INDEX.read_bytes()
    parsedindex.read_index(tmp_path, data, "idx", good)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 1
    with pytest.raises(DistrolessError):  # another file: parsed and verified afresh, and it fails
        parsedindex.read_index(tmp_path, bytes(flipped), "idx", good)
    (entry,) = (tmp_path / "parsed").iterdir()
    blob = bytearray(entry.read_bytes())
    blob[-10] ^= 0xFF
    entry.write_bytes(bytes(blob))
    assert len(parsedindex.read_index(tmp_path, data, "idx", good)) == 4929  # damaged: re-parsed
    assert entry.read_bytes() != bytes(blob)  # and rewritten
    no_parse(monkeypatch)
    assert len(parsedindex.read_index(tmp_path, data, "idx", good)) == 4929
