"""Real Alpine and Wolfi indexes: parse, verify, reject, and the chain index → package → data."""

from __future__ import annotations

import shutil

import pytest

from distroless.apk import index, package
from distroless.apk.keys import Keyring
from distroless.errors import VerificationError
from shared import APK


@pytest.mark.parametrize(
    "repo,count,key",
    [
        ("alpine-v3.16-main-x86_64", 4929, "alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub"),
        ("alpine-v3.17-main-aarch64", 5004, "alpine-devel@lists.alpinelinux.org-616ae350.rsa.pub"),
    ],
)
def test_alpine_index_verifies_and_counts(repo: str, count: int, key: str) -> None:
    ix = index.read_file(APK / repo / "APKINDEX.tar.gz", Keyring.load([APK / "keys"]))
    assert len(ix.packages) == count
    assert ix.verified_by == [key]
    assert [s.alg for s in ix.signatures] == ["RSA"]
    names = {p.name for p in ix.packages}
    assert {"busybox", "musl", "alpine-baselayout"} <= names
    busybox = next(p for p in ix.packages if p.name == "busybox")
    assert busybox.checksum.startswith("Q1") and len(busybox.checksum) == 30
    assert busybox.size > 0 and busybox.installed_size > 0 and busybox.build_time > 0
    assert any(d.startswith("so:") for d in busybox.depends)


@pytest.mark.parametrize("repo", ["alpine-v3.16-main-x86_64", "alpine-v3.17-main-aarch64"])
def test_alpine_index_rejected_with_wrong_key(repo: str) -> None:
    with pytest.raises(VerificationError, match="no signature by a trusted key"):
        index.read_file(APK / repo / "APKINDEX.tar.gz", Keyring.load([APK / "keys" / "wrong-key"]))


def test_key_matched_without_rsa_pub_suffix(tmp_path) -> None:
    # Proxies that drop extensions serve the key as its bare name; apko accepts that.
    src = APK / "keys" / "alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub"
    shutil.copy(src, tmp_path / "alpine-devel@lists.alpinelinux.org-6165ee59")
    ix = index.read_file(APK / "alpine-v3.16-main-x86_64" / "APKINDEX.tar.gz", Keyring.load([tmp_path]))
    assert len(ix.packages) == 4929


def test_wolfi_each_of_three_signatures_verifies_alone() -> None:
    keys = sorted((APK / "wolfi-excerpt" / "keys").iterdir())
    assert len(keys) == 3
    data = (APK / "wolfi-excerpt" / "APKINDEX.tar.gz").read_bytes()
    for key in keys:
        ix = index.read(data, "wolfi", Keyring.load([key]))
        assert ix.verified_by == [key.name]
        assert all(s.alg == "RSA256" for s in ix.signatures) and len(ix.signatures) == 3


def test_wolfi_fields() -> None:
    ix = index.read_file(APK / "wolfi-excerpt" / "APKINDEX.tar.gz", Keyring.load([APK / "wolfi-excerpt" / "keys"]))
    assert any(p.provider_priority for p in ix.packages)
    assert any(any(x.startswith("so:") for x in p.provides) for p in ix.packages)
    assert any(any(x.startswith("cmd:") for x in p.provides) for p in ix.packages)


def test_rsa256_chain_index_to_file_contents() -> None:
    ring = Keyring.load([APK / "rsa256-signed" / "test-rsa256.rsa.pub"])
    ix = index.read_file(APK / "rsa256-signed" / "APKINDEX.tar.gz", ring)
    assert [s.alg for s in ix.signatures] == ["RSA256"]
    entry = next(p for p in ix.packages if p.name == "alpine-baselayout")
    apk = package.read(APK / "packages" / "alpine-baselayout-3.2.0-r23.aarch64.apk", expected_checksum=entry.checksum)
    assert apk.checksum == entry.checksum
    assert apk.package.datahash == apk.data_section.digest
    assert entry.size == apk.file_size
    # and every file checksum the package carries was checked against the contents
    assert sum(1 for e in apk.entries if e.sha1) == sum(1 for e in apk.entries if "APK-TOOLS.checksum.SHA1" in e.pax)


def test_unsigned_index_refused_unless_ignored(tmp_path) -> None:
    pkgs = index.read_file(APK / "rsa256-signed" / "APKINDEX.tar.gz", verify=False).packages
    data = index.build(pkgs)
    with pytest.raises(VerificationError, match="not signed"):
        index.read(data, "unsigned", Keyring.load([APK / "keys"]))
    assert index.read(data, "unsigned", verify=False).packages == pkgs


def test_slow_and_fast_parsers_agree() -> None:
    # Records in another letter order than apk-tools' take the general path: same result.
    ix = index.read_file(APK / "alpine-v3.16-main-x86_64" / "APKINDEX.tar.gz", verify=False)
    text = index.render_text(ix.packages[:200])
    shuffled = "\n\n".join("\n".join(reversed(r.split("\n"))) for r in text.strip("\n").split("\n\n")) + "\n\n"
    assert index.parse_text(shuffled, "x") == index.parse_text(text, "x") == ix.packages[:200]
