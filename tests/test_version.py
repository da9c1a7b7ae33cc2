"""Every line of apk-tools' version.data, plus the API around it."""

from __future__ import annotations

import functools

import pytest

from distroless.apk import version
from distroless.errors import FormatError
from shared import APK

DATA = APK / "version.data"
_REVERSE = {"<": ">", ">": "<", "=": "="}
_RESULT = {-1: "<", 0: "=", 1: ">"}


def _lines() -> list[tuple[int, str]]:
    out = []
    for no, raw in enumerate(DATA.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if line:
            out.append((no, line))
    return out


LINES = _lines()


def test_table_is_complete() -> None:
    assert len(DATA.read_text().splitlines()) == 788
    assert len(LINES) > 750


@pytest.mark.parametrize(("no", "line"), LINES, ids=[f"L{no}" for no, _ in LINES])
def test_version_data(no: int, line: str) -> None:
    parts = line.split()
    if len(parts) == 1:  # a validity line: `X` is valid, `!X` is not
        text = parts[0]
        if text.startswith("!"):
            assert not version.validate(text[1:]), f"line {no}: {text[1:]!r} should be invalid"
        else:
            assert version.validate(text), f"line {no}: {text!r} should be valid"
        return
    assert len(parts) == 3, f"line {no}: unexpected format {line!r}"
    a, op, b = parts
    if op in _REVERSE:
        assert _RESULT[version.compare(a, b)] == op, f"line {no}: {a} {op} {b}"
        assert _RESULT[version.compare(b, a)] == _REVERSE[op], f"line {no} reversed"
    else:  # fuzzy operators: `~`, `<~`, `>~`, negated with `!`
        assert version.matches(op, a, b), f"line {no}: {a} {op} {b}"


def test_sort_key_orders_oldest_first() -> None:
    vs = ["1.0", "1.0_alpha", "1.0-r1", "0.9", "1.0_p1", "1.0_rc2"]
    assert sorted(vs, key=version.version_key) == ["0.9", "1.0_alpha", "1.0_rc2", "1.0", "1.0-r1", "1.0_p1"]
    assert sorted(vs, key=functools.cmp_to_key(version.compare))[-1] == "1.0_p1"


@pytest.mark.parametrize(
    ("op", "have", "want", "ok"),
    [
        ("=", "1.2-r0", "1.2-r0", True),
        ("=", "1.2-r1", "1.2-r0", False),
        ("<", "1.2", "1.10", True),
        (">=", "2.0", "2.0", True),
        ("<=", "2.0_rc1", "2.0", True),
        (">", "2.0", "2.0", False),
        ("~", "3.6.9", "3.6", True),
        ("~", "3.7", "3.6", False),
        ("=~", "3.6.1", "3.6", True),
        (">~", "3.7", "3.6", True),
        ("<~", "3.5", "3.6", True),
        ("!~", "3.8.0", "3.8.1", True),
        ("", "anything", "x", True),
        ("><", "Q1abc=", "Q1abc=", True),
    ],
)
def test_matches(op: str, have: str, want: str, ok: bool) -> None:
    assert version.matches(op, have, want) is ok


def test_parse_rejects_invalid() -> None:
    assert version.parse("1.2.3-r4")[-1][0] == version.END
    with pytest.raises(FormatError, match="1.2-r"):
        version.parse("1.2-r")


def test_canonical_op() -> None:
    assert version.canonical_op("=~") == "~"
    assert version.canonical_op("=>") == ">="
    with pytest.raises(FormatError):
        version.canonical_op("<>")
