"""`package sign`: replace the signature member of a package or an index, keeping the rest's bytes."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

from distroless.apk import pkginfo, signature
from distroless.apk.gzmember import MemberReader
from distroless.apk.keys import SigningKey
from distroless.apk.package import CONTROL_CAP
from distroless.errors import FormatError
from distroless.fsutil import atomic_output


class _Collect:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def update(self, data: bytes) -> None:
        self.parts.append(data)

    def bytes(self) -> bytes:
        return b"".join(self.parts)


def _first_entry(tar: bytes, source: str) -> tuple[str, bytes]:
    try:
        with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as tf:
            info = tf.next()
            if info is None:
                raise FormatError(f"{source}: empty tar member")
            f = tf.extractfile(info)
            return info.name, f.read() if f else b""
    except tarfile.TarError as e:
        raise FormatError(f"{source}: not a tar ({e})") from None


def sign_file(path: Path, key: SigningKey) -> str:
    """Re-sign `path` in place (atomically) with RSA256; returns "package" or "index"."""
    source = str(path)
    with open(path, "rb") as f:
        reader = MemberReader(f, source)
        raw = _Collect()
        member = reader.next("first member", CONTROL_CAP, raw)
        content = member.read()
        if signature.is_signature_tar(content):
            raw = _Collect()
            member = reader.next("control member", CONTROL_CAP, raw)
            content = member.read()
        name, data = _first_entry(content, source)
        body = raw.bytes()
        if name == ".PKGINFO":
            kind = "package"
            mtime = pkginfo.parse(data.decode("utf-8", "replace"), source).build_time
            digest = hashlib.sha256(body).digest()
        elif name in ("APKINDEX", "DESCRIPTION"):
            kind, mtime = "index", 0
            body += b"".join(reader.rest_raw())
            digest = hashlib.sha256(body).digest()
        else:
            raise FormatError(f"{source}: neither a package (.PKGINFO) nor an index (APKINDEX): first entry {name!r}")
        sig = signature.sign(key, {"RSA256": digest})
        with atomic_output(path, mode=path.stat().st_mode & 0o777) as out:
            out.write(signature.build_member([sig], mtime=mtime))
            out.write(body)
            if kind == "package":
                for chunk in reader.rest_raw():
                    out.write(chunk)
    return kind
