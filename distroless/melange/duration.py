"""Go's time.ParseDuration, for `package.timeout` and `--timeout` (`90s`, `1h30m`, `1.5h`)."""

from __future__ import annotations

import re

from distroless.errors import ConfigError

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"((?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str, what: str = "duration") -> float:
    """Seconds. "0" is zero; every other value needs a unit, as in Go. A bare integer (which
    melange's YAML reader cannot decode into a duration) is read as seconds."""
    s = text.strip()
    if s in ("0", "+0", "-0", ""):
        return 0.0
    if s.isdigit():
        return float(s)
    sign = -1.0 if s.startswith("-") else 1.0
    body = s.lstrip("+-")
    pos, total = 0, 0.0
    while pos < len(body):
        m = _PART.match(body, pos)
        if not m:
            raise ConfigError(f"{what}: invalid duration {text!r} (e.g. 90s, 30m, 1h30m)")
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not body:
        raise ConfigError(f"{what}: invalid duration {text!r}")
    return sign * total
