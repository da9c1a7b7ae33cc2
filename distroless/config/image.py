"""apko's image configuration (`ImageConfiguration`): records, strict loading, include merging,
CLI overrides, the canonical `/etc/apko.json` form and the lock file's config checksum.

Typing follows what Go's yaml.v3 does when it decodes into apko's structs, not a JSON schema:
any plain scalar fills a string field with its text (`run-as: 65532` is "65532", `cmd: 1.10`
stays "1.10"), integer fields read plain scalars with Go's `ParseInt(s, 0)` after dropping `_`
(so `permissions: 0755` is 0o755, as in apko, although YAML 1.2 itself says decimal 755), and
boolean fields also take yaml.v3's YAML 1.1 spellings (`yes`, `on`, ...).
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import difflib
import hashlib
import json
import math
import os
import platform
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from distroless.config.yaml12 import Locator, Mark, NodePath, load as load_yaml
from distroless.errors import ConfigError

# --- architectures --------------------------------------------------------------------------

# apko's AllArchs, in its own (not sorted) order: what gets built when neither --arch nor
# `archs` says otherwise, and what `--arch all` means.
ALL_ARCHS: tuple[str, ...] = (
    "386", "amd64", "arm64", "arm/v6", "arm/v7", "loong64", "ppc64le", "riscv64", "s390x",
)
_ARCH_ALIASES = {
    "x86": "386", "x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
    "armhf": "arm/v6", "armv7": "arm/v7", "loong64": "loong64", "loongarch64": "loong64",
}
_ARCH_TO_APK = {
    "386": "x86", "amd64": "x86_64", "arm64": "aarch64", "arm/v6": "armhf", "arm/v7": "armv7",
    "loong64": "loongarch64",
}
# platform.machine() spellings -> Go's runtime.GOARCH, which is what apko's `host` means.
_MACHINE_TO_GOARCH = {
    "x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "i386": "386",
    "i486": "386", "i586": "386", "i686": "386", "x86": "386", "armv6l": "arm", "armv7l": "arm",
    "armv8l": "arm", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64",
    "loongarch64": "loong64",
}


def parse_architecture(name: str) -> str:
    """apko's ParseArchitecture: apk spellings become OCI ones; unknown names pass through."""
    return _ARCH_ALIASES.get(name, name)


def arch_to_apk(arch: str) -> str:
    """The apk spelling (`x86_64`, `aarch64`, `armhf`, ...) of an architecture."""
    arch = parse_architecture(arch)
    return _ARCH_TO_APK.get(arch, arch)


def host_architecture() -> str:
    machine = platform.machine()
    return parse_architecture(_MACHINE_TO_GOARCH.get(machine.lower(), machine.lower()))


def parse_architectures(values: Iterable[str]) -> tuple[str, ...]:
    """apko's ParseArchitectures (the --arch flag): a lone `all` is every arch, a lone `host`
    the running machine's; otherwise normalise, de-duplicate and sort bytewise."""
    names = [v for v in values if v]
    if names == ["all"]:
        return ALL_ARCHS
    if names == ["host"]:
        names = [host_architecture()]
    return tuple(sorted({parse_architecture(n) for n in names}, key=lambda s: s.encode()))


# --- records --------------------------------------------------------------------------------

StrMap = Mapping[str, str]
_EMPTY_MAP: StrMap = MappingProxyType({})


def _frozen_map(items: Mapping[str, str]) -> StrMap:
    return MappingProxyType(dict(items))


@dataclass(frozen=True, slots=True)
class BaseImage:
    image: str = ""
    apkindex: str = ""


@dataclass(frozen=True, slots=True)
class RuntimeKey:
    """An inline public key written to /etc/apk/keys/<name> after the build."""

    name: str
    content: str
    origin: Mark | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Contents:
    build_repositories: tuple[str, ...] = ()
    runtime_repositories: tuple[str, ...] = ()
    repositories: tuple[str, ...] = ()
    keyring: tuple[str, ...] = ()
    runtime_keyring: tuple[RuntimeKey, ...] = ()
    packages: tuple[str, ...] = ()
    baseimage: BaseImage | None = None


@dataclass(frozen=True, slots=True)
class Entrypoint:
    type: str = ""
    command: str = ""
    shell_fragment: str = ""
    services: StrMap | None = None  # None = absent; an explicit `{}` still counts as set

    def is_zero(self) -> bool:
        return not (self.type or self.command or self.shell_fragment) and self.services is None


@dataclass(frozen=True, slots=True)
class User:
    username: str = ""
    uid: int = 0
    gid: int | None = None  # None: the user's primary group id is its uid
    shell: str = ""
    homedir: str = ""

    @property
    def primary_gid(self) -> int:
        return self.uid if self.gid is None else self.gid

    @property
    def login_shell(self) -> str:
        return self.shell or "/bin/sh"


@dataclass(frozen=True, slots=True)
class Group:
    groupname: str = ""
    gid: int = 0
    members: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Accounts:
    run_as: str = ""
    users: tuple[User, ...] = ()
    groups: tuple[Group, ...] = ()


PATH_TYPES = ("directory", "empty-file", "hardlink", "symlink", "permissions")


@dataclass(frozen=True, slots=True)
class PathMutation:
    path: str = ""
    type: str = ""
    uid: int = 0
    gid: int = 0
    permissions: int = 0  # apko chmods to this even when omitted, i.e. to 0000
    source: str = ""
    recursive: bool = False


@dataclass(frozen=True, slots=True)
class Layering:
    strategy: str = ""
    budget: int = 0

    def is_empty(self) -> bool:
        return not self.strategy and not self.budget


@dataclass(frozen=True, slots=True)
class Certificate:
    name: str
    content: str


@dataclass(frozen=True, slots=True)
class Certificates:
    additional: tuple[Certificate, ...] = ()
    providers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """One apko image configuration. Maps are read-only; records compare by value."""

    contents: Contents = Contents()
    entrypoint: Entrypoint = Entrypoint()
    cmd: str = ""
    stop_signal: str = ""
    work_dir: str = ""
    accounts: Accounts = Accounts()
    archs: tuple[str, ...] = ()
    environment: StrMap = field(default_factory=lambda: _EMPTY_MAP)
    paths: tuple[PathMutation, ...] = ()
    vcs_url: str = ""
    annotations: StrMap = field(default_factory=lambda: _EMPTY_MAP)
    include: str = ""
    volumes: tuple[str, ...] = ()
    layering: Layering | None = None
    format: str = ""
    certificates: Certificates | None = None

    @property
    def layer_format(self) -> str:
        return self.format or "tar"

    @property
    def multi_layer(self) -> bool:
        # `layering: {}` behaves like no layering at all.
        return self.layering is not None and not self.layering.is_empty()


DEFAULT_ENVIRONMENT: StrMap = MappingProxyType({
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/bin:/usr/sbin:/sbin:/bin",
    "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt",
})


def image_environment(config: ImageConfig) -> dict[str, str]:
    """The environment of the OCI image config: the configured one plus apko's defaults for
    the keys it does not set (the defaults are not part of the configuration itself)."""
    env = dict(config.environment)
    for key, value in DEFAULT_ENVIRONMENT.items():
        env.setdefault(key, value)
    return env


# --- key sets (exactly apko's; yaml.v3 with KnownFields rejects anything else) ---------------

TOP_KEYS = ("contents", "entrypoint", "cmd", "stop-signal", "work-dir", "accounts", "archs",
            "environment", "paths", "vcs-url", "annotations", "include", "volumes", "layering",
            "format", "certificates")
CONTENTS_KEYS = ("build_repositories", "runtime_repositories", "repositories", "keyring",
                 "runtime_keyring", "packages", "baseimage")
ENTRYPOINT_KEYS = ("type", "command", "shell-fragment", "services")
ACCOUNTS_KEYS = ("run-as", "users", "groups")
USER_KEYS = ("username", "uid", "gid", "shell", "homedir")
GROUP_KEYS = ("groupname", "gid", "members")
PATH_KEYS = ("path", "type", "uid", "gid", "permissions", "source", "recursive")
LAYERING_KEYS = ("strategy", "budget")
CERTIFICATES_KEYS = ("additional", "providers")
NAMED_CONTENT_KEYS = ("name", "content")
BASEIMAGE_KEYS = ("image", "apkindex")

_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]+[a-zA-Z0-9_.-]*$")
_ANNOTATION_KEY_RE = re.compile(r"^[a-z0-9.-]+$")
FORMATS = ("tar", "erofs")
UINT32_MAX = 2**32 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# yaml.v3's float syntax (the same as YAML 1.2 core's), used when Go's ParseInt gives up.
_GO_FLOAT_RE = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_GO_INT_RE = re.compile(r"^([-+]?)(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)$")
_V3_TRUE = ("y", "Y", "yes", "Yes", "YES", "on", "On", "ON")
_V3_FALSE = ("n", "N", "no", "No", "NO", "off", "Off", "OFF")


def go_yaml_int(text: str) -> int | None:
    """An integer as yaml.v3 reads a plain scalar into an int field, or None.

    Underscores are dropped, then Go's ParseInt(s, 0) applies (0x, 0o, 0b and a bare leading 0
    for octal); failing that, an integral float (`1e3`, `08`) still fits."""
    plain = text.replace("_", "")
    m = _GO_INT_RE.match(plain)
    if m:
        sign, body = m.groups()
        lower = body.lower()
        if lower.startswith("0x"):
            value = int(body[2:], 16)
        elif lower.startswith("0o"):
            value = int(body[2:], 8)
        elif lower.startswith("0b"):
            value = int(body[2:], 2)
        elif body.startswith("0") and len(body) > 1:
            value = int(body, 8)
        else:
            value = int(body, 10)
        return -value if sign == "-" else value
    if _GO_FLOAT_RE.match(plain):
        number = float(plain)
        if math.isfinite(number) and number == int(number):
            return int(number)
    return None


# --- strict decoding ------------------------------------------------------------------------

def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


@dataclass(frozen=True, slots=True)
class _Reader:
    """Turns one file's YAML data into records, every error located via the Locator."""

    loc: Locator

    def fail(self, path: NodePath, message: str, *, key: bool = False) -> ConfigError:
        return self.loc.error(path, message, key=key)

    def mapping(self, value: Any, path: NodePath, allowed: tuple[str, ...]) -> dict[str, tuple[NodePath, Any]]:
        """Fields of a struct: {key text: (path, value)}; unknown keys are errors."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping, got {_kind(value)}")
        out: dict[str, tuple[NodePath, Any]] = {}
        for key, item in value.items():
            sub = path + (key,)
            info = self.loc.key_scalar(sub)
            name = info.text if info else str(key)
            if name not in allowed:
                hint = difflib.get_close_matches(name, allowed, n=1)
                suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
                raise self.fail(sub, f"unknown key {name!r}{suggestion}; valid keys: "
                                     f"{', '.join(allowed)}", key=True)
            out[name] = (sub, item)
        return out

    def string(self, value: Any, path: NodePath) -> str:
        if value is None:
            return ""  # yaml.v3 decodes null into a string field as ""
        if isinstance(value, str):
            return value
        info = self.loc.scalar(path)
        if info is not None and not isinstance(value, (dict, list)):
            return info.text  # yaml.v3 fills string fields with the scalar's text
        raise self.fail(path, f"expected a string, got {_kind(value)}")

    def integer(self, value: Any, path: NodePath, low: int, high: int, *, octal: bool = False) -> int:
        info = self.loc.scalar(path)
        number: int | None = None
        if info is not None and info.plain and value is not None and not isinstance(value, bool):
            number = go_yaml_int(info.text)
        elif isinstance(value, int) and not isinstance(value, bool):
            number = value  # an explicit !!int
        elif isinstance(value, float) and math.isfinite(value) and value == int(value):
            number = int(value)
        if number is None:
            raise self.fail(path, f"expected an integer, got {_kind(value)}"
                                  + (f" {info.text!r}" if info and info.text else ""))
        if not low <= number <= high:
            shown = oct if octal else str
            raise self.fail(path, f"{shown(number)} is out of range ({shown(low)}..{shown(high)})")
        return number

    def boolean(self, value: Any, path: NodePath) -> bool:
        if value is None:
            return False
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value in _V3_TRUE + _V3_FALSE:
            return value in _V3_TRUE  # yaml.v3 keeps YAML 1.1 spellings for bool fields
        raise self.fail(path, f"expected a boolean, got {_kind(value)}")

    def seq(self, value: Any, path: NodePath) -> list[tuple[NodePath, Any]]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(path, f"expected a list, got {_kind(value)}")
        return [(path + (i,), item) for i, item in enumerate(value)]

    def strings(self, value: Any, path: NodePath) -> tuple[str, ...]:
        out = []
        for sub, item in self.seq(value, path):
            if item is None:
                # yaml.v3 would keep an empty entry that fails much later; say so here.
                raise self.fail(sub, "expected a string, got null")
            out.append(self.string(item, sub))
        return tuple(out)

    def str_field(self, fields: dict[str, tuple[NodePath, Any]], name: str, parent: NodePath) -> str:
        sub, value = _get(fields, name, parent)
        return self.string(value, sub)

    def strs_field(self, fields: dict[str, tuple[NodePath, Any]], name: str,
                   parent: NodePath) -> tuple[str, ...]:
        sub, value = _get(fields, name, parent)
        return self.strings(value, sub)

    def seq_field(self, fields: dict[str, tuple[NodePath, Any]], name: str,
                  parent: NodePath) -> list[tuple[NodePath, Any]]:
        sub, value = _get(fields, name, parent)
        return self.seq(value, sub)

    def map_field(self, fields: dict[str, tuple[NodePath, Any]], name: str,
                  parent: NodePath) -> dict[str, str]:
        sub, value = _get(fields, name, parent)
        return self.string_map(value, sub)

    def string_map(self, value: Any, path: NodePath) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping, got {_kind(value)}")
        out: dict[str, str] = {}
        for key, item in value.items():
            sub = path + (key,)
            info = self.loc.key_scalar(sub)
            out[info.text if info else str(key)] = self.string(item, sub)
        return out


def _get(fields: dict[str, tuple[NodePath, Any]], name: str, parent: NodePath) -> tuple[NodePath, Any]:
    return fields.get(name, (parent + (name,), None))


def _swap(pair: tuple[NodePath, Any]) -> tuple[Any, NodePath]:
    return pair[1], pair[0]


def _read_named_content(r: _Reader, value: Any, path: NodePath, what: str) -> tuple[str, str]:
    f = r.mapping(value, path, NAMED_CONTENT_KEYS)
    if value is None:
        raise r.fail(path, f"expected a {what} mapping with name and content, got null")
    name_path, name = _get(f, "name", path)
    content_path, content = _get(f, "content", path)
    name_s, content_s = r.string(name, name_path), r.string(content, content_path)
    if not _NAME_RE.match(name_s):
        raise r.fail(name_path if "name" in f else path,
                     f"{what} name {name_s!r} must match {_NAME_RE.pattern}")
    if not content_s:
        raise r.fail(content_path if "content" in f else path, f"{what} {name_s!r} has no content")
    return name_s, content_s


def _read_contents(r: _Reader, value: Any, path: NodePath) -> Contents:
    f = r.mapping(value, path, CONTENTS_KEYS)
    keys = []
    for sub, item in r.seq_field(f, "runtime_keyring", path):
        name, content = _read_named_content(r, item, sub, "runtime key")
        keys.append(RuntimeKey(name, content, origin=r.loc.mark(sub)))
    base: BaseImage | None = None
    if "baseimage" in f and f["baseimage"][1] is not None:
        bpath, bvalue = f["baseimage"]
        bf = r.mapping(bvalue, bpath, BASEIMAGE_KEYS)
        base = BaseImage(image=r.str_field(bf, "image", bpath),
                         apkindex=r.str_field(bf, "apkindex", bpath))
        if not base.image or not base.apkindex:
            raise r.fail(bpath, "baseimage needs both image and apkindex")
    return Contents(
        build_repositories=r.strs_field(f, "build_repositories", path),
        runtime_repositories=r.strs_field(f, "runtime_repositories", path),
        repositories=r.strs_field(f, "repositories", path),
        keyring=r.strs_field(f, "keyring", path),
        runtime_keyring=tuple(keys),
        packages=r.strs_field(f, "packages", path),
        baseimage=base,
    )


def _read_entrypoint(r: _Reader, value: Any, path: NodePath) -> Entrypoint:
    f = r.mapping(value, path, ENTRYPOINT_KEYS)
    type_path, type_value = _get(f, "type", path)
    kind = r.string(type_value, type_path)
    if kind not in ("", "service-bundle"):
        # apko ignores any other type silently, which would drop the services on the floor.
        raise r.fail(type_path, f"unsupported entrypoint type {kind!r}; the only type is 'service-bundle'")
    services = None
    if "services" in f and f["services"][1] is not None:
        services = _frozen_map(r.string_map(f["services"][1], f["services"][0]))
    return Entrypoint(type=kind, command=r.str_field(f, "command", path),
                      shell_fragment=r.str_field(f, "shell-fragment", path),
                      services=services)


def _read_user(r: _Reader, value: Any, path: NodePath) -> User:
    if value is None:
        raise r.fail(path, "expected a user mapping, got null")
    f = r.mapping(value, path, USER_KEYS)
    name = r.str_field(f, "username", path)
    uid_path, uid_value = _get(f, "uid", path)
    uid = r.integer(uid_value, uid_path, 0, UINT32_MAX) if uid_value is not None else 0
    gid_path, gid_value = _get(f, "gid", path)
    gid = r.integer(gid_value, gid_path, 0, UINT32_MAX) if gid_value is not None else None
    if not name:
        raise r.fail(path, "configured user has no username")
    if uid == 0:
        raise r.fail(uid_path if "uid" in f else path,
                     f"configured user {name!r} has UID 0 (to run as root, use `run-as: 0`)")
    return User(username=name, uid=uid, gid=gid, shell=r.str_field(f, "shell", path),
                homedir=r.str_field(f, "homedir", path))


def _read_group(r: _Reader, value: Any, path: NodePath) -> Group:
    if value is None:
        raise r.fail(path, "expected a group mapping, got null")
    f = r.mapping(value, path, GROUP_KEYS)
    name = r.str_field(f, "groupname", path)
    if not name:
        raise r.fail(path, "configured group has no groupname")
    gid_path, gid_value = _get(f, "gid", path)
    gid = r.integer(gid_value, gid_path, 0, UINT32_MAX) if gid_value is not None else 0
    return Group(groupname=name, gid=gid, members=r.strs_field(f, "members", path))


def _read_accounts(r: _Reader, value: Any, path: NodePath) -> Accounts:
    f = r.mapping(value, path, ACCOUNTS_KEYS)
    return Accounts(run_as=r.str_field(f, "run-as", path),
                    users=tuple(_read_user(r, v, p) for p, v in r.seq_field(f, "users", path)),
                    groups=tuple(_read_group(r, v, p) for p, v in r.seq_field(f, "groups", path)))


def _read_path(r: _Reader, value: Any, path: NodePath) -> PathMutation:
    if value is None:
        raise r.fail(path, "expected a path mapping, got null")
    f = r.mapping(value, path, PATH_KEYS)

    def num(name: str, high: int) -> int:
        p, v = _get(f, name, path)
        return r.integer(v, p, 0, high, octal=name == "permissions") if v is not None else 0

    type_path, type_value = _get(f, "type", path)
    mutation = PathMutation(
        path=r.str_field(f, "path", path),
        type=r.string(type_value, type_path),
        uid=num("uid", UINT32_MAX), gid=num("gid", UINT32_MAX),
        permissions=num("permissions", 0o7777),
        source=r.str_field(f, "source", path),
        recursive=r.boolean(*_swap(_get(f, "recursive", path))),
    )
    if not mutation.path:
        raise r.fail(path, "path mutation has no path")
    if mutation.type not in PATH_TYPES:
        raise r.fail(type_path if "type" in f else path,
                     f"unknown path type {mutation.type!r}; valid types: {', '.join(PATH_TYPES)}")
    if mutation.type in ("hardlink", "symlink") and not mutation.source:
        raise r.fail(path, f"a {mutation.type} needs a source")
    return mutation


def _read_layering(r: _Reader, value: Any, path: NodePath) -> Layering:
    f = r.mapping(value, path, LAYERING_KEYS)
    budget_path, budget_value = _get(f, "budget", path)
    layering = Layering(strategy=r.str_field(f, "strategy", path),
                        budget=r.integer(budget_value, budget_path, 0, INT64_MAX)
                        if budget_value is not None else 0)
    # `package` (one layer per package, for sharing layers across images) is our addition.
    if not layering.is_empty() and layering.strategy not in ("origin", "package"):
        strategy_path = f["strategy"][0] if "strategy" in f else path
        raise r.fail(strategy_path, f"unrecognized layering strategy {layering.strategy!r}; "
                                    "valid strategies: 'origin' (apko's) and 'package'")
    return layering


def _read_certificates(r: _Reader, value: Any, path: NodePath) -> Certificates:
    f = r.mapping(value, path, CERTIFICATES_KEYS)
    certs = tuple(Certificate(*_read_named_content(r, v, p, "certificate"))
                  for p, v in r.seq_field(f, "additional", path))
    return Certificates(additional=certs, providers=r.strs_field(f, "providers", path))


def _read_archs(r: _Reader, value: Any, path: NodePath) -> tuple[str, ...]:
    archs = []
    for sub, item in r.seq(value, path):
        name = r.string(item, sub)
        if name in ("all", "host", ""):
            # apko would keep it as a literal arch and fail fetching `<repo>/all/APKINDEX`.
            raise r.fail(sub, f"{name!r} is not an architecture here ('all' and 'host' only work with --arch)")
        archs.append(parse_architecture(name))
    return tuple(archs)


def _read_config(r: _Reader, data: Any) -> ImageConfig:
    root: NodePath = ()
    f = r.mapping(data, root, TOP_KEYS)

    def get(name: str) -> tuple[NodePath, Any]:
        return _get(f, name, root)

    def text(name: str) -> str:
        return r.str_field(f, name, root)

    layering = None
    if "layering" in f and f["layering"][1] is not None:
        layering = _read_layering(r, f["layering"][1], f["layering"][0])
    certificates = None
    if "certificates" in f and f["certificates"][1] is not None:
        certificates = _read_certificates(r, f["certificates"][1], f["certificates"][0])
    fmt = text("format")
    if fmt not in ("",) + FORMATS:
        raise r.fail(get("format")[0], f"unknown format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    return ImageConfig(
        contents=_read_contents(r, *_swap(get("contents"))),
        entrypoint=_read_entrypoint(r, *_swap(get("entrypoint"))),
        cmd=text("cmd"), stop_signal=text("stop-signal"), work_dir=text("work-dir"),
        accounts=_read_accounts(r, *_swap(get("accounts"))),
        archs=_read_archs(r, *_swap(get("archs"))),
        environment=_frozen_map(r.map_field(f, "environment", root)),
        paths=tuple(_read_path(r, v, p) for p, v in r.seq_field(f, "paths", root)),
        vcs_url=text("vcs-url"),
        annotations=_frozen_map(r.map_field(f, "annotations", root)),
        include=text("include"),
        volumes=r.strs_field(f, "volumes", root),
        layering=layering, format=fmt, certificates=certificates,
    )


def parse_image_config(source: str | bytes, filename: str = "<string>") -> tuple[ImageConfig, Locator]:
    """One file as apko parses it (strict keys, repositories without trailing `/`, the
    baseimage restriction), except that `include` is kept as text and not resolved."""
    data, locator = load_yaml(source, filename)
    config = _trim_repositories(_read_config(_Reader(locator), data))
    _check_baseimage(config, locator)
    return config, locator


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


def _trim_repositories(config: ImageConfig) -> ImageConfig:
    c = config.contents
    trim = lambda repos: tuple(repo.rstrip("/") for repo in repos)  # noqa: E731
    return replace(config, contents=replace(
        c, build_repositories=trim(c.build_repositories),
        runtime_repositories=trim(c.runtime_repositories), repositories=trim(c.repositories)))


def _check_baseimage(config: ImageConfig, loc: Locator) -> None:
    if config.contents.baseimage is None:
        return
    if (not config.entrypoint.is_zero() or config.cmd or config.stop_signal or config.work_dir
            or config.accounts != Accounts() or config.environment or config.paths
            or config.annotations):
        raise loc.error(("contents", "baseimage"), "when using a base image, the only supported "
                        "image specification are: contents, archs and include")


# --- CLI overrides ------------------------------------------------------------------------

def split_flag_values(values: Iterable[str]) -> tuple[str, ...]:
    """cobra's StringSlice: every occurrence of the flag is itself a CSV list."""
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


def resolve_build_date(build_date: str, source_date_epoch: str | None) -> tuple[int, bool]:
    """(seconds, pinned): SOURCE_DATE_EPOCH, when set and non-empty, overrides --build-date and
    pins the build date epoch (package build dates no longer raise it). A malformed
    --build-date is an error even then, as in apko, which parses the flag first."""
    epoch = parse_build_date(build_date)
    if source_date_epoch:
        if not re.fullmatch(r"[+-]?[0-9]+", source_date_epoch):
            raise ConfigError(f"SOURCE_DATE_EPOCH={source_date_epoch!r}: must be an integer "
                              "number of seconds (the output of `date +%s`)")
        value = int(source_date_epoch)
        if not INT64_MIN <= value <= INT64_MAX:
            raise ConfigError(f"SOURCE_DATE_EPOCH={source_date_epoch!r}: out of range")
        return value, True
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
    source_date_epoch: str | None = None           # $SOURCE_DATE_EPOCH, None when unset

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None, **flags: Any) -> Overrides:
        env = os.environ if environ is None else environ
        return cls(source_date_epoch=env.get("SOURCE_DATE_EPOCH"), **flags)


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
                files: list[Path], chain: tuple[str, ...], origin: str) -> ImageConfig:
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
        data = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{origin}{shown}: {exc.strerror or exc}") from None
    # The checksum covers each file's bytes before its include, as apko hashes while parsing.
    hasher.update(data)
    files.append(file)
    config, loc = parse_image_config(data, shown)
    if config.include:
        base = _load_chain(config.include, include_paths, cwd, hasher, files, chain + (real,),
                           f"{loc.where(('include',))}: ")
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
                      cwd: str | os.PathLike[str] | None = None) -> LoadedConfig:
    """Load an apko image configuration as `apko build` does.

    Relative paths (the config itself and `include`) resolve against `cwd` (default: the
    process's), then against `overrides.include_paths`. The result has includes merged, the
    archs decided (--arch, else the config's, else all nine), CLI annotations and --format
    applied, and apko's Validate defaults filled in. -k/-b/-r/-p stay separate, as in apko,
    so that `/etc/apko.json` shows the configuration itself; see LoadedConfig's methods."""
    ov = overrides or Overrides()
    base_dir = Path(cwd) if cwd is not None else Path.cwd()
    files: list[Path] = []
    hasher = hashlib.sha256()
    config = _load_chain(os.fspath(path), split_flag_values(ov.include_paths), base_dir, hasher,
                         files, (), "")

    return _finish(config, tuple(files), "sha256-" + base64.b64encode(hasher.digest()).decode(), ov)


def load_image_config_bytes(data: bytes, filename: str, overrides: Overrides | None = None) -> LoadedConfig:
    """A configuration held in memory (the BuildKit frontend reads it over the gateway), which
    therefore cannot `include` other files."""
    config, loc = parse_image_config(data, filename)
    if config.include:
        raise ConfigError(f"{loc.where(('include',))}: include needs files on disk; not available here")
    config = _trim_repositories(config)
    _check_baseimage(config, loc)
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
        for key, value in (("path", p.path), ("type", p.type), ("uid", p.uid), ("gid", p.gid),
                           ("permissions", p.permissions), ("source", p.source),
                           ("recursive", p.recursive)):
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
