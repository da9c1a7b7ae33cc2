"""Lock files: apko's `apko.lock.json` v1, plus the sha256 of each whole `.apk`.

The added `sha256` field (lowercase hex) is what BuildKit's http source and Bazel's downloader pin
a download by; apko ignores unknown fields, and apko's own locks (without it) still load. Locks
from before apko 0.13 lack the per-package `checksum`; it is the control member's SHA-1, which
`control.checksum` also carries, so it is derived from there.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distroless.apk.package import ApkFile, Section, q1
from distroless.errors import FormatError
from distroless.fsutil import atomic_write, read_regular

LOCK_CAP = 64 << 20  # a lock lists packages, one short record each

LOCK_VERSION = "v1"


@dataclass(frozen=True, slots=True)
class LockedRepository:
    name: str
    url: str
    architecture: str


@dataclass(frozen=True, slots=True)
class LockedKey:
    name: str
    url: str
    content: str


@dataclass(frozen=True, slots=True)
class LockedRange:
    range: str = ""
    checksum: str = ""


@dataclass(frozen=True, slots=True)
class LockedPackage:
    name: str
    url: str
    version: str
    architecture: str
    signature: LockedRange
    control: LockedRange
    data: LockedRange
    checksum: str  # Q1 + base64(control SHA-1)
    sha256: str = ""  # hex of the whole .apk; empty in apko's own locks


@dataclass(slots=True)
class Lock:
    config_name: str = ""
    config_checksum: str = ""  # "sha256-<b64>"; empty in pre-0.13 locks
    keyring: list[LockedKey] = field(default_factory=list)
    build_repositories: list[LockedRepository] = field(default_factory=list)
    runtime_repositories: list[LockedRepository] = field(default_factory=list)
    repositories: list[LockedRepository] = field(default_factory=list)
    packages: list[LockedPackage] = field(default_factory=list)

    def archs(self) -> list[str]:
        seen: dict[str, None] = {}
        for p in self.packages:
            seen.setdefault(p.architecture)
        return list(seen)

    def packages_for(self, arch: str) -> list[LockedPackage]:
        return [p for p in self.packages if p.architecture == arch]


def _range(section: Section | None, algorithm: str) -> LockedRange:
    if section is None:
        return LockedRange()
    digest = base64.b64encode(bytes.fromhex(section.digest)).decode()
    return LockedRange(f"bytes={section.offset}-{section.offset + section.size - 1}", f"{algorithm}-{digest}")


def locked_package(apk: ApkFile, url: str, arch: str) -> LockedPackage:
    return LockedPackage(
        name=apk.package.name, url=url, version=apk.package.version, architecture=arch,
        signature=_range(apk.signature_section, "sha1"), control=_range(apk.control_section, "sha1"),
        data=_range(apk.data_section, "sha256"), checksum=apk.checksum, sha256=apk.sha256,
    )


def dumps(lock: Lock) -> str:
    """JSON in apko's field order, indented 2 spaces, with a trailing newline."""
    def pkg(p: LockedPackage) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": p.name, "url": p.url, "version": p.version, "architecture": p.architecture,
            "signature": {"range": p.signature.range, "checksum": p.signature.checksum},
            "control": {"range": p.control.range, "checksum": p.control.checksum},
            "data": {"range": p.data.range, "checksum": p.data.checksum},
            "checksum": p.checksum,
        }
        if p.sha256:
            d["sha256"] = p.sha256
        return d

    def repos(rs: list[LockedRepository]) -> list[dict[str, str]]:
        return [{"name": r.name, "url": r.url, "architecture": r.architecture} for r in rs]

    doc = {
        "version": LOCK_VERSION,
        "config": {"name": lock.config_name, "checksum": lock.config_checksum},
        "contents": {
            "keyring": [{"name": k.name, "url": k.url, "content": k.content} for k in lock.keyring],
            "build_repositories": repos(lock.build_repositories),
            "runtime_repositories": repos(lock.runtime_repositories),
            "repositories": repos(lock.repositories),
            "packages": [pkg(p) for p in lock.packages],
        },
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def write(lock: Lock, path: str | Path) -> None:
    atomic_write(path, dumps(lock).encode())


class _Reader:
    """Typed field access that names the file and the JSON path of anything wrong."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, where: str, expected: str) -> FormatError:
        return FormatError(f"{self.source}: {where}: expected {expected}")

    def obj(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, "an object")
        return value

    def str_(self, d: dict[str, Any], key: str, where: str, required: bool = True) -> str:
        if key not in d:
            if required:
                raise self.fail(f"{where}.{key}", "a string (field missing)")
            return ""
        if not isinstance(d[key], str):
            raise self.fail(f"{where}.{key}", "a string")
        return d[key]

    def list_(self, d: dict[str, Any], key: str, where: str) -> list[Any]:
        value = d.get(key) or []
        if not isinstance(value, list):
            raise self.fail(f"{where}.{key}", "a list")
        return value


def loads(text: str, source: str) -> Lock:
    r = _Reader(source)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise FormatError(f"{source}:{e.lineno}:{e.colno}: not valid JSON ({e.msg})") from None
    doc = r.obj(doc, "top level")
    version = doc.get("version")
    if version != LOCK_VERSION:
        raise FormatError(f"{source}: version: expected {LOCK_VERSION!r}, got {version!r}")
    config = r.obj(doc.get("config") or {}, "config")
    contents = r.obj(doc.get("contents"), "contents")

    def repos(key: str) -> list[LockedRepository]:
        out = []
        for i, item in enumerate(r.list_(contents, key, "contents")):
            where = f"contents.{key}[{i}]"
            item = r.obj(item, where)
            out.append(LockedRepository(r.str_(item, "name", where), r.str_(item, "url", where),
                                        r.str_(item, "architecture", where)))
        return out

    keyring = []
    for i, item in enumerate(r.list_(contents, "keyring", "contents")):
        where = f"contents.keyring[{i}]"
        item = r.obj(item, where)
        keyring.append(LockedKey(r.str_(item, "name", where), r.str_(item, "url", where),
                                 r.str_(item, "content", where, required=False)))

    packages = []
    for i, item in enumerate(r.list_(contents, "packages", "contents")):
        where = f"contents.packages[{i}]"
        item = r.obj(item, where)
        name, url = r.str_(item, "name", where), r.str_(item, "url", where)
        version, arch = r.str_(item, "version", where), r.str_(item, "architecture", where)
        ranges = {}
        for part in ("signature", "control", "data"):
            sub = r.obj(item.get(part) or {}, f"{where}.{part}")
            ranges[part] = LockedRange(r.str_(sub, "range", f"{where}.{part}", required=False),
                                       r.str_(sub, "checksum", f"{where}.{part}", required=False))
        checksum = r.str_(item, "checksum", where, required=False)
        if not checksum:
            checksum = _checksum_from_control(ranges["control"].checksum)
            if not checksum:
                raise r.fail(f"{where}.checksum", "the package's Q1 control checksum (or control.checksum)")
        packages.append(LockedPackage(
            name=name, url=url, version=version, architecture=arch, signature=ranges["signature"],
            control=ranges["control"], data=ranges["data"], checksum=checksum,
            sha256=r.str_(item, "sha256", where, required=False),
        ))
    return Lock(
        config_name=r.str_(config, "name", "config", required=False),
        config_checksum=r.str_(config, "checksum", "config", required=False),
        keyring=keyring, build_repositories=repos("build_repositories"),
        runtime_repositories=repos("runtime_repositories"), repositories=repos("repositories"), packages=packages,
    )


def _checksum_from_control(value: str) -> str:
    if not value.startswith("sha1-"):
        return ""
    try:
        raw = base64.b64decode(value[5:], validate=True)
    except ValueError:
        return ""
    return q1(raw) if len(raw) == 20 else ""


def load(path: str | Path) -> Lock:
    path = Path(path)
    try:
        text = read_regular(path, LOCK_CAP, "lock file").decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(f"{path}: lock file is not UTF-8") from None
    except OSError as e:
        raise FormatError(f"{path}: cannot read lock file: {e.strerror}") from None
    return loads(text, str(path))
