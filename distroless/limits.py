"""Size caps against decompression bombs and oversized downloads (apko's `--max-*` flags).

The defaults are apko's (`pkg/options: DefaultSizeLimits`). On the command line, as in apko,
0 means the default and -1 means no limit.
"""

from __future__ import annotations

from dataclasses import dataclass

from distroless.errors import ConfigError

NO_LIMIT = 1 << 62  # "no limit": larger than any file this machine can hold


@dataclass(frozen=True, slots=True)
class Limits:
    index_decompressed: int = 300 << 20  # --max-apkindex-decompressed-size
    apk_control: int = 10 << 20          # --max-apk-control-size
    apk_data: int = 16 << 30             # --max-apk-data-size
    http_response: int = 8 << 30         # --max-http-response-size

    @classmethod
    def from_flags(cls, flags: dict[str, tuple[str, int | None]]) -> Limits:
        """apko's flag values, as {field: (flag name, value)}: None or 0 keeps the default, -1 lifts
        the cap, other negatives fail naming the flag."""
        base = cls()
        values = {f: getattr(base, f) for f in cls.__slots__}
        for field, (flag, value) in flags.items():
            if value is None or value == 0:
                continue
            if value == -1:
                values[field] = NO_LIMIT
            elif value < 0:
                raise ConfigError(f"{flag}: expected a size in bytes, 0 (the default) or -1 (no limit), got {value}")
            else:
                values[field] = value
        return cls(**values)


DEFAULT_LIMITS = Limits()
