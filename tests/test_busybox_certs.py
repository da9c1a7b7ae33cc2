"""busybox link tables (checked against a real busybox) and the JKS truststore (checked with keytool)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from distroless.errors import VerificationError
from distroless.rootfs import busybox, certs

ROOT = Path(__file__).resolve().parents[1]


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is required for this real-peer check and was not found", pytrace=False)
    return found


# --------------------------------------------------------------------------------------------
# busybox


def test_table_versions_and_default() -> None:
    t = busybox.table()
    assert set(t) == {"1.32.1", "1.33.0", "1.33.1", "1.33.2", "1.34.0", "1.34.1", "1.35.0", "1.36.0", "default"}
    assert t["default"] == t["1.36.0"]
    assert {k: len(v) for k, v in t.items()} == {
        "1.32.1": 428, "1.33.0": 429, "1.33.1": 429, "1.33.2": 429,
        "1.34.0": 431, "1.34.1": 431, "1.35.0": 431, "1.36.0": 434, "default": 434}


def test_table_differences_between_versions() -> None:
    t = {k: set(v) for k, v in busybox.table().items()}
    assert t["1.36.0"] - t["1.35.0"] == {"/usr/bin/tree", "/usr/bin/tsort", "/usr/sbin/seedrng"}
    assert t["1.34.0"] - t["1.33.2"] == {"/usr/bin/ascii", "/usr/bin/crc32"}
    assert t["1.33.0"] - t["1.32.1"] == {"/bin/base32"}
    assert t["1.35.0"] == t["1.34.1"] == t["1.34.0"]


def test_table_paths_are_absolute_unique_sorted() -> None:
    for version, paths in busybox.table().items():
        assert all(p.startswith("/") and p == os.path.normpath(p) for p in paths), version
        assert len(set(paths)) == len(paths), version
        assert paths == sorted(paths, key=str.encode), version
    default = busybox.table()["default"]
    for p in ("/bin/sh", "/bin/ash", "/bin/ls", "/usr/bin/env", "/sbin/ip", "/usr/sbin/chroot", "/root/linuxrc"):
        assert p in default


@pytest.mark.parametrize("version,key", [
    ("1.36.1-r5", "1.36.1"), ("1.35.0-r17", "1.35.0"), ("v1.33.1", "1.33.1"), ("1.34.0", "1.34.0"),
])
def test_version_key(version: str, key: str) -> None:
    assert busybox.version_key(version) == key


@pytest.mark.parametrize("version", ["1.36.1_p1-r0", "1.36", "1.36.1-r0-extra", "x1.36.1-r0", "1.36.1-r0 "])
def test_version_key_rejects_what_apko_rejects(version: str) -> None:
    with pytest.raises(busybox.BusyboxVersionError, match="invalid busybox version"):
        busybox.version_key(version)


def test_busybox_paths_picks_version_or_default() -> None:
    t = busybox.table()
    assert busybox.busybox_paths("1.35.0-r17") == [p for p in t["1.35.0"] if p != "/bin/busybox"]
    assert busybox.busybox_paths("1.37.0-r0") == [p for p in t["1.36.0"] if p != "/bin/busybox"]
    assert "/bin/busybox" not in busybox.busybox_paths("1.36.1-r2")
    assert "/bin/busybox" in t["1.36.0"]


def test_parse_table_format() -> None:
    text = "# c\n[2.0.0]\n/bin/a\n/bin/b\n[1.0.0] = 2.0.0\n-/bin/b\n[1.36.0] = 1.0.0\n"
    assert busybox.parse_table(text) == {"2.0.0": ["/bin/a", "/bin/b"], "1.0.0": ["/bin/a"],
                                         "1.36.0": ["/bin/a"], "default": ["/bin/a"]}
    with pytest.raises(ValueError, match="unknown"):
        busybox.parse_table("[1.0.0] = 9.9.9\n")
    with pytest.raises(ValueError, match="absolute"):
        busybox.parse_table("[1.36.0]\nbin/a\n")


def test_real_busybox_applets_are_in_the_table() -> None:
    """Debian's busybox 1.35.0 names where its applets install; all but two are in our 1.35.0 list,
    and the two are known (Debian moves readlink to /bin; apko's table puts linuxrc in /root)."""
    exe = tool("busybox")
    out = subprocess.run([exe, "--list-full"], check=True, capture_output=True, text=True).stdout
    real = {"/" + line.strip() for line in out.splitlines() if line.strip()}
    version = subprocess.run([exe], capture_output=True, text=True).stdout
    m = re.search(r"BusyBox v(\d+\.\d+\.\d+)", version)
    assert m is not None, version
    table = set(busybox.table().get(m.group(1), busybox.table()["default"]))
    assert len(real) > 200
    assert real - table <= {"/bin/readlink", "/linuxrc"}


def test_paths_file_is_package_data() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert "rootfs/busybox_paths.txt" in text
    assert (ROOT / "distroless" / "rootfs" / "busybox_paths.txt").read_text().startswith("# busybox applet")


# --------------------------------------------------------------------------------------------
# JKS


def make_cert(cn: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime(2024, 1, 1, tzinfo=timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


def keytool(*args: str) -> str:
    exe = tool("keytool")
    r = subprocess.run([exe, "-J-Duser.language=en", "-J-Duser.country=US", *args],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def keytool_list(store: Path) -> dict[str, tuple[str, str]]:
    """alias → (entry kind, SHA-256 fingerprint as lower-case hex)."""
    out = keytool("-list", "-keystore", str(store), "-storepass", certs.PASSWORD, "-storetype", "JKS")
    rows = re.findall(r"^([^\s,][^,\n]*), [^,\n]+, [^,\n]+, (\w+),\s*\nCertificate fingerprint \(SHA-256\): ([0-9A-F:]+)",
                      out, re.M)
    return {alias: (kind, fp.replace(":", "").lower()) for alias, kind, fp in rows}


@pytest.fixture(scope="module")
def java_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    """A JKS store written by keytool itself: two trusted certificates and one private key."""
    tmp = tmp_path_factory.mktemp("jks")
    store = tmp / "cacerts"
    ders = {"alpha-root": make_cert("Alpha Root"), "beta-root": make_cert("Beta Root")}
    for alias, der in ders.items():
        f = tmp / f"{alias}.der"
        f.write_bytes(der)
        keytool("-importcert", "-noprompt", "-storetype", "JKS", "-keystore", str(store),
                "-storepass", certs.PASSWORD, "-alias", alias, "-file", str(f))
    keytool("-genkeypair", "-storetype", "JKS", "-keystore", str(store), "-storepass", certs.PASSWORD,
            "-keypass", certs.PASSWORD, "-alias", "server", "-keyalg", "EC", "-groupname", "secp256r1",
            "-dname", "CN=server", "-validity", "30")
    return store, ders


def test_parse_keytool_store_and_round_trip(java_store: tuple[Path, dict[str, bytes]]) -> None:
    store, ders = java_store
    data = store.read_bytes()
    ks = certs.parse(data)
    assert ks.version == 2
    trusted = {e.alias: e.der for e in ks.entries if isinstance(e, certs.TrustedCert)}
    assert trusted == ders
    keys = [e for e in ks.entries if isinstance(e, certs.PrivateKey)]
    assert [k.alias for k in keys] == ["server"] and len(keys[0].chain) == 1
    assert all(isinstance(e, certs.PrivateKey) or e.cert_type == "X.509" for e in ks.entries)
    assert certs.render(ks) == data


def test_parse_checks_integrity(java_store: tuple[Path, dict[str, bytes]]) -> None:
    data = java_store[0].read_bytes()
    with pytest.raises(VerificationError):
        certs.parse(data, "wrong")
    with pytest.raises(VerificationError):
        certs.parse(data[:40] + bytes([data[40] ^ 1]) + data[41:])
    assert certs.parse(data, None).entries == certs.parse(data).entries
    with pytest.raises(certs.KeyStoreError, match="bad magic"):
        certs.parse(certs.render(certs.KeyStore(())).replace(b"\xfe\xed\xfe\xed", b"\xce\xce\xce\xce", 1), None)


def test_add_to_keytool_store_listed_by_keytool(java_store: tuple[Path, dict[str, bytes]], tmp_path: Path) -> None:
    store, ders = java_store
    extra = make_cert("Custom CA")
    bde = 1_700_000_000
    out = certs.add_to_truststore(store.read_bytes(), [("My-Custom-CA", extra)], bde)
    f = tmp_path / "cacerts"
    f.write_bytes(out)
    listed = keytool_list(f)
    assert listed == {
        "alpha-root": ("trustedCertEntry", hashlib.sha256(ders["alpha-root"]).hexdigest()),
        "beta-root": ("trustedCertEntry", hashlib.sha256(ders["beta-root"]).hexdigest()),
        "my-custom-ca": ("trustedCertEntry", hashlib.sha256(extra).hexdigest()),
        "server": ("PrivateKeyEntry", listed["server"][1]),
    }
    # The private key survives: keytool can still read it with its password.
    keytool("-exportcert", "-keystore", str(f), "-storepass", certs.PASSWORD, "-alias", "server",
            "-file", str(tmp_path / "server.der"))
    # Our entry carries the build date and exports the exact DER we gave.
    keytool("-exportcert", "-keystore", str(f), "-storepass", certs.PASSWORD, "-alias", "my-custom-ca",
            "-file", str(tmp_path / "exported.der"))
    assert (tmp_path / "exported.der").read_bytes() == extra
    verbose = keytool("-list", "-v", "-keystore", str(f), "-storepass", certs.PASSWORD, "-alias", "my-custom-ca")
    assert "Creation date: Nov 14, 2023" in verbose
    ks = certs.parse(out)
    assert [e.alias for e in ks.entries] == ["alpha-root", "beta-root", "my-custom-ca", "server"]
    assert ks.entries[2] == certs.TrustedCert("my-custom-ca", bde * 1000, extra)


def test_new_store_from_nothing_listed_by_keytool(tmp_path: Path) -> None:
    ders = [("zeta", make_cert("Zeta")), ("Alpha", make_cert("Alpha"))]
    out = certs.add_to_truststore(None, ders, 0)
    assert out == certs.add_to_truststore(None, ders, 0)  # deterministic
    f = tmp_path / "cacerts"
    f.write_bytes(out)
    assert keytool_list(f) == {"alpha": ("trustedCertEntry", hashlib.sha256(ders[1][1]).hexdigest()),
                               "zeta": ("trustedCertEntry", hashlib.sha256(ders[0][1]).hexdigest())}


def test_same_alias_replaces_entry() -> None:
    a, b = make_cert("A"), make_cert("B")
    first = certs.add_to_truststore(None, [("ca", a)], 10)
    second = certs.add_to_truststore(first, [("CA", b)], 20)
    assert certs.parse(second).entries == (certs.TrustedCert("ca", 20_000, b),)


def test_modified_utf8() -> None:
    for s in ("plain", "caf\u00e9", "\u20ac", "nul\x00inside", "emoji \U0001F600"):
        assert certs.mutf8_decode(certs.mutf8_encode(s)) == s
    assert certs.mutf8_encode("\x00") == b"\xc0\x80"
    assert certs.mutf8_encode("\U0001F600") == b"\xed\xa0\xbd\xed\xb8\x80"


def test_non_ascii_alias_read_by_keytool(tmp_path: Path) -> None:
    der = make_cert("Unicode")
    f = tmp_path / "cacerts"
    f.write_bytes(certs.add_to_truststore(None, [("Caf\u00e9-\u20ac", der)], 0))
    assert set(keytool_list(f)) == {"caf\u00e9-\u20ac"}
