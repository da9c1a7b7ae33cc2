"""Real packages read with every check; any flipped byte is caught and named."""

from __future__ import annotations

import io
import re

import pytest

from distroless.apk import package
from distroless.apk.gzmember import inflate_members
from distroless.apk.keys import Keyring
from distroless.errors import DistrolessError
from shared import APK

PACKAGES = sorted((APK / "packages").glob("*.apk"))
RING = Keyring.load([APK / "keys"])


def test_fixture_packages_present() -> None:
    assert len(PACKAGES) == 4


@pytest.mark.parametrize("path", PACKAGES, ids=lambda p: p.name)
def test_real_package_reads_with_every_check(path) -> None:
    apk = package.read(path)
    p = apk.package
    assert p.name and p.version and p.datahash == apk.data_section.digest
    assert apk.file_size == path.stat().st_size
    sections = [s for s in (apk.signature_section, apk.control_section, apk.data_section) if s]
    ends = [s.offset + s.size for s in sections]
    assert ends[-1] == apk.file_size and [s.offset for s in sections[1:]] == ends[:-1]
    checked = [e for e in apk.entries if e.sha1]
    assert checked, "every fixture package carries per-file SHA-1 records"
    assert all(e.type in ("reg", "sym") for e in checked)


def test_alpine_package_signature_verifies() -> None:
    apk = package.read(APK / "packages" / "alpine-baselayout-3.2.0-r23.aarch64.apk", keyring=RING, require_signature=True)
    assert apk.verified_by == ["alpine-devel@lists.alpinelinux.org-616ae350.rsa.pub"]
    assert [e.name for e, _ in apk.scripts] == [".pre-install", ".pre-upgrade", ".post-upgrade", ".post-install"]
    assert apk.package.depends == ["alpine-baselayout-data=3.2.0-r23", "/bin/sh", "so:libc.musl-aarch64.so.1"]


def test_wolfi_package_by_unknown_key_is_refused_when_signature_required() -> None:
    with pytest.raises(DistrolessError, match="signed by: melange.rsa.pub"):
        package.read(APK / "packages" / "hello-wolfi-2.12.1-r0.apk", keyring=RING, require_signature=True)


def test_unsigned_package_refused_when_signature_required() -> None:
    with pytest.raises(DistrolessError, match="not signed"):
        package.read(APK / "packages" / "hello-0.1.0-r0.unsigned.apk", keyring=RING, require_signature=True)


def test_replaces_are_read() -> None:
    apk = package.read(APK / "packages" / "replaces-0.0.1-r0.apk")
    assert apk.package.replaces == ["foo", "bar"]


NAMED = re.compile(r"(signature member|control member|data member|gzip member 1)")


def _flip_positions(start: int, end: int) -> list[int]:
    """Every byte of small members; 64 spread positions plus the edges of large ones."""
    n = end - start
    if n <= 2048:
        return list(range(start, end))
    step = max(1, n // 64)
    return sorted(set(list(range(start, start + 16)) + list(range(start, end, step)) + list(range(end - 16, end))))


@pytest.mark.parametrize("path", PACKAGES, ids=lambda p: p.name)
def test_flipping_any_byte_is_detected_and_named(path) -> None:
    data = path.read_bytes()
    good = package.read(io.BytesIO(data), source=path.name)
    signed_by_known = any(RING.find(s.keyname) for s in good.signatures)
    ends = [end for end, _ in inflate_members(data, path.name, 1 << 30)]
    starts = [0] + ends[:-1]
    for member, (start, end) in enumerate(zip(starts, ends)):
        is_sig = good.signature_section is not None and member == 0
        for pos in _flip_positions(start, end):
            # gzip's MTIME/XFL/OS header bytes carry no content; in a signature member no
            # digest covers them (apk-tools ignores them too), elsewhere the member hash does.
            if is_sig and 4 <= pos - start < 10:
                continue
            bad = bytearray(data)
            bad[pos] ^= 0xFF
            with pytest.raises(DistrolessError) as err:
                package.read(io.BytesIO(bytes(bad)), keyring=RING if signed_by_known else None,
                             expected_checksum=good.checksum, source=path.name)
            msg = str(err.value)
            assert NAMED.search(msg), f"byte {pos}: error does not name the member: {msg}"
            assert re.search(r"gzip|signature|checksum|datahash|tar|PKGINFO|control file|entry|unexpected bytes", msg), msg
