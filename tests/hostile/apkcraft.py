"""Hand-built hostile packages, made with the engine's own tar, gzip and signing writers.

`pack()` only packs what a real directory holds; these helpers write any data tar (links
through symlinks, PAX records of any size, millions of entries) under a valid, signed control
member, and an index naming them, as an attacker with a trusted key (or a mirror serving a
swapped data member) could.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Iterable

from distroless.apk import index as apkindex
from distroless.apk import keys, signature
from distroless.apk.gzmember import gzip_member
from distroless.apk.model import Package
from distroless.apk.pack import control_member
from distroless.apk.package import q1
from distroless.tarball import DIRTYPE, END_OF_ARCHIVE, LNKTYPE, REGTYPE, SYMTYPE, Header, encode_header, padding

ARCH = "x86_64"


def reg(name: str, data: bytes, mode: int = 0o644) -> tuple[Header, bytes]:
    return Header(name, type=REGTYPE, mode=mode, size=len(data), uname="root", gname="root"), data


def dir_(name: str, mode: int = 0o755) -> tuple[Header, bytes]:
    return Header(name, type=DIRTYPE, mode=mode, uname="root", gname="root"), b""


def sym(name: str, target: str) -> tuple[Header, bytes]:
    return Header(name, type=SYMTYPE, mode=0o777, linkname=target, uname="root", gname="root"), b""


def hardlink(name: str, target: str) -> tuple[Header, bytes]:
    return Header(name, type=LNKTYPE, mode=0o644, linkname=target, uname="root", gname="root"), b""


def data_tar(entries: Iterable[tuple[Header, bytes]]) -> bytes:
    return b"".join(encode_header(h) + d + padding(len(d)) for h, d in entries) + END_OF_ARCHIVE


def craft_apk(out: Path, name: str, data_member: bytes, key: keys.SigningKey, *, version: str = "1.0-r0",
              datahash: str | None = None, installed_size: int = 1) -> Package:
    """A signed package whose data member is `data_member` (already gzip'd). `datahash` lets
    the control member name another data member (a swapped one then fails verification)."""
    pkg = Package(name=name, version=version, arch=ARCH, description="hostile", license="MIT", origin=name,
                  datahash=datahash or hashlib.sha256(data_member).hexdigest(), installed_size=installed_size)
    control = control_member(pkg, {}, 0)
    sig = signature.sign(key, {"RSA256": hashlib.sha256(control).digest()})
    head = signature.build_member([sig], mtime=0) + control
    out.write_bytes(head + data_member)
    return replace(pkg, checksum=q1(hashlib.sha1(control).digest()), size=len(head) + len(data_member))


def simple_apk(out: Path, name: str, entries: Iterable[tuple[Header, bytes]], key: keys.SigningKey) -> Package:
    return craft_apk(out, name, gzip_member(data_tar(entries)), key)


def write_repo(repo: Path, packages: list[Package], key: keys.SigningKey) -> Path:
    """`repo/x86_64/APKINDEX.tar.gz` signed by `key`; the .apk files must already be there."""
    (repo / ARCH).mkdir(parents=True, exist_ok=True)
    path = repo / ARCH / "APKINDEX.tar.gz"
    path.write_bytes(apkindex.build(packages, "hostile", key))
    return path


def new_key(d: Path) -> tuple[keys.SigningKey, Path]:
    priv, pub = keys.write_keypair(d / "hostile.rsa", keys.generate(2048))
    return keys.load_private(priv), pub
