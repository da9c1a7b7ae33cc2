"""Automatic depends and provides from a package's files (melange.md §3.5).

Generators, in melange's order: shared objects (PT_INTERP, DT_NEEDED, DT_SONAME, `.so`
symlinks), commands in bin dirs, pkg-config files, python site-packages, shebangs. Each
package is scanned on its own; its "relatives" (the origin and sibling subpackages) are
consulted for library dirs from `ld.so.conf.d` and for `.so` symlink targets.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection, DynamicSegment
from elftools.elf.elffile import ELFFile

from distroless.melange.schema import PackageOptions

LIB_DIRS = ("lib", "usr/lib", "lib64", "usr/lib64")
CMD_DIRS = ("bin", "sbin", "usr/bin", "usr/sbin")
PC_DIRS = ("usr/lib/pkgconfig", "usr/lib64/pkgconfig", "usr/share/pkgconfig",
           "usr/local/lib/pkgconfig", "usr/local/share/pkgconfig")
SHEBANG_DIRS = ("usr/bin/", "usr/local/bin/", "usr/local/sbin/")
SHEBANG_IGNORED = frozenset({"sh", "python", "python3", "awk", "luajit"})
_SITE_PACKAGES = re.compile(r"(?:^|/)python(\d+\.\d+)/site-packages(?:/|$)")
_LIBVER = re.compile(r"^[0-9.]+$")


@dataclass(frozen=True, slots=True)
class ScaResult:
    depends: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    vendored: tuple[str, ...] = ()  # provides of libraries outside the lib dirs


@dataclass(frozen=True, slots=True)
class ElfInfo:
    interp: str = ""
    needed: tuple[str, ...] = ()
    sonames: tuple[str, ...] = ()


def _walk(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    """(relative path, lstat) of every entry, sorted for stable output: os.walk's top-down order
    (a directory's entries, then each subdirectory in name order), with an explicit stack so a
    tree of any depth is fine (os.walk recurses before Python 3.12). Symlinks are not followed."""
    stack = [root]
    while stack:
        top = stack.pop()
        try:
            names = sorted(os.listdir(top))
        except OSError:
            continue  # as os.walk: an unreadable directory is skipped
        subdirs = []
        for name in names:
            path = top / name
            st = path.lstat()
            yield str(path.relative_to(root)), st
            if stat.S_ISDIR(st.st_mode):
                subdirs.append(path)
        stack.extend(reversed(subdirs))


def read_elf(path: Path) -> ElfInfo | None:
    """Interpreter, DT_NEEDED and DT_SONAME of an ELF file; None if it is not ELF."""
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"\x7fELF":
                return None
            f.seek(0)
            elf = ELFFile(f)
            interp = ""
            dynamic: DynamicSection | DynamicSegment | None = None
            for seg in elf.iter_segments():
                if seg["p_type"] == "PT_INTERP":
                    interp = seg.get_interp_name()
                elif isinstance(seg, DynamicSegment):
                    dynamic = seg
            for sec in elf.iter_sections():
                if isinstance(sec, DynamicSection):
                    dynamic = sec  # prefer the section: it carries the string table reliably
                    break
            needed: list[str] = []
            sonames: list[str] = []
            if dynamic is not None:
                for tag in dynamic.iter_tags():
                    if tag.entry.d_tag == "DT_NEEDED":
                        needed.append(tag.needed)
                    elif tag.entry.d_tag == "DT_SONAME":
                        sonames.append(tag.soname)
            return ElfInfo(interp, tuple(needed), tuple(sonames))
    except (ELFError, OSError, ValueError, KeyError, AttributeError):
        return None  # truncated or exotic ELF: melange skips what it cannot parse too


def libver(soname: str) -> str:
    """The part after `.so.` when it is only digits and dots, else "0"."""
    _, sep, tail = soname.partition(".so.")
    return tail if sep and _LIBVER.match(tail) else "0"


def ld_so_conf_dirs(roots: Iterable[Path]) -> list[str]:
    """Absolute dirs listed in `etc/ld.so.conf.d/*.conf` of any relative, made relative."""
    out: list[str] = []
    for root in roots:
        conf = root / "etc" / "ld.so.conf.d"
        if not conf.is_dir():
            continue
        for f in sorted(conf.glob("*.conf")):
            for line in f.read_text(errors="replace").splitlines():
                line = line.split("#", 1)[0].strip()
                if line.startswith("/"):
                    out.append(posixpath.normpath(line).lstrip("/"))
    return out


def _in_dirs(rel: str, dirs: Sequence[str]) -> bool:
    return posixpath.dirname(rel) in dirs


def _symlink_target_soname(root: Path, rel: str, relatives: Sequence[Path]) -> list[str]:
    """SONAMEs of the real file a `*.so*` symlink points at, looked up in every relative."""
    link = os.readlink(root / rel)
    target = posixpath.normpath(posixpath.join("/" + posixpath.dirname(rel), link)).lstrip("/")
    for other in (root, *relatives):
        candidate = other / target
        if candidate.is_file() and not candidate.is_symlink():
            info = read_elf(candidate)
            if info is not None:
                return list(info.sonames)
    return []


def shebang_interpreter(head: bytes) -> str:
    """The command a `#!` line runs (`/usr/bin/env [-S] X` means X); "" if none."""
    if not head.startswith(b"#!"):
        return ""
    line = head[2:].split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    words = line.split()
    if not words:
        return ""
    cmd = posixpath.basename(words[0])
    if cmd == "env":
        rest = [w for w in words[1:] if w != "-S"]
        rest = [w for w in rest if "=" not in w]
        return posixpath.basename(rest[0]) if rest else ""
    return cmd


def parse_pc(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """(variables, fields) of a pkg-config file, with `${var}` expanded."""
    variables: dict[str, str] = {}
    fields: dict[str, str] = {}

    def expand(value: str) -> str:
        for _ in range(10):  # nested references, bounded
            new = re.sub(r"\$\{([^}]+)\}", lambda m: variables.get(m.group(1), ""), value)
            if new == value:
                break
            value = new
        return value

    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.match(r"^([A-Za-z0-9_.]+)\s*([:=])\s*(.*)$", line)
        if not m:
            continue
        key, sep, value = m.groups()
        if sep == "=":
            variables[key] = expand(value)
        else:
            fields[key] = expand(value)
    return variables, fields


def pc_requires(value: str) -> list[str]:
    """Module names of a Requires field: `a >= 1, b c` -> a, b, c."""
    out: list[str] = []
    tokens = value.replace(",", " ").split()
    skip = False
    for tok in tokens:
        if skip:
            skip = False
            continue
        if tok in ("=", "<", ">", "<=", ">=", "!="):
            skip = True
            continue
        out.append(tok)
    return out


def analyze(root: Path, full_version: str, *, relatives: Sequence[Path] = (),
            options: PackageOptions | None = None, runtime: Sequence[str] = ()) -> ScaResult:
    """The generated depends and provides of the package tree at `root`."""
    root = Path(root)
    lib_dirs = list(LIB_DIRS) + ld_so_conf_dirs((root, *relatives))
    depends: set[str] = set()
    provides: set[str] = set()
    vendored: set[str] = set()
    for rel, st in _walk(root):
        path = root / rel
        base = posixpath.basename(rel)
        is_link = stat.S_ISLNK(st.st_mode)
        if is_link:
            if ".so" in base:
                depends.update(f"so:{s}" for s in _symlink_target_soname(root, rel, relatives))
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        # 1. shared objects
        info = read_elf(path)
        if info is not None:
            if info.interp:
                name = posixpath.basename(info.interp)
                if name.startswith("ld-musl"):
                    name = name.replace("ld-musl", "libc.musl", 1)
                depends.add(f"so:{name}")
            depends.update(f"so:{n}" for n in info.needed if ".so." in n)
            if not info.interp or ".so." in base or base.endswith(".so"):
                for soname in info.sonames:
                    entries = (f"so:{soname}={libver(soname)}", f"so-ver:{soname}={full_version}")
                    (provides if _in_dirs(rel, lib_dirs) else vendored).update(entries)
        # 2. commands
        if st.st_mode & 0o555 == 0o555 and _in_dirs(rel, CMD_DIRS):
            provides.add(f"cmd:{base}={full_version}")
        # 4. pkg-config
        if base.endswith(".pc"):
            if _in_dirs(rel, PC_DIRS):
                _, fields = parse_pc(path.read_text(errors="replace"))
                provides.add(f"pc:{base[:-3]}={full_version}")
                for key in ("Requires", "Requires.private", "Requires.internal"):
                    depends.update(f"pc:{m}" for m in pc_requires(fields.get(key, "")))
            else:
                vendored.add(f"pc:{base[:-3]}={full_version}")
        # 8. shebangs
        if any(rel.startswith(d) for d in SHEBANG_DIRS):
            with open(path, "rb") as f:
                interp = shebang_interpreter(f.read(80))
            if interp and interp not in SHEBANG_IGNORED:
                depends.add(f"cmd:{interp}")
    # 6. python: a site-packages dir needs that python, unless a python dep is configured
    if not any(d.startswith("python") for d in runtime):
        for rel, st in _walk(root):
            m = _SITE_PACKAGES.search(rel) if stat.S_ISDIR(st.st_mode) else None
            if m:
                depends.add(f"python-{m.group(1)}-base")
    return finish(depends, provides, vendored, options)


def finish(depends: set[str], provides: set[str], vendored: set[str],
           options: PackageOptions | None) -> ScaResult:
    """The package options, then sorted and de-duplicated lists."""
    opts = options or PackageOptions()
    if opts.no_commands:
        depends = {d for d in depends if not d.startswith("cmd:")}
        provides = {p for p in provides if not p.startswith("cmd:")}
    if opts.no_depends:
        depends = set()
    if opts.no_provides:
        provides = set()
    return ScaResult(tuple(sorted(depends)), tuple(sorted(provides)), tuple(sorted(vendored)))


def _name(entry: str) -> str:
    """`so:libc.so.6=6` / `foo>=1` -> the name part."""
    return re.split(r"[=<>~]", entry, maxsplit=1)[0]


def merge_metadata(configured_depends: Sequence[str], configured_provides: Sequence[str],
                   sca: ScaResult) -> tuple[list[str], list[str]]:
    """melange's package.go rules: generated depends satisfied by vendored provides go; the
    rest merge with the configured ones; a depend named like one of the package's own
    provides goes (configured ones too); both lists sorted and unique."""
    vendored = {_name(v) for v in sca.vendored}
    generated = [d for d in sca.depends if _name(d) not in vendored]
    provides = sorted(set(configured_provides) | set(sca.provides))
    own = {_name(p) for p in provides}
    depends = sorted({d for d in (*configured_depends, *generated) if _name(d) not in own})
    return depends, provides
