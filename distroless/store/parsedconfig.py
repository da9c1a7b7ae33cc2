"""Parsed configuration files kept in the cache, so that reading a known file skips PyYAML.

`config.reader.parse_image_config(bytes, name)` is a pure function of the file's bytes, the name
its positions are shown under, and the code that parses (our reader and YAML loader, PyYAML).
An entry is keyed by the sha256 of all of them and written only after a parse succeeded; a file
that fails to parse is never cached, so its error is found again each time. Includes, the working
directory and overrides stay outside: `load_image_config` still finds and reads every file and
applies them, and only the parse of each file's bytes is memoised.

The records are stored as plain values (marshal, through `store.entries`): every dataclass by its
name from a fixed table of the configuration's own classes, so an entry can only ever build
those (no pickle: a cache entry is data, never code). One that does not decode is a miss.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import fields, is_dataclass
from importlib.util import find_spec
from pathlib import Path
from types import MappingProxyType
from typing import Any

from distroless.config import model, positions
from distroless.config.image import Parse
from distroless.config.model import ImageConfig
from distroless.config.positions import Locator
from distroless.store import entries

MAGIC = b"distroless parsed config 1\n"

_CLASSES: dict[str, type] = {
    cls.__name__: cls
    for mod in (model, positions)
    for cls in vars(mod).values()
    if isinstance(cls, type) and is_dataclass(cls) and cls.__module__ == mod.__name__
}
_NAMES = {cls: name for name, cls in _CLASSES.items()}
# what turns a file's bytes into the records (its parse), besides PyYAML itself
_SOURCES = ("config/positions.py", "config/reader.py", "config/yaml12.py", "config/model.py", "arch.py",
            "store/parsedconfig.py")
_code: str | None = None


def code_digest() -> str:
    global _code
    if _code is None:
        h = hashlib.sha256(f"{sys.version_info[:2]}\n".encode())
        base = Path(__file__).resolve().parent.parent
        spec = find_spec("yaml")  # PyYAML's version is in its __init__; found, not imported
        origin = spec.origin if spec is not None else None
        if origin is None:
            raise OSError("PyYAML not found")
        for path in [base / name for name in _SOURCES] + [Path(origin)]:
            h.update(str(path.name).encode() + b"\0" + path.read_bytes() + b"\0")
        _code = h.hexdigest()
    return _code


def _encode(v: Any) -> Any:
    if v is None or isinstance(v, (str, int, float, bytes)):  # (bool is an int)
        return v
    t = type(v)
    if t is tuple or t is list:
        return ("T" if t is tuple else "L", [_encode(x) for x in v])
    if t is dict or t is MappingProxyType:
        return ("M" if t is dict else "P", [[_encode(k), _encode(x)] for k, x in v.items()])
    name = _NAMES.get(t)
    if name is None:
        raise TypeError(f"not a configuration record: {t.__name__}")
    return ("D", name, [_encode(getattr(v, f.name)) for f in fields(v)])


def _decode(v: Any) -> Any:
    if type(v) is not tuple:
        return v
    tag = v[0]
    if tag == "T":
        return tuple(_decode(x) for x in v[1])
    if tag == "L":
        return [_decode(x) for x in v[1]]
    if tag in ("M", "P"):
        d = {_decode(k): _decode(x) for k, x in v[1]}
        return d if tag == "M" else MappingProxyType(d)
    if tag == "D":
        return _CLASSES[v[1]](*[_decode(x) for x in v[2]])
    raise ValueError(f"unknown tag {tag!r}")


def cached_parser(root: Path) -> Parse:
    """`parse_image_config`, answered from (and filling) the cache under `root`."""

    def parse(data: bytes, name: str) -> tuple[ImageConfig, Locator]:
        try:
            key = hashlib.sha256(b"\0".join([code_digest().encode(), name.encode(), data])).hexdigest()
        except OSError:
            key = None  # the sources cannot be read: nothing is cached
        path = root / "parsed-configs" / key if key else None
        if path is not None:
            hit = entries.load(path, MAGIC)
            try:
                config, loc = _decode(hit)
                if type(config) is ImageConfig and type(loc) is Locator:
                    return config, loc
            except (TypeError, ValueError, KeyError, IndexError, RecursionError):
                pass  # absent, or not this shape: parse
        from distroless.config.reader import parse_image_config

        config, loc = parse_image_config(data, name)
        if path is not None:
            try:
                value = _encode((config, loc))
            except (TypeError, RecursionError):
                return config, loc
            entries.store(path, MAGIC, value)
        return config, loc

    return parse
