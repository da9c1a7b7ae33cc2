"""Signed repositories and an in-process build for the config-audit tests: every accepted key of
the image configuration is exercised on a real rootfs and image config, without peers."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from distroless import imagebuild
from distroless.apk import index, keys, pack
from distroless.apk.model import Package
from distroless.config import LoadedConfig, load_image_config
from distroless.store.cache import Cache
from distroless.fetch.fetcher import Fetcher
from distroless.packages import resolve_config
from distroless.assembly import ArchRootfs, build_rootfs

ARCHS = ("x86_64", "aarch64")


def make_cert(cn: str) -> bytes:
    """A self-signed PEM certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, cn)])
    start = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(start).not_valid_after(start + dt.timedelta(days=3650))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class AuditRepos:
    root: Path
    main: Path       # base, tool, s6, certs-a
    build: Path      # buildonly
    runtime: Path    # runtimeonly
    pub: Path
    base_cert: bytes
    pkg_cert: bytes


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    root.mkdir(parents=True, exist_ok=True)
    return root


def make_repos(root: Path) -> AuditRepos:
    keys.write_keypair(root / "audit.rsa", keys.generate(2048))
    key = keys.load_private(root / "audit.rsa")
    base_cert, pkg_cert = make_cert("Base Root"), make_cert("Package Root")
    trees = root / "trees"
    specs = {
        "main": [
            (_tree(trees / "base", {"etc/os-release": b'ID=audit\nNAME="Audit OS"\nVERSION_ID=1\n',
                                    "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\n",
                                    "etc/group": b"root:x:0:\n",
                                    "etc/ssl/certs/ca-certificates.crt": base_cert,
                                    "data/sub/file": b"data\n"}),
             Package(name="base", version="1.0-r0", license="MIT", origin="base")),
            (_tree(trees / "tool", {"usr/bin/tool": b"#!/bin/sh\n"}),
             Package(name="tool", version="2.0-r0", license="MIT", origin="tool", depends=["base"])),
            (_tree(trees / "s6", {"bin/s6-svscan": b"s6\n"}),
             Package(name="s6", version="2.11-r0", license="ISC", origin="s6")),
            (_tree(trees / "certs-a", {"usr/local/share/ca-certificates/a.crt": pkg_cert,
                                       "usr/local/share/ca-certificates/broken.pem": b"not a cert\n",
                                       "usr/local/share/ca-certificates/notes.txt": pkg_cert}),
             Package(name="certs-a", version="1.0-r0", license="MIT", origin="certs-a",
                     provides=["custom-ca-certificates"])),
        ],
        "build": [(_tree(trees / "buildonly", {"usr/share/buildonly": b"b\n"}),
                   Package(name="buildonly", version="1-r0", license="MIT"))],
        "runtime": [(_tree(trees / "runtimeonly", {"usr/share/runtimeonly": b"r\n"}),
                     Package(name="runtimeonly", version="1-r0", license="MIT"))],
    }
    for repo, items in specs.items():
        for arch in ARCHS:
            out = root / repo / arch
            out.mkdir(parents=True)
            built = [pack.pack(tree, replace(meta, arch=arch), out / f"{meta.name}-{meta.version}.apk",
                               signing_key=key, source_date_epoch=1600000000).package for tree, meta in items]
            (out / "APKINDEX.tar.gz").write_bytes(index.build(built, signing_key=key))
    return AuditRepos(root, root / "main", root / "build", root / "runtime", root / "audit.rsa.pub",
                      base_cert, pkg_cert)


def header(repos: AuditRepos, packages: str = "[tool]", archs: str = "[x86_64]") -> str:
    return (f"contents:\n  repositories: [{repos.main}]\n  keyring: [{repos.pub}]\n"
            f"  packages: {packages}\narchs: {archs}\n")


def build_in_process(cwd: Path, name: str = "image.yaml") -> tuple[LoadedConfig, list[ArchRootfs]]:
    loaded = load_image_config(name, cwd=cwd)
    fetcher = Fetcher(Cache(cwd / "cache"))
    ps = resolve_config(loaded, fetcher)
    return loaded, build_rootfs(loaded, ps, fetcher)


def image_config(loaded: LoadedConfig, arch_fs: ArchRootfs) -> dict:
    """The OCI image config JSON apko would write for this rootfs (diff_ids left out)."""
    settings = imagebuild.image_settings(arch_fs.rootfs.config, arch_fs.bde)
    return imagebuild.arch_config(settings, arch_fs.arch, ["sha256:" + "0" * 64]).to_json()
