"""melange's package linters (`pkg/linter`): names, defaults and meaning as melange has them.

A linter looks at one package's files. `require` linters fail the build (or `package lint`),
`warn` linters print, `off` ones run only when asked. Not every melange linter is here: the
ones listed in `NOT_IMPLEMENTED` are accepted in `--lint-require/--lint-warn` and reported as
skipped, never silently treated as passing. `license` is ours (melange has a separate
`license-check` command): a package without a license.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from distroless.apk import package as apkpackage
from distroless.errors import ConfigError

ELF_READ_CAP = 256 << 20  # larger binaries are not opened by the strip linter (reported as skipped)
SBOM_DIR = "var/lib/db/sbom/"


@dataclass(frozen=True, slots=True)
class LintFile:
    path: str  # relative, no leading "./" or "/"
    type: str  # reg, dir, sym, hard, …
    mode: int
    data: bytes | None = None  # ELF candidates only (executable or .so/.a), up to ELF_READ_CAP


@dataclass(frozen=True, slots=True)
class Finding:
    linter: str
    message: str
    paths: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LintTarget:
    name: str
    license: str
    files: tuple[LintFile, ...]
    version: str = ""
    arch: str = ""


Check = Callable[[LintTarget], Finding | None]


def _paths(target: LintTarget, linter: str, pred: Callable[[LintFile], bool], message: str) -> Finding | None:
    hits = tuple(f.path for f in target.files if pred(f))
    return Finding(linter, message.format(name=target.name, n=len(hits), s="" if len(hits) == 1 else "s"),
                   hits) if hits else None


def _not_dir(f: LintFile) -> bool:
    return f.type != "dir"


def lint_dev(t: LintTarget) -> Finding | None:
    return _paths(t, "dev", lambda f: _not_dir(f) and f.path.startswith("dev/"), "{name} writes to /dev")


def lint_setuidgid(t: LintTarget) -> Finding | None:
    return _paths(t, "setuidgid", lambda f: f.type == "reg" and f.mode & 0o7000 != 0,
                  "{name} contains {n} file{s} with setuid, setgid or sticky bits")


def lint_worldwrite(t: LintTarget) -> Finding | None:
    return _paths(t, "worldwrite", lambda f: f.type == "reg" and f.mode & 0o002 != 0,
                  "{name} contains {n} world-writeable file{s}")


_TEMP = re.compile(r"^(var/)?tmp/")


def lint_tempdir(t: LintTarget) -> Finding | None:
    def bad(f: LintFile) -> bool:
        return (_not_dir(f) and bool(_TEMP.match(f.path))) or f.path.startswith("var/run/") or \
            (_not_dir(f) and f.path.startswith("run/"))
    return _paths(t, "tempdir", bad, "{name} contains files or directories in temporary directories")


def lint_varempty(t: LintTarget) -> Finding | None:
    return _paths(t, "varempty", lambda f: _not_dir(f) and f.path.startswith("var/empty/"),
                  "{name} contains files in /var/empty")


def lint_infodir(t: LintTarget) -> Finding | None:
    return _paths(t, "infodir", lambda f: f.path == "usr/share/info/dir", "{name} contains /usr/share/info/dir")


_USRMERGE = ("sbin", "bin", "usr/sbin", "lib", "lib64")


def lint_usrmerge(t: LintTarget) -> Finding | None:
    return _paths(t, "usrmerge", lambda f: f.type in ("dir", "reg") and any(
        f.path == d or f.path.startswith(d + "/") for d in _USRMERGE),
        "{name} has {n} path{s} in /bin, /sbin, /usr/sbin, /lib or /lib64 (usrmerge)")


def lint_la_files(t: LintTarget) -> Finding | None:
    return _paths(t, "libtool/la-files", lambda f: _not_dir(f) and f.path.endswith(".la"),
                  "{name} contains {n} libtool archive (.la) file{s}")


def _compat(t: LintTarget) -> bool:
    return t.name.endswith("-compat")


def lint_usrlocal(t: LintTarget) -> Finding | None:
    if _compat(t):
        return None
    return _paths(t, "usrlocal", lambda f: _not_dir(f) and f.path.startswith("usr/local/"),
                  "{name} contains /usr/local path in non-compat package")


def lint_opt(t: LintTarget) -> Finding | None:
    if _compat(t):
        return None
    return _paths(t, "opt", lambda f: _not_dir(f) and f.path.startswith("opt/"),
                  "{name} contains /opt path in non-compat package")


def lint_srv(t: LintTarget) -> Finding | None:
    if _compat(t):
        return None
    return _paths(t, "srv", lambda f: _not_dir(f) and f.path.startswith("srv/"),
                  "{name} contains /srv path in non-compat package")


def lint_object(t: LintTarget) -> Finding | None:
    return _paths(t, "object", lambda f: _not_dir(f) and f.path.endswith(".o"),
                  "{name} contains {n} intermediate object file{s}")


def lint_staticarchive(t: LintTarget) -> Finding | None:
    """Static archives belong in -dev or -static packages (melange's rule for dev files)."""
    if t.name.endswith("-dev") or t.name.endswith("-static"):
        return None
    return _paths(t, "staticarchive", lambda f: _not_dir(f) and f.path.endswith(".a"),
                  "{name} contains {n} static archive{s}; they belong in a -dev or -static package")


def _has_debug_sections(data: bytes) -> bool:
    try:
        elf = ELFFile(io.BytesIO(data))
        return any(s.name.startswith((".debug", ".zdebug")) for s in elf.iter_sections())
    except (ELFError, ValueError, KeyError, IndexError):
        return False


def lint_strip(t: LintTarget) -> Finding | None:
    """ELF files with debug sections (melange looks up `.debug`/`.zdebug`; gcc -g writes
    `.debug_*`, so any section with those prefixes counts)."""
    hits = tuple(f.path for f in t.files
                 if f.data is not None and f.data[:4] == b"\x7fELF" and _has_debug_sections(f.data))
    return Finding("strip", f"{t.name} contains {len(hits)} unstripped binar{'y' if len(hits) == 1 else 'ies'}",
                   hits) if hits else None


def lint_empty(t: LintTarget) -> Finding | None:
    if any(_not_dir(f) and not f.path.startswith(SBOM_DIR) for f in t.files):
        return None
    return Finding("empty", "package is empty but no-provides is not set")


def lint_license(t: LintTarget) -> Finding | None:
    if t.license.strip() and t.license.strip() != "NOASSERTION":
        return None
    return Finding("license", f"{t.name} has no license (set package.copyright[].license)")


@dataclass(frozen=True, slots=True)
class Linter:
    check: Check
    default: str  # require | warn | off
    explain: str


LINTERS: dict[str, Linter] = {
    "dev": Linter(lint_dev, "require", "remove any files in /dev (create device nodes with udev)"),
    "setuidgid": Linter(lint_setuidgid, "require", "unset the setuid/setgid bits, or disable this linter"),
    "tempdir": Linter(lint_tempdir, "require", "remove files in temporary directories in the pipeline"),
    "varempty": Linter(lint_varempty, "require", "remove any files in /var/empty in the pipeline"),
    "worldwrite": Linter(lint_worldwrite, "require", "change the permissions of world-writeable files"),
    "infodir": Linter(lint_infodir, "require", "remove /usr/share/info/dir (run split/infodir)"),
    "usrmerge": Linter(lint_usrmerge, "require", "move files to /usr/bin and /usr/lib"),
    "libtool/la-files": Linter(lint_la_files, "require", "remove libtool archive (.la) files in the pipeline"),
    "opt": Linter(lint_opt, "warn", "this package should be a -compat package"),
    "object": Linter(lint_object, "warn", "remove intermediate object (.o) files"),
    "srv": Linter(lint_srv, "warn", "this package should be a -compat package"),
    "usrlocal": Linter(lint_usrlocal, "warn", "this package should be a -compat package"),
    "strip": Linter(lint_strip, "warn", "strip all binaries in the pipeline (uses: strip)"),
    "staticarchive": Linter(lint_staticarchive, "warn", "move static archives to a -dev or -static package"),
    "license": Linter(lint_license, "warn", "declare the package's license (distroless's linter)"),
    "empty": Linter(lint_empty, "off", "check the build, or disable this linter if the package is meant to be empty"),
}
# melange linters accepted by name but not run here
NOT_IMPLEMENTED = ("documentation", "maninfo", "sbom", "python/docs", "python/multiple", "python/test", "pkgconf",
                   "lddcheck", "cudaruntimelib", "dll", "dylib", "nonlinux", "unsupportedarch", "binaryarch",
                   "duplicate")


def default_require() -> tuple[str, ...]:
    return tuple(sorted(n for n, l in LINTERS.items() if l.default == "require"))


def default_warn() -> tuple[str, ...]:
    return tuple(sorted(n for n, l in LINTERS.items() if l.default == "warn"))


def check_names(names: Iterable[str], flag: str) -> tuple[str, ...]:
    out = []
    for n in names:
        if n not in LINTERS and n not in NOT_IMPLEMENTED:
            raise ConfigError(f"{flag}: unknown linter {n!r} (known: {', '.join(sorted(LINTERS))})")
        out.append(n)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class LintResult:
    errors: tuple[Finding, ...]
    warnings: tuple[Finding, ...]
    skipped: tuple[str, ...]  # asked for but not implemented


def lint(target: LintTarget, require: Sequence[str], warn: Sequence[str], disabled: Sequence[str] = ()) -> LintResult:
    """`disabled` (a package's checks.disabled) moves a linter from require to warn, as in melange."""
    errors, warnings, skipped = [], [], []
    for names, sink in ((require, errors), (warn, warnings)):
        for name in names:
            if name in NOT_IMPLEMENTED:
                skipped.append(name)
                continue
            finding = LINTERS[name].check(target)
            if finding is not None:
                (warnings if name in disabled else sink).append(finding)
    return LintResult(tuple(errors), tuple(warnings), tuple(dict.fromkeys(skipped)))


def _wants_data(name: str, mode: int) -> bool:
    base = name.rsplit("/", 1)[-1]
    return bool(mode & 0o111) or bool(re.search(r"\.(a|so|dylib)(\..*)?$", base))


def target_of_apk(path: Path) -> LintTarget:
    """A package's files, read (and verified) from the .apk; ELF candidates' contents kept."""
    files: list[LintFile] = []

    def on_entry(entry: apkpackage.Entry, stream) -> None:  # noqa: ANN001
        name = entry.name[2:] if entry.name.startswith("./") else entry.name.lstrip("/")
        name = name.rstrip("/")
        data = None
        if entry.type == "reg" and stream is not None and _wants_data(name, entry.mode) and entry.size <= ELF_READ_CAP:
            data = stream.read()
        files.append(LintFile(name, entry.type, entry.mode, data))

    apk = apkpackage.read(path, on_entry=on_entry)
    return LintTarget(apk.package.name, apk.package.license, tuple(files), apk.package.version, apk.package.arch)


def results_document(package: str, result: LintResult) -> dict:
    """melange's persisted shape (`PackageLintResults`): findings by linter name."""
    findings: dict[str, list[dict]] = {}
    for f in result.errors + result.warnings:
        entry: dict = {"message": f.message, "explain": LINTERS[f.linter].explain}
        if f.paths:
            entry["details"] = {"paths": list(f.paths)}
        findings.setdefault(f.linter, []).append(entry)
    return {"package_name": package, "findings": findings}


def results_filename(name: str, version: str) -> str:
    """`lint-<name>-<version>-r<epoch>.json`; names and versions never contain a path separator."""
    for part in (name, version):
        if "/" in part or ".." in part or not part:
            raise ConfigError(f"lint results: invalid package name or version {part!r}")
    return f"lint-{name}-{version}.json"


def render(path: str, result: LintResult) -> list[str]:
    lines = []
    for kind, findings in (("error", result.errors), ("warning", result.warnings)):
        for f in findings:
            where = f": {', '.join(f.paths[:10])}{' …' if len(f.paths) > 10 else ''}" if f.paths else ""
            lines.append(f"{path}: {kind}: [{f.linter}] {f.message}{where} ({LINTERS[f.linter].explain})")
    return lines
