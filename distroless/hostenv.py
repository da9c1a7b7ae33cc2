"""What the front doors take from the process environment, in one place.

Only front doors (`cli`, `buildkit`, `steps`) import this module; they resolve credentials, the
epoch, the cache location and the like here and pass the values down. The engine never reads
the environment, so the same call gives the same result whoever makes it
(tests/test_architecture.py enforces it).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from distroless import epoch
from distroless.errors import FormatError, KeyFileError
from distroless.fetch.transport import DOWNLOAD_DEADLINE, BasicAuth, parse_http_auth


def source_date_epoch(environ: Mapping[str, str] | None = None) -> int | None:
    """$SOURCE_DATE_EPOCH by `distroless.epoch`'s rule (None when unset or blank)."""
    return epoch.parse((os.environ if environ is None else environ).get(epoch.NAME))


def cache_root(environ: Mapping[str, str] | None = None) -> Path:
    """`$XDG_CACHE_HOME/distroless`, else `~/.cache/distroless`."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".cache")
    return Path(base) / "distroless"


def http_auth(environ: Mapping[str, str] | None = None) -> list[BasicAuth]:
    """`HTTP_AUTH=basic:HOST:USER:PASSWORD` (melange's and apko's variable); [] when unset."""
    return parse_http_auth((os.environ if environ is None else environ).get("HTTP_AUTH"))


def download_deadline(environ: Mapping[str, str] | None = None) -> float:
    """`DISTROLESS_DOWNLOAD_DEADLINE` (seconds each download may take overall), else the default."""
    value = (os.environ if environ is None else environ).get("DISTROLESS_DOWNLOAD_DEADLINE", "")
    try:
        seconds = float(value) if value else DOWNLOAD_DEADLINE
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise FormatError(f"DISTROLESS_DOWNLOAD_DEADLINE: expected a number of seconds, got {value!r}")
    return seconds


def docker_config(environ: Mapping[str, str] | None = None) -> Path:
    """docker's `config.json`: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`."""
    base = (os.environ if environ is None else environ).get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


def docker_host(environ: Mapping[str, str] | None = None) -> str:
    return (os.environ if environ is None else environ).get("DOCKER_HOST", "")


def cosign_password(confirm: bool = False, what: str = "Enter password for private key: ") -> bytes:
    """`COSIGN_PASSWORD` when set (an empty value is a legal, empty password), else ask on the
    terminal; with `confirm` the password is asked twice. Without a terminal, fail: never block."""
    env = os.environ.get("COSIGN_PASSWORD")
    if env is not None:
        return env.encode()
    if not sys.stdin.isatty():
        raise KeyFileError("no password: set COSIGN_PASSWORD (stdin is not a terminal to prompt on)")
    import getpass

    first = getpass.getpass(what)
    if confirm:
        again = getpass.getpass("Enter password for private key again: ")
        if again != first:
            raise KeyFileError("passwords do not match")
    return first.encode()


def key_password(what: str) -> bytes:
    """The password source front doors hand to `sign.keys.read_private_key`."""
    return cosign_password(confirm=False, what=what)


def predicate_timestamp(sde: int | None = None) -> str:
    """The `Timestamp` of a custom attestation predicate: the given or environment's
    SOURCE_DATE_EPOCH (reproducible), else now, as cosign does; decided here, not in `sign`."""
    from distroless.oci.gojson import rfc3339

    seconds = sde if sde is not None else source_date_epoch()
    return rfc3339(int(time.time()) if seconds is None else seconds)
