"""Strict decoding of an apko image YAML into the records of `model`, with located errors.

Typing follows what Go's yaml.v3 does when it decodes into apko's structs, not a JSON schema:
any plain scalar fills a string field with its text (`run-as: 65532` is "65532", `cmd: 1.10`
stays "1.10"), integer fields read plain scalars with Go's `ParseInt(s, 0)` after dropping `_`
(so `permissions: 0755` is 0o755, as in apko, although YAML 1.2 itself says decimal 755), and
boolean fields also take yaml.v3's YAML 1.1 spellings (`yes`, `on`, ...). Unknown keys are
errors, as with yaml.v3's KnownFields.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any

from distroless.config.positions import (YAML11_FALSE, YAML11_TRUE, Locator, NodePath, describe, field_of,
                                         struct_fields)
from distroless.errors import ConfigError
from distroless.config.model import (
    Accounts,
    BaseImage,
    Certificate,
    Certificates,
    Contents,
    Entrypoint,
    Group,
    ImageConfig,
    Layering,
    PATH_TYPES,
    PathMutation,
    RuntimeKey,
    User,
    _frozen_map,
    parse_architecture,
)

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
# Accepted by apko, refused here with the key's line rather than silently building tar layers.
UNSUPPORTED_FORMATS = {"erofs": "format 'erofs' is not supported (apko's experimental erofs); "
                                "only tar layers are built"}
UINT32_MAX = 2**32 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# yaml.v3's float syntax (the same as YAML 1.2 core's), used when Go's ParseInt gives up.
_GO_FLOAT_RE = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_GO_INT_RE = re.compile(r"^([-+]?)(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)$")
_V3_TRUE = YAML11_TRUE
_V3_FALSE = YAML11_FALSE


def go_yaml_int(text: str) -> int | None:
    """An integer as yaml.v3 reads a plain scalar into an int field, or None.

    Underscores are dropped, then Go's ParseInt(s, 0) applies (0x, 0o, 0b and a bare leading 0
    for octal); failing that, an integral float (`1e3`, `08`) still fits."""
    plain = text.replace("_", "")
    if len(plain) > 128:  # far beyond int64 (Go: out of range); also below Python's int() limit
        return None
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

@dataclass(frozen=True, slots=True)
class _Reader:
    """Turns one file's YAML data into records, every error located via the Locator."""

    loc: Locator

    def fail(self, path: NodePath, message: str, *, key: bool = False) -> ConfigError:
        return self.loc.error(path, message, key=key)

    def mapping(self, value: Any, path: NodePath, allowed: tuple[str, ...]) -> dict[str, tuple[NodePath, Any]]:
        """Fields of a struct: {key text: (path, value)}; unknown keys are errors."""
        return struct_fields(self.loc, value, path, allowed)

    def string(self, value: Any, path: NodePath) -> str:
        if value is None:
            return ""  # yaml.v3 decodes null into a string field as ""
        if isinstance(value, str):
            return value
        info = self.loc.scalar(path)
        if info is not None and not isinstance(value, (dict, list)):
            return info.text  # yaml.v3 fills string fields with the scalar's text
        raise self.fail(path, f"expected a string, got {describe(value)}")

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
            raise self.fail(path, f"expected an integer, got {describe(value)}"
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
        raise self.fail(path, f"expected a boolean, got {describe(value)}")

    def seq(self, value: Any, path: NodePath) -> list[tuple[NodePath, Any]]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(path, f"expected a list, got {describe(value)}")
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
            raise self.fail(path, f"expected a mapping, got {describe(value)}")
        out: dict[str, str] = {}
        for key, item in value.items():
            sub = path + (key,)
            info = self.loc.key_scalar(sub)
            out[info.text if info else str(key)] = self.string(item, sub)
        return out


_get = field_of


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

    def num(name: str, high: int) -> int | None:
        # None when absent (or null): apko's uid/gid are pointers, so an explicit 0 differs
        p, v = _get(f, name, path)
        return r.integer(v, p, 0, high, octal=name == "permissions") if v is not None else None

    type_path, type_value = _get(f, "type", path)
    mutation = PathMutation(
        path=r.str_field(f, "path", path),
        type=r.string(type_value, type_path),
        uid=num("uid", UINT32_MAX), gid=num("gid", UINT32_MAX),
        permissions=num("permissions", 0o7777) or 0,
        source=r.str_field(f, "source", path),
        recursive=r.boolean(*_swap(_get(f, "recursive", path))),
    )
    if not mutation.path:
        raise r.fail(path, "path mutation has no path")
    if ".." in mutation.path.split("/"):
        raise r.fail(path + ("path",), f"path {mutation.path!r} contains '..'; paths are inside the image")
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
    if fmt in UNSUPPORTED_FORMATS:
        raise r.fail(get("format")[0], UNSUPPORTED_FORMATS[fmt])
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
    from distroless.config.yaml12 import load as load_yaml  # PyYAML: only when a file is parsed

    data, locator = load_yaml(source, filename)
    config = _trim_repositories(_read_config(_Reader(locator), data))
    _check_baseimage(config, locator)
    return config, locator


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
