"""The installed database (`usr/lib/apk/db/installed`), `scripts.tar` and `triggers`.

Records are written in apko's byte format (apko.md §2.6): fields `P V A L T o m U D p [r] c i t S I
k [C]`, empty fields kept, `i:` printed like Go's `%s` of a string slice (`i:[]`), then per
directory `F:` (+ `M:uid:gid:%04o` unless 0755 root) and per file `R:` (+ `a:uid:gid:%04o` unless
0644 root) and `Z:Q1…`, and a blank line after each record. The reader also takes apk-tools'
order and its `%o` modes.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field

from distroless.apk.model import Package
from distroless.errors import FormatError
from distroless.tarball import END_OF_ARCHIVE, Header, encode_header, padding


@dataclass(slots=True)
class IdbFile:
    name: str  # basename
    uid: int = 0
    gid: int = 0
    mode: int = 0o644
    checksum: str = ""  # Q1…


@dataclass(slots=True)
class IdbDir:
    path: str  # "" for files at the root (a bare `F:`)
    uid: int = 0
    gid: int = 0
    mode: int = 0o755
    files: list[IdbFile] = field(default_factory=list)


@dataclass(slots=True)
class IdbRecord:
    package: Package
    dirs: list[IdbDir] = field(default_factory=list)


def render(records: Iterable[IdbRecord]) -> bytes:
    """The installed database: each record rendered as it comes (a stream of records is never
    held whole, only the resulting text)."""
    return b"".join(_render_one(rec) for rec in records)


def _render_one(rec: IdbRecord) -> bytes:
    out: list[str] = []
    p = rec.package
    out += [f"P:{p.name}", f"V:{p.version}", f"A:{p.arch}", f"L:{p.license}", f"T:{p.description}",
            f"o:{p.origin}", f"m:{p.maintainer}", f"U:{p.url}", "D:" + " ".join(p.depends),
            "p:" + " ".join(p.provides)]
    if p.replaces:
        out.append("r:" + " ".join(p.replaces))
    out += [f"c:{p.commit}", "i:[" + " ".join(p.install_if) + "]", f"t:{p.build_time}", f"S:{p.size}",
            f"I:{p.installed_size}", f"k:{p.provider_priority}"]
    if p.checksum:
        out.append(f"C:{p.checksum}")
    for d in rec.dirs:
        out.append(f"F:{d.path}")
        if d.mode != 0o755 or d.uid or d.gid:
            out.append(f"M:{d.uid}:{d.gid}:{d.mode:04o}")
        for f in d.files:
            out.append(f"R:{f.name}")
            if f.mode != 0o644 or f.uid or f.gid:
                out.append(f"a:{f.uid}:{f.gid}:{f.mode:04o}")
            if f.checksum:
                out.append(f"Z:{f.checksum}")
    return ("\n".join(out) + "\n\n").encode()


def _owner_mode(value: str, where: str) -> tuple[int, int, int]:
    try:
        uid, gid, mode = value.split(":")
        return int(uid), int(gid), int(mode, 8)
    except ValueError:
        raise FormatError(f"{where}: expected uid:gid:mode, got {value!r}") from None


def parse(text: str, source: str) -> list[IdbRecord]:
    records: list[IdbRecord] = []
    for block in text.split("\n\n"):
        block = block.strip("\n")
        if not block:
            continue
        pkg = Package(name="", version="")
        rec = IdbRecord(pkg)
        cur_dir: IdbDir | None = None
        cur_file: IdbFile | None = None
        for line in block.split("\n"):
            if len(line) < 2 or line[1] != ":":
                raise FormatError(f"{source}: malformed line {line!r}")
            k, v = line[0], line[2:]
            where = f"{source}: package {pkg.name or '?'}"
            if k == "F":
                cur_dir, cur_file = IdbDir(v), None
                rec.dirs.append(cur_dir)
            elif k == "M" and cur_dir is not None:
                cur_dir.uid, cur_dir.gid, cur_dir.mode = _owner_mode(v, where)
            elif k == "R":
                if cur_dir is None:
                    cur_dir = IdbDir("")
                    rec.dirs.append(cur_dir)
                cur_file = IdbFile(v)
                cur_dir.files.append(cur_file)
            elif k == "a" and cur_file is not None:
                cur_file.uid, cur_file.gid, cur_file.mode = _owner_mode(v, where)
            elif k == "Z" and cur_file is not None:
                cur_file.checksum = v
            elif k in "PVALToUmc":
                attr = {"P": "name", "V": "version", "A": "arch", "L": "license", "T": "description",
                        "o": "origin", "U": "url", "m": "maintainer", "c": "commit"}[k]
                setattr(pkg, attr, v)
            elif k in "Dpr":
                setattr(pkg, {"D": "depends", "p": "provides", "r": "replaces"}[k], v.split())
            elif k == "i":
                pkg.install_if = v.strip("[]").split()
            elif k in "tSIk":
                attr = {"t": "build_time", "S": "size", "I": "installed_size", "k": "provider_priority"}[k]
                setattr(pkg, attr, int(v) if v else 0)
            elif k == "C":
                pkg.checksum = v
        records.append(rec)
    return records


def q1(sha1_hex: str) -> str:
    return "Q1" + base64.b64encode(bytes.fromhex(sha1_hex)).decode() if sha1_hex else ""


def scripts_tar(entries: list[tuple[str, Header, bytes]]) -> bytes:
    """`scripts.tar`: one entry per stored script, then the end-of-archive blocks."""
    out = b""
    for name, h, data in entries:
        h.name = name
        h.size = len(data)
        out += encode_header(h) + data + padding(len(data))
    return out + END_OF_ARCHIVE


def triggers(lines: list[tuple[str, list[str]]]) -> bytes:
    """`triggers`: `Q1<control sha1> <path> <path>…` per package that declares triggers."""
    return "".join(f"{checksum} {' '.join(paths)}\n" for checksum, paths in lines if paths).encode()
