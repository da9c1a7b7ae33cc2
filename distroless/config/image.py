"""Loading apko's image configuration as `apko build` does: include merging, CLI overrides,
Validate's defaults, the build date, the lock file's config checksum and `/etc/apko.json`.

The records live in `model`, the strict YAML decoding in `reader`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from distroless.fsutil import CONFIG_CAP, read_regular
from distroless.errors import ConfigError
from distroless.config.model import (
    ALL_ARCHS,
    Accounts,
    ImageConfig,
    RuntimeKey,
    _frozen_map,
    parse_architectures,
)
from distroless.config.reader import (
    _check_baseimage,
    _trim_repositories,
    FORMATS,
    UNSUPPORTED_FORMATS,
    _ANNOTATION_KEY_RE,
    parse_image_config,
)
from distroless.config.positions import Locator


Parse = Callable[[bytes, str], tuple[ImageConfig, Locator]]  # one file's bytes and shown name → records

# --- include merging (apko's MergeInto: the included file is the base) ----------------------

def merge_into(base: ImageConfig, target: ImageConfig) -> ImageConfig:
    """`target` (the including file) wins for single values; lists are base-first
    concatenations; maps take the target's keys over the base's. `vcs-url`, `include` and
    `baseimage` are the target's own (apko does not merge them)."""
    b, t = base.contents, target.contents
    contents = replace(
        t,
        build_repositories=b.build_repositories + t.build_repositories,
        runtime_repositories=b.runtime_repositories + t.runtime_repositories,
        repositories=b.repositories + t.repositories,
        keyring=b.keyring + t.keyring,
        runtime_keyring=b.runtime_keyring + t.runtime_keyring,
        packages=b.packages + t.packages,
    )
    accounts = Accounts(run_as=target.accounts.run_as or base.accounts.run_as,
                        users=base.accounts.users + target.accounts.users,
                        groups=base.accounts.groups + target.accounts.groups)
    return replace(
        target,
        contents=contents,
        entrypoint=base.entrypoint if target.entrypoint.is_zero() else target.entrypoint,
        cmd=target.cmd or base.cmd,
        stop_signal=target.stop_signal or base.stop_signal,
        work_dir=target.work_dir or base.work_dir,
        accounts=accounts,
        archs=target.archs or base.archs,
        environment=_frozen_map({**base.environment, **target.environment}),
        paths=base.paths + target.paths,
        annotations=_frozen_map({**base.annotations, **target.annotations}),
        volumes=base.volumes + target.volumes,
        layering=target.layering if target.layering is not None else base.layering,
        format=target.format or base.format,
        certificates=target.certificates if target.certificates is not None else base.certificates,
    )


# --- CLI overrides ------------------------------------------------------------------------

def split_flag_values(values: Iterable[str]) -> tuple[str, ...]:
    """cobra's StringSlice: every occurrence of the flag is itself a CSV list."""
    import csv

    out: list[str] = []
    for value in values:
        if value:
            for row in csv.reader([value]):
                out.extend(row)
    return tuple(out)


def parse_annotation_flags(values: Iterable[str]) -> dict[str, str]:
    """`--annotations key:value` (split at the first colon)."""
    out: dict[str, str] = {}
    for raw in split_flag_values(values):
        key, sep, value = raw.partition(":")
        if not sep:
            raise ConfigError(f"--annotations {raw!r}: expected key:value")
        if not _ANNOTATION_KEY_RE.match(key):
            raise ConfigError(f"--annotations {raw!r}: key must match {_ANNOTATION_KEY_RE.pattern}")
        out[key] = value
    return out


_RFC3339_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def parse_build_date(value: str) -> int:
    """`--build-date` (Go's time.RFC3339 layout) as Unix seconds; "" is the epoch."""
    if not value:
        return 0
    m = _RFC3339_RE.match(value)
    if not m:
        raise ConfigError(f"--build-date {value!r}: not an RFC 3339 time (e.g. 2024-01-31T12:00:00Z)")
    import datetime as dt

    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    zone = m.group(8)
    try:
        if zone == "Z":
            tz = dt.timezone.utc
        else:
            hours, minutes = int(zone[1:3]), int(zone[4:6])
            if hours > 23 or minutes > 59:
                raise ValueError("time zone offset out of range")
            offset = dt.timedelta(hours=hours, minutes=minutes)
            tz = dt.timezone(-offset if zone[0] == "-" else offset)
        stamp = dt.datetime(year, month, day, hour, minute, second, tzinfo=tz)
    except ValueError as exc:
        raise ConfigError(f"--build-date {value!r}: {exc}") from None
    return math.floor(stamp.timestamp())


def resolve_build_date(build_date: str, source_date_epoch: int | None) -> tuple[int, bool]:
    """(seconds, pinned): SOURCE_DATE_EPOCH (parsed by `distroless.epoch`; None when unset)
    overrides --build-date and pins the build date epoch (package build dates no longer raise
    it). A malformed --build-date is an error even then, as in apko, which parses the flag first."""
    epoch = parse_build_date(build_date)
    if source_date_epoch is not None:
        return source_date_epoch, True
    return epoch, False


@dataclass(frozen=True, slots=True)
class Overrides:
    """apko's CLI flags that change the configuration, as given (each may be a CSV list)."""

    archs: tuple[str, ...] = ()                    # --arch
    keyring_append: tuple[str, ...] = ()           # -k/--keyring-append
    build_repository_append: tuple[str, ...] = ()  # -b/--build-repository-append
    repository_append: tuple[str, ...] = ()        # -r/--repository-append (build and runtime)
    package_append: tuple[str, ...] = ()           # -p/--package-append
    annotations: tuple[str, ...] = ()              # --annotations key:value
    build_date: str = ""                           # --build-date (RFC 3339)
    format: str = ""                               # --format
    include_paths: tuple[str, ...] = ()            # --include-paths
    source_date_epoch: int | None = None           # SOURCE_DATE_EPOCH (see distroless.epoch), None when unset


# --- loading ------------------------------------------------------------------------------

_MAX_INCLUDE_DEPTH = 64


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """A configuration as a build sees it: includes merged, overrides applied, validated."""

    config: ImageConfig
    files: tuple[Path, ...]       # the main file, then each include, in load order
    checksum: str                 # the lock file's config checksum: "sha256-<base64>"
    build_date_epoch: int         # seconds; 0 unless --build-date or SOURCE_DATE_EPOCH
    source_date_epoch_pinned: bool
    extra_keyring: tuple[str, ...] = ()
    extra_build_repositories: tuple[str, ...] = ()
    extra_repositories: tuple[str, ...] = ()
    extra_packages: tuple[str, ...] = ()

    def build_repositories(self) -> tuple[str, ...]:
        """What the build resolves from: sorted set of build + main repositories + -b + -r."""
        c = self.config.contents
        return tuple(sorted(set(c.build_repositories + c.repositories
                                + self.extra_build_repositories + self.extra_repositories)))

    def runtime_repositories(self) -> tuple[str, ...]:
        """What the image's /etc/apk/repositories ends up holding."""
        c = self.config.contents
        return tuple(sorted(set(c.repositories + c.runtime_repositories + self.extra_repositories)))

    def keyring(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.config.contents.keyring + self.extra_keyring)))

    def world(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.config.contents.packages + self.extra_packages)))


def _resolve_file(name: str, include_paths: tuple[str, ...], cwd: Path) -> tuple[str, Path] | None:
    """apko's ResolvePath: the path as given (relative to the working directory), else under
    each include path in turn. Returns (name to show, file)."""
    if (cwd / name).exists():
        return name, cwd / name
    for prefix in include_paths:
        joined = posixpath.normpath(posixpath.join(prefix, name.lstrip("/")))
        if (cwd / joined).exists():
            return joined, cwd / joined
    return None


def _load_chain(name: str, include_paths: tuple[str, ...], cwd: Path, hasher: Any,
                files: list[Path], chain: tuple[str, ...], origin: str, parse: Parse) -> ImageConfig:
    found = _resolve_file(name, include_paths, cwd)
    if found is None:
        where = f" (also looked under {', '.join(include_paths)})" if include_paths else ""
        raise ConfigError(f"{origin}{name}: no such file{where}")
    shown, file = found
    real = os.path.realpath(file)
    if real in chain:
        cycle = " -> ".join([os.path.basename(c) for c in chain] + [os.path.basename(real)])
        raise ConfigError(f"{origin}include cycle: {cycle}")
    if len(chain) >= _MAX_INCLUDE_DEPTH:
        raise ConfigError(f"{origin}includes nest deeper than {_MAX_INCLUDE_DEPTH} files")
    try:
        data = read_regular(file, CONFIG_CAP, "configuration file")
    except OSError as exc:
        raise ConfigError(f"{origin}{shown}: {exc.strerror or exc}") from None
    # The checksum covers each file's bytes before its include, as apko hashes while parsing.
    hasher.update(data)
    files.append(file)
    config, loc = parse(data, shown)
    if config.include:
        base = _load_chain(config.include, include_paths, cwd, hasher, files, chain + (real,),
                           f"{loc.where(('include',))}: ", parse)
        config = merge_into(base, config)
    config = _trim_repositories(config)
    _check_baseimage(config, loc)
    return config


def _check_merged(config: ImageConfig) -> None:
    seen: dict[str, RuntimeKey] = {}
    for key in config.contents.runtime_keyring:
        if key.name in seen:
            first = seen[key.name].origin
            where = f"{key.origin}: " if key.origin else ""
            also = f" (first at {first})" if first else ""
            raise ConfigError(f"{where}contents.runtime_keyring: duplicate runtime key name "
                              f"{key.name!r}{also}")
        seen[key.name] = key
    if config.format == "erofs" and config.multi_layer:
        raise ConfigError("format 'erofs' cannot be combined with layering")
    if config.contents.baseimage is not None and config.multi_layer:
        raise ConfigError("layering with a baseimage is unsupported")


def _apply_validate_defaults(config: ImageConfig) -> ImageConfig:
    """The mutations apko's Validate makes before /etc/apko.json is written."""
    users = tuple(u if u.homedir else replace(u, homedir=f"/home/{u.username}")
                  for u in config.accounts.users)
    config = replace(config, accounts=replace(config.accounts, users=users))
    if config.entrypoint.type == "service-bundle":
        config = replace(config,
                         entrypoint=replace(config.entrypoint, command="/bin/s6-svscan /sv"),
                         contents=replace(config.contents, packages=config.contents.packages + ("s6",)))
    return config


def config_checksum(chunks: Iterable[bytes]) -> str:
    """The lock file's `config.checksum`: sha256 over the raw bytes of the main file and then
    each included file, in load order, as "sha256-" + standard base64."""
    hasher = hashlib.sha256()
    for chunk in chunks:
        hasher.update(chunk)
    return "sha256-" + base64.b64encode(hasher.digest()).decode()


def load_image_config(path: str | os.PathLike[str], overrides: Overrides | None = None, *,
                      cwd: str | os.PathLike[str] | None = None, parse: Parse | None = None) -> LoadedConfig:
    """Load an apko image configuration as `apko build` does.

    Relative paths (the config itself and `include`) resolve against `cwd` (default: the
    process's), then against `overrides.include_paths`. The result has includes merged, the
    archs decided (--arch, else the config's, else all nine), CLI annotations and --format
    applied, and apko's Validate defaults filled in. -k/-b/-r/-p stay separate, as in apko,
    so that `/etc/apko.json` shows the configuration itself; see LoadedConfig's methods.
    `parse` reads one file's bytes (default `parse_image_config`; the front doors give the
    cached one, `store.parsedconfig`)."""
    ov = overrides or Overrides()
    base_dir = Path(cwd) if cwd is not None else Path.cwd()
    files: list[Path] = []
    hasher = hashlib.sha256()
    config = _load_chain(os.fspath(path), split_flag_values(ov.include_paths), base_dir, hasher,
                         files, (), "", parse or parse_image_config)

    return _finish(config, tuple(files), "sha256-" + base64.b64encode(hasher.digest()).decode(), ov)


def load_image_config_bytes(data: bytes, filename: str, overrides: Overrides | None = None) -> LoadedConfig:
    """A configuration held in memory (the BuildKit frontend reads it over the gateway), which
    therefore cannot `include` other files."""
    config, loc = parse_image_config(data, filename)
    if config.include:
        raise ConfigError(f"{loc.where(('include',))}: include needs files on disk; not available here")
    return _finish(config, (), config_checksum([data]), overrides or Overrides())


def _finish(config: ImageConfig, files: tuple[Path, ...], checksum: str, ov: Overrides) -> LoadedConfig:
    """What `apko build` does after reading the files: archs, CLI annotations and format, apko's
    Validate defaults, and the build date."""
    cli_archs = parse_architectures(split_flag_values(ov.archs))
    archs = cli_archs or config.archs or ALL_ARCHS
    annotations = {**config.annotations, **parse_annotation_flags(ov.annotations)}
    fmt = ov.format or config.format
    if fmt not in ("",) + FORMATS:
        raise ConfigError(f"--format {fmt!r}: valid formats: {', '.join(FORMATS)}")
    if fmt in UNSUPPORTED_FORMATS:
        raise ConfigError(f"--format {fmt!r}: {UNSUPPORTED_FORMATS[fmt]}")
    config = replace(config, archs=archs, annotations=_frozen_map(annotations), format=fmt)
    _check_merged(config)
    config = _apply_validate_defaults(config)

    epoch, pinned = resolve_build_date(ov.build_date, ov.source_date_epoch)
    return LoadedConfig(
        config=config, files=files, checksum=checksum,
        build_date_epoch=epoch, source_date_epoch_pinned=pinned,
        extra_keyring=split_flag_values(ov.keyring_append),
        extra_build_repositories=split_flag_values(ov.build_repository_append),
        extra_repositories=split_flag_values(ov.repository_append),
        extra_packages=split_flag_values(ov.package_append),
    )


# --- canonical JSON (/etc/apko.json) --------------------------------------------------------

def _put(out: dict[str, Any], key: str, value: Any) -> None:
    """Go's omitempty: skip "", 0, false, empty lists and maps (and None)."""
    if value is None or value == "" or value is False or (isinstance(value, (list, dict)) and not value):
        return
    if isinstance(value, int) and not isinstance(value, bool) and value == 0:
        return
    out[key] = value


def _sorted_map(m: Mapping[str, str] | None) -> dict[str, str]:
    return {k: m[k] for k in sorted(m, key=lambda s: s.encode())} if m else {}


def _named(name: str, content: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _put(out, "name", name)
    _put(out, "content", content)
    return out


def apko_json_dict(config: ImageConfig) -> dict[str, Any]:
    """The configuration as Go's encoding/json renders apko's structs: struct field order,
    omitempty, sorted map keys, and the non-pointer structs (contents, entrypoint, accounts)
    always present even when empty."""
    c = config.contents
    contents: dict[str, Any] = {}
    _put(contents, "build_repositories", list(c.build_repositories))
    _put(contents, "runtime_repositories", list(c.runtime_repositories))
    _put(contents, "repositories", list(c.repositories))
    _put(contents, "keyring", list(c.keyring))
    _put(contents, "runtime_keyring", [_named(k.name, k.content) for k in c.runtime_keyring])
    _put(contents, "packages", list(c.packages))
    if c.baseimage is not None:
        base: dict[str, Any] = {}
        _put(base, "image", c.baseimage.image)
        _put(base, "apkindex", c.baseimage.apkindex)
        contents["baseimage"] = base

    e = config.entrypoint
    entrypoint: dict[str, Any] = {}
    _put(entrypoint, "type", e.type)
    _put(entrypoint, "command", e.command)
    _put(entrypoint, "shell-fragment", e.shell_fragment)
    _put(entrypoint, "services", _sorted_map(e.services))

    accounts: dict[str, Any] = {}
    _put(accounts, "run-as", config.accounts.run_as)
    users = []
    for u in config.accounts.users:
        user: dict[str, Any] = {}
        _put(user, "username", u.username)
        _put(user, "uid", u.uid)
        if u.gid is not None:  # a pointer: omitempty drops only nil, so gid 0 is kept
            user["gid"] = u.gid
        _put(user, "shell", u.shell)
        _put(user, "homedir", u.homedir)
        users.append(user)
    _put(accounts, "users", users)
    groups = []
    for g in config.accounts.groups:
        group: dict[str, Any] = {}
        _put(group, "groupname", g.groupname)
        _put(group, "gid", g.gid)
        _put(group, "members", list(g.members))
        groups.append(group)
    _put(accounts, "groups", groups)

    out: dict[str, Any] = {"contents": contents, "entrypoint": entrypoint}
    _put(out, "cmd", config.cmd)
    _put(out, "stop-signal", config.stop_signal)
    _put(out, "work-dir", config.work_dir)
    out["accounts"] = accounts
    _put(out, "archs", list(config.archs))
    _put(out, "environment", _sorted_map(config.environment))
    paths = []
    for p in config.paths:
        item: dict[str, Any] = {}
        _put(item, "path", p.path)
        _put(item, "type", p.type)
        for key, owner in (("uid", p.uid), ("gid", p.gid)):
            if owner is not None:  # pointers: omitempty drops only nil, so an explicit 0 is kept
                item[key] = owner
        for key, value in (("permissions", p.permissions), ("source", p.source), ("recursive", p.recursive)):
            _put(item, key, value)
        paths.append(item)
    _put(out, "paths", paths)
    _put(out, "vcs-url", config.vcs_url)
    _put(out, "annotations", _sorted_map(config.annotations))
    _put(out, "include", config.include)
    _put(out, "volumes", list(config.volumes))
    if config.layering is not None:
        layering: dict[str, Any] = {}
        _put(layering, "strategy", config.layering.strategy)
        _put(layering, "budget", config.layering.budget)
        out["layering"] = layering
    _put(out, "format", config.format)
    if config.certificates is not None:
        certs: dict[str, Any] = {}
        _put(certs, "additional", [_named(x.name, x.content) for x in config.certificates.additional])
        _put(certs, "providers", list(config.certificates.providers))
        out["certificates"] = certs
    return out


_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_GO_HTML_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                    "\u2028": "\\u2028", "\u2029": "\\u2029"}
_GO_HTML_RE = re.compile("[<>&\u2028\u2029]")


def go_json(value: Any) -> str:
    """Compact JSON as Go's json.Encoder writes it (HTML-escaped, U+2028/9 escaped, invalid
    UTF-16 replaced by U+FFFD), with its trailing newline."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    text = _SURROGATE_RE.sub("\ufffd", text)
    return _GO_HTML_RE.sub(lambda m: _GO_HTML_ESCAPES[m.group()], text) + "\n"


def to_apko_json(config: ImageConfig) -> str:
    """The text of `/etc/apko.json` for this configuration (callers pass the per-arch locked
    config: full pinned package list, archs = [that arch], numeric run-as)."""
    return go_json(apko_json_dict(config))
