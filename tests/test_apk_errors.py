"""Bad input gives a clear, located error through the CLI: never a traceback."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from distroless.apk import keys, package
from distroless.apk.gzmember import gzip_member
from distroless.errors import LimitError
from distroless.tarball import END_OF_ARCHIVE, Header, encode_header, padding
from shared import APK


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "distroless", *args], capture_output=True, text=True)


def tar_entry(name: str, data: bytes, mode: int = 0o644, type_: bytes = b"0", linkname: str = "") -> bytes:
    return encode_header(Header(name, type=type_, mode=mode, size=len(data), linkname=linkname)) + data + padding(len(data))


def craft_apk(data_tar: bytes, extra_pkginfo: str = "", control: bytes | None = None) -> bytes:
    data = gzip_member(data_tar)
    info = f"pkgname = bad\npkgver = 1-r0\n{extra_pkginfo}datahash = {hashlib.sha256(data).hexdigest()}\n".encode()
    ctl = control if control is not None else gzip_member(tar_entry(".PKGINFO", info))
    return ctl + data


def expect_clean_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "Traceback" not in out, out
    for n in needles:
        assert n in out, f"{n!r} not in {out!r}"


def test_truncated_gzip(tmp_path) -> None:
    f = tmp_path / "t.apk"
    f.write_bytes((APK / "packages" / "hello-wolfi-2.12.1-r0.apk").read_bytes()[:30000])
    # the data member's bytes are hashed before they are decompressed: a cut file is refused there
    expect_clean_error(run("package", "verify", str(f)), "data member", "datahash mismatch", "truncated or replaced")


def test_member_that_is_not_a_tar(tmp_path) -> None:
    f = tmp_path / "t.apk"
    f.write_bytes(gzip_member(b"this is not a tar archive" * 40) + gzip_member(END_OF_ARCHIVE))
    expect_clean_error(run("package", "verify", str(f)), "control member", "not a tar")


@pytest.mark.parametrize("name", ["../escape", "usr/../../escape", "/etc/passwd"])
def test_tar_entry_escaping_root(tmp_path, name: str) -> None:
    f = tmp_path / "t.apk"
    f.write_bytes(craft_apk(tar_entry(name, b"x") + END_OF_ARCHIVE))
    expect_clean_error(run("package", "verify", str(f)), "data member", repr(name))


def test_hardlink_escaping_root(tmp_path) -> None:
    f = tmp_path / "t.apk"
    f.write_bytes(craft_apk(tar_entry("a", b"", type_=b"1", linkname="../../etc/shadow") + END_OF_ARCHIVE))
    expect_clean_error(run("package", "verify", str(f)), "hard link", "escapes the root")


def test_control_decompression_bomb(tmp_path) -> None:
    bomb = gzip_member(tar_entry(".PKGINFO", b"pkgname = x\n") + b"\0" * (11 << 20))
    f = tmp_path / "t.apk"
    f.write_bytes(craft_apk(END_OF_ARCHIVE, control=bomb))
    expect_clean_error(run("package", "verify", str(f)), "control member", "exceeds the cap")


def test_data_decompression_cap(tmp_path) -> None:
    f = tmp_path / "t.apk"
    f.write_bytes(craft_apk(tar_entry("big", b"\0" * 200_000) + END_OF_ARCHIVE))
    package.read(f)
    with pytest.raises(LimitError, match="data member: decompressed size exceeds the cap of 100000 bytes"):
        package.read(f, data_cap=100_000)


def test_missing_datahash(tmp_path) -> None:
    f = tmp_path / "t.apk"
    ctl = gzip_member(tar_entry(".PKGINFO", b"pkgname = x\npkgver = 1-r0\n"))
    f.write_bytes(ctl + gzip_member(END_OF_ARCHIVE))
    expect_clean_error(run("package", "verify", str(f)), "no datahash")


def test_malformed_index_line(tmp_path) -> None:
    from distroless.apk import index

    keys.write_keypair(tmp_path / "k.rsa", keys.generate(2048))
    text = b"C:Q1abc=\nP:ok\nV:1-r0\n\nP:bad\nthis line is wrong\n\n"
    idx = tmp_path / "APKINDEX.tar.gz"
    body = gzip_member(tar_entry("APKINDEX", text) + END_OF_ARCHIVE)
    idx.write_bytes(index.sign_body(body, keys.load_private(tmp_path / "k.rsa")))
    r = run("package", "verify", str(idx), "--keyring", str(tmp_path / "k.rsa.pub"))
    expect_clean_error(r, str(idx), "APKINDEX line 6: malformed line 'this line is wrong'")


def test_index_signed_by_unknown_key(tmp_path) -> None:
    r = run("package", "verify", str(APK / "alpine-v3.16-main-x86_64" / "APKINDEX.tar.gz"),
            "--keyring", str(APK / "keys" / "wrong-key"))
    expect_clean_error(r, "no signature by a trusted key", "6165ee59")


def test_malformed_pem(tmp_path) -> None:
    bad = tmp_path / "bad.rsa.pub"
    bad.write_text("-----BEGIN PUBLIC KEY-----\nnot base64 at all\n-----END PUBLIC KEY-----\n")
    r = run("package", "verify", str(APK / "packages" / "hello-0.1.0-r0.unsigned.apk"), "--keyring", str(bad))
    expect_clean_error(r, "bad.rsa.pub", "not a PEM public key")
    priv = tmp_path / "bad.rsa"
    priv.write_text("garbage")
    r = run("package", "sign", str(priv), str(tmp_path / "whatever.apk"))
    expect_clean_error(r, "bad.rsa", "not a PEM RSA private key")


def test_small_keys_refused(tmp_path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    (tmp_path / "small.rsa").write_bytes(small.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (tmp_path / "small.rsa.pub").write_bytes(small.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    expect_clean_error(run("package", "sign", str(tmp_path / "small.rsa"), "x.apk"), "1024 bits is too small")
    expect_clean_error(run("package", "verify", "x.apk", "--keyring", str(tmp_path / "small.rsa.pub")),
                       "1024 bits is too small")
    expect_clean_error(run("keygen", str(tmp_path / "k.rsa"), "--key-size", "1024"), "too small")


def test_pkcs8_private_key_accepted(tmp_path) -> None:
    from cryptography.hazmat.primitives import serialization

    k = keys.generate(2048)
    (tmp_path / "p8.rsa").write_bytes(k.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    assert keys.load_private(tmp_path / "p8.rsa").pub_name == "p8.rsa.pub"


def test_expansion_checks_the_datahash_before_parsing(tmp_path) -> None:
    """A data member that is not the one .PKGINFO vouches for is refused as such, before any of
    it is parsed (this tar's escaping name would otherwise be the error), and nothing is kept."""
    from distroless.errors import VerificationError
    from distroless.store.cache import Cache
    from distroless.store.expand import expand

    good = gzip_member(tar_entry("ok", b"fine") + END_OF_ARCHIVE)
    evil = gzip_member(tar_entry("../escape", b"x") + END_OF_ARCHIVE)
    info = f"pkgname = bad\npkgver = 1-r0\ndatahash = {hashlib.sha256(good).hexdigest()}\n".encode()
    f = tmp_path / "t.apk"
    f.write_bytes(gzip_member(tar_entry(".PKGINFO", info)) + evil)
    cache = Cache(tmp_path / "cache")
    with pytest.raises(VerificationError, match="datahash mismatch"):
        expand(f, cache)
    assert not any((cache.root / "tmp").iterdir())
    assert not any((cache.root / "expanded").iterdir())
    f.write_bytes(gzip_member(tar_entry(".PKGINFO", info)) + good)
    assert [e.name for e in expand(f, cache).apk.entries] == ["ok"]


def test_expansion_checks_every_file_sha1(tmp_path) -> None:
    from distroless.errors import VerificationError
    from distroless.store.cache import Cache
    from distroless.store.expand import expand

    def entry(data: bytes, sha1: str) -> bytes:
        h = Header("f", mode=0o644, size=len(data), pax={"APK-TOOLS.checksum.SHA1": sha1})
        return encode_header(h) + data + padding(len(data))

    big = bytes(range(256)) * 9000  # several positioned reads
    right = hashlib.sha1(big).hexdigest()
    f = tmp_path / "t.apk"
    f.write_bytes(craft_apk(entry(big, right) + END_OF_ARCHIVE))
    exp = expand(f, Cache(tmp_path / "c1"))
    assert exp.apk.entries[0].sha1 == right
    with open(exp.tar, "rb") as t:
        t.seek(exp.apk.entries[0].offset)
        assert t.read(len(big)) == big
    f.write_bytes(craft_apk(entry(big, "0" * 40) + END_OF_ARCHIVE))
    with pytest.raises(VerificationError, match=f"f: APK-TOOLS.checksum.SHA1 mismatch \\(recorded 0{{40}}, content {right}\\)"):
        expand(f, Cache(tmp_path / "c2"))
