"""SOURCE_DATE_EPOCH: the one parser, apko's rule made strict.

Unset or blank means unset (None). Otherwise it must be ASCII digits only, at most int64: no
sign, no `_` separators, no spaces, no hex. Front doors read the value from wherever their user
gives it (the environment, `--build-arg`, a step flag) and pass the parsed number down; nothing
below them looks at the environment or falls back to the clock.
"""

from __future__ import annotations

import re

from distroless.errors import ConfigError

NAME = "SOURCE_DATE_EPOCH"
INT64_MAX = (1 << 63) - 1
_DIGITS = re.compile(r"[0-9]+")


def parse(value: str | None, name: str = NAME) -> int | None:
    """Seconds since 1970, or None when `value` is None, empty or only whitespace. `name` says
    where the value came from in the error (`SOURCE_DATE_EPOCH`, `build-arg:SOURCE_DATE_EPOCH`, …)."""
    if value is None or not value.strip():
        return None
    if not _DIGITS.fullmatch(value):
        raise ConfigError(f"{name}={value!r}: expected a non-negative integer number of seconds, "
                          "digits only (the output of `date +%s`)")
    seconds = int(value)
    if seconds > INT64_MAX:
        raise ConfigError(f"{name}={value!r}: out of range (at most {INT64_MAX})")
    return seconds


def parse_or(value: str | None, default: int, name: str = NAME) -> int:
    """`parse`, with `default` when unset."""
    seconds = parse(value, name)
    return default if seconds is None else seconds
