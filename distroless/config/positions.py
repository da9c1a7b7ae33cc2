"""Source positions of a loaded YAML document, and the struct reader over them (no YAML here).

`yaml12.load` fills a `Locator` while it builds plain values; everything that only reads
positions (the config and recipe readers, errors, the parsed-config cache) uses this module,
so that a configuration served from the cache is read without loading PyYAML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from distroless.errors import ConfigError

NodePath: TypeAlias = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Mark:
    """A 1-based source position."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class ScalarInfo:
    """A scalar as written: its text (after YAML unescaping), and whether it was a plain
    (unquoted, untagged) scalar, the only kind whose type comes from the resolver."""

    text: str
    plain: bool
    tag: str


@dataclass(frozen=True, slots=True)
class _Entry:
    mark: Mark
    key_mark: Mark | None
    scalar: ScalarInfo | None
    key_scalar: ScalarInfo | None


def format_path(path: NodePath) -> str:
    """`("contents", "packages", 2)` -> `contents.packages[2]`; odd keys are quoted."""
    out: list[str] = []
    for elem in path:
        if isinstance(elem, bool) or not isinstance(elem, (str, int)):
            out.append(f"[{elem!r}]")
        elif isinstance(elem, int):
            out.append(f"[{elem}]")
        elif re.fullmatch(r"[A-Za-z0-9_-]+", elem):
            out.append(("." if out else "") + elem)
        else:
            out.append(f"[{elem!r}]")
    return "".join(out)


@dataclass(slots=True)
class Locator:
    """Positions of every node of one loaded document, by path from the root."""

    filename: str
    _entries: dict[NodePath, _Entry] = field(default_factory=dict, repr=False)

    def _record(self, path: NodePath, entry: _Entry) -> None:
        self._entries[path] = entry

    def __contains__(self, path: NodePath) -> bool:
        return tuple(path) in self._entries

    def mark(self, path: NodePath) -> Mark:
        """Where the value at `path` starts; for a path that is not in the document, the
        nearest ancestor (so errors about missing fields point at their parent mapping)."""
        path = tuple(path)
        while path not in self._entries and path:
            path = path[:-1]
        entry = self._entries.get(path)
        return entry.mark if entry else Mark(self.filename, 1, 1)

    def key_mark(self, path: NodePath) -> Mark:
        """Where the mapping key that leads to `path` starts (falls back to `mark`)."""
        entry = self._entries.get(tuple(path))
        if entry and entry.key_mark:
            return entry.key_mark
        return self.mark(path)

    def scalar(self, path: NodePath) -> ScalarInfo | None:
        entry = self._entries.get(tuple(path))
        return entry.scalar if entry else None

    def key_scalar(self, path: NodePath) -> ScalarInfo | None:
        entry = self._entries.get(tuple(path))
        return entry.key_scalar if entry else None

    def where(self, path: NodePath, *, key: bool = False) -> str:
        mark = self.key_mark(path) if key else self.mark(path)
        shown = format_path(path)
        return f"{mark}: {shown}" if shown else str(mark)

    def error(self, path: NodePath, message: str, *, key: bool = False) -> ConfigError:
        return ConfigError(f"{self.where(path, key=key)}: {message}")




def describe(value: Any) -> str:
    """What a loaded value is, for error messages."""
    if value is None:
        return "null"
    for kind, name in ((bool, "a boolean"), (int, "an integer"), (float, "a float"), (str, "a string"),
                       (dict, "a mapping"), (list, "a list")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


Fields = dict[str, tuple[NodePath, Any]]
# yaml.v3 keeps YAML 1.1's spellings for bool-typed struct fields (besides true/false)
YAML11_TRUE = ("y", "Y", "yes", "Yes", "YES", "on", "On", "ON")
YAML11_FALSE = ("n", "N", "no", "No", "NO", "off", "Off", "OFF")
_SHOWABLE_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def struct_fields(loc: "Locator", value: Any, path: NodePath, allowed: tuple[str, ...], *,
                  strict: bool = True) -> Fields:
    """The one struct-field reader (apko's and melange's): a mapping read as a struct,
    {key as written: (path, value)}. Unknown keys are located errors naming the valid keys
    (Go's KnownFields) when `strict`, else skipped (plain yaml.Unmarshal)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise loc.error(path, f"expected a mapping, got {describe(value)}")
    out: dict[str, tuple[NodePath, Any]] = {}
    for key, item in value.items():
        sub = path + (key,)
        info = loc.key_scalar(sub)
        name = info.text if info else str(key)
        if name not in allowed:
            if not strict:
                continue
            if not _SHOWABLE_KEY.fullmatch(name):
                # Not a key anyone would write: likely a file that is not YAML at all (an
                # `include: /etc/shadow`); its contents are not repeated in the error.
                shown = format_path(path)
                raise ConfigError(f"{loc.key_mark(sub)}: {shown + ': ' if shown else ''}unknown key (not shown; "
                                  f"is this a YAML configuration?); valid keys: {', '.join(allowed)}")
            import difflib

            hint = difflib.get_close_matches(name, allowed, n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise loc.error(sub, f"unknown key {name!r}{suggestion}; valid keys: {', '.join(allowed)}", key=True)
        out[name] = (sub, item)
    return out


def field_of(fields: Fields, name: str, parent: NodePath) -> tuple[NodePath, Any]:
    """(path, value) of a struct field; an absent one is (its would-be path, None)."""
    return fields.get(name, (parent + (name,), None))
