"""Expand: a verified .apk → its uncompressed data tar plus metadata, cached by the .apk's sha256.

The root filesystem references file contents inside these tars (path, offset, size), so package
bytes are stored once and copied only when a layer is written (as apko's tarfs does).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from distroless.apk import package
from distroless.apk.model import Package
from distroless.apk.package import ApkFile, Entry, Section
from distroless.apk.signature import Signature
from distroless.store.cache import Cache
from distroless.limits import DEFAULT_LIMITS, Limits
from distroless.fsutil import held_dir

_META_VERSION = 2  # 2: entries and sections as lists, xattrs base64, no data-entry PAX records


@dataclass(frozen=True, slots=True)
class Expanded:
    apk: ApkFile
    tar: Path


# An entry is stored as a list of its fields in this order (a package has thousands: dicts of
# names, and dataclasses.asdict's deep copies, were most of the cost of writing and reading this).
_ENTRY_FIELDS = ("name", "type", "mode", "uid", "gid", "uname", "gname", "mtime", "size", "linkname",
                 "devmajor", "devminor", "sha1", "offset")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _entry_row(e: Entry) -> list:
    return [getattr(e, f) for f in _ENTRY_FIELDS] + [{k: _b64(v) for k, v in e.xattrs.items()}, e.pax]


def _lean(apk: ApkFile) -> ApkFile:
    """Drop the data entries' PAX records once they are verified: installing needs only their
    fields, xattrs and SHA-1, and a build holds every entry of every package (memory)."""
    for e in apk.entries:
        if e.pax:
            e.pax = {}
    return apk


def _entry_of(row: list) -> Entry:
    n = len(_ENTRY_FIELDS)
    return Entry(*row[:n], xattrs={k: base64.b64decode(v) for k, v in row[n].items()}, pax=row[n + 1])


def _to_json(apk: ApkFile) -> dict:
    sec = lambda s: [s.offset, s.size, s.digest] if s else None  # noqa: E731
    return {
        "version": _META_VERSION, "package": asdict(apk.package), "pkginfo_text": apk.pkginfo_text,
        "signatures": [{"alg": s.alg, "keyname": s.keyname, "blob": _b64(s.blob)} for s in apk.signatures],
        "verified_by": apk.verified_by, "signature_section": sec(apk.signature_section),
        "control_section": sec(apk.control_section), "data_section": sec(apk.data_section),
        "sha256": apk.sha256, "file_size": apk.file_size,
        "scripts": [{"entry": _entry_row(e), "data": _b64(b)} for e, b in apk.scripts],
        "entries": [_entry_row(e) for e in apk.entries],
    }


def _from_json(d: dict) -> ApkFile:
    sec = lambda v: Section(*v) if v else None  # noqa: E731
    return ApkFile(
        package=Package(**d["package"]), pkginfo_text=d["pkginfo_text"],
        signatures=[Signature(s["alg"], s["keyname"], base64.b64decode(s["blob"])) for s in d["signatures"]],
        verified_by=d["verified_by"], signature_section=sec(d["signature_section"]),
        control_section=sec(d["control_section"]), data_section=sec(d["data_section"]),
        sha256=d["sha256"], file_size=d["file_size"],
        scripts=[(_entry_of(s["entry"]), base64.b64decode(s["data"])) for s in d["scripts"]],
        entries=[_entry_of(e) for e in d["entries"]],
    )


def expand(apk_path: Path, cache: Cache, *, expected_checksum: str | None = None,
           expected_sha256: str | None = None, source: str | None = None,
           limits: Limits = DEFAULT_LIMITS) -> Expanded:
    """Verify and expand `apk_path` once; later calls with the same file are cache hits.
    `source` names the package in errors (its URL, when `apk_path` is a download in progress)."""
    root = cache.root / "expanded"  # made with the cache
    if expected_sha256:
        hit = cached(cache, expected_sha256, expected_checksum)
        if hit is not None:
            return hit
    work = Path(tempfile.mkdtemp(dir=cache.root / "tmp", prefix="expand-"))
    try:
        with held_dir(work), open(work / "data.tar", "w+b") as sink:
            try:
                apk = package.read(apk_path, expected_checksum=expected_checksum, expected_sha256=expected_sha256,
                                   data_sink=sink, source=source,
                                   control_cap=limits.apk_control, data_cap=limits.apk_data)
            except OSError as e:
                if e.filename is not None:
                    raise
                raise OSError(e.errno, e.strerror, sink.name) from None  # a full disk: name the file
        meta = work / "meta.json"
        try:
            meta.write_text(json.dumps(_to_json(_lean(apk))))
        except OSError as e:  # a full disk names nothing: name the file
            raise OSError(e.errno, e.strerror, str(meta)) from None
        dest = root / apk.sha256
        try:
            os.rename(work, dest)
        except OSError:
            if load(dest) is None:  # a broken leftover: replace it
                shutil.rmtree(dest, ignore_errors=True)
                os.rename(work, dest)
        return Expanded(apk, dest / "data.tar")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def cached(cache: Cache, sha256: str, checksum: str | None = None) -> Expanded | None:
    """The cached expansion of the .apk with this sha256 (and control checksum), if any."""
    hit = load(cache.root / "expanded" / sha256)
    if hit is not None and (checksum is None or hit.apk.checksum == checksum):
        return hit
    return None


def load(d: Path) -> Expanded | None:
    """An expanded package directory (data.tar + meta.json), or None if it is not a valid one."""
    try:
        meta = json.loads((d / "meta.json").read_text())
        if meta.get("version") != _META_VERSION:
            return None
        apk = _from_json(meta)
        tar = d / "data.tar"
        last = max((e.offset + e.size for e in apk.entries if e.type == "reg"), default=0)
        if tar.stat().st_size < last:
            return None
        return Expanded(apk, tar)
    except (OSError, ValueError, KeyError, TypeError):
        return None
