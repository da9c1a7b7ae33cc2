"""JSON bytes as Go's encoding/json writes them (ggcr manifests, configs, apko SBOMs).

Key order is the caller's: build dicts in struct-field order, and pass Go maps through
`go_map` (Go sorts map keys by bytes; Python's code-point order is the same for valid UTF-8).
Go escapes `<`, `>`, `&`, U+2028 and U+2029 as `\\u003c` ... and keeps other non-ASCII raw;
`json.dumps(ensure_ascii=False)` already escapes quotes, backslashes and control characters
the way Go >= 1.22 does (`\\b`, `\\f`, `\\n`, `\\r`, `\\t`, else `\\u00xx` in lower-case hex).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

_HTML_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_TRANSLATE = str.maketrans(_HTML_ESCAPES)


def go_map(m: Mapping[str, Any]) -> dict[str, Any]:
    """A Go map: keys sorted."""
    return {k: m[k] for k in sorted(m)}


def _escape_html(text: str) -> str:
    # The five characters never appear in JSON syntax outside strings, so a whole-text
    # replacement only touches string contents, as Go's encoder does.
    return text.translate(_TRANSLATE)


def marshal(value: Any) -> bytes:
    """`json.Marshal`: compact, HTML-escaped, no trailing newline."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return _escape_html(text).encode()


def marshal_indent(value: Any, indent: int = 2, *, newline: bool = True) -> bytes:
    """`json.Encoder` with `SetIndent("", "  ")` (adds a newline), or `json.MarshalIndent`
    (`newline=False`). Python's indented layout is Go's: `"k": v`, `[]`/`{}` when empty."""
    text = json.dumps(value, ensure_ascii=False, indent=indent, allow_nan=False)
    return _escape_html(text).encode() + (b"\n" if newline else b"")


def rfc3339(when: datetime | int) -> str:
    """Go's `time.RFC3339` (and RFC3339Nano for whole seconds) for a UTC time: `1970-01-01T00:00:00Z`.

    Sub-second parts are dropped: apko's times are whole seconds (SOURCE_DATE_EPOCH, build dates).
    """
    if isinstance(when, int):
        when = datetime.fromtimestamp(when, tz=timezone.utc)
    elif when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
