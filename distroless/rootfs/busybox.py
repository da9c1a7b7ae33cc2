"""apko's built-in busybox link tables, for a busybox package without `/etc/busybox-paths.d/<pkg>`.

The table is keyed by busybox's `x.y.z` (1.32.1 … 1.36.0); any other version gets `default`, the
1.36.0 list. The data and its provenance are in `busybox_paths.txt` beside this module.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

from distroless.errors import DistrolessError

DEFAULT = "1.36.0"
BUSYBOX = "/bin/busybox"
# apko's pattern: an optional "v", x.y.z, and at most one "-suffix" of word characters.
_VERSION = re.compile(r"^v?((\d+)\.(\d+)\.(\d+))(?:-(\w+))?$", re.ASCII)


class BusyboxVersionError(DistrolessError):
    pass


def parse_table(text: str) -> dict[str, list[str]]:
    """`[x.y.z]` sections of paths, or `[x.y.z] = base` sections of `-/path` removals."""
    table: dict[str, list[str]] = {}
    current: str | None = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            m = re.fullmatch(r"\[([^\]]+)\](?:\s*=\s*(\S+))?", line)
            if m is None:
                raise ValueError(f"busybox_paths.txt:{n}: bad section header {line!r}")
            current = m.group(1)
            base = m.group(2)
            if base is not None and base not in table:
                raise ValueError(f"busybox_paths.txt:{n}: {current} refers to unknown {base}")
            table[current] = list(table[base]) if base is not None else []
        elif current is None:
            raise ValueError(f"busybox_paths.txt:{n}: path outside a section")
        elif line.startswith("-/"):
            table[current].remove(line[1:])
        elif line.startswith("/"):
            table[current].append(line)
        else:
            raise ValueError(f"busybox_paths.txt:{n}: not an absolute path: {line!r}")
    table["default"] = list(table[DEFAULT])
    return table


@functools.cache
def table() -> dict[str, list[str]]:
    text = resources.files("distroless.rootfs").joinpath("busybox_paths.txt").read_text("utf-8")
    return parse_table(text)


def version_key(version: str) -> str:
    """The table key for a package version (`1.36.1-r5` → `1.36.1`); apko refuses versions its
    pattern does not match (`1.36.1_p1-r0`, `1.36.1-r0-x`)."""
    m = _VERSION.match(version)
    if m is None:
        raise BusyboxVersionError(f"invalid busybox version: {version}")
    return m.group(1)


def busybox_paths(version: str) -> list[str]:
    """Absolute paths to link to /bin/busybox for this busybox package version, in apko's order;
    /bin/busybox itself is left out."""
    t = table()
    links = t.get(version_key(version), t["default"])
    return [p for p in links if p != BUSYBOX]
