"""`${{…}}` substitution, `if:` conditions and var-transforms, with melange's semantics.

Two substitution flavours exist in melange and both are reproduced here:

* `replace_exact` — the parse-time `strings.Replacer`: only the exact tokens `${{name}}` that
  are in the map are replaced, in one non-recursive pass; anything else is left as written.
* `substitute` — the strict compile-time lookup (`pkg/cond/subst.go`): `${{ name }}` with
  optional whitespace; an undefined name, an empty name or an unterminated reference is an
  error. With `quote=True` values are Go-quoted (what `if:` conditions receive).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import re2

from distroless.errors import DistrolessError


class SubstError(DistrolessError):
    """A `${{…}}` reference could not be resolved (the caller adds the location)."""


class CondError(DistrolessError):
    """An `if:` expression does not parse."""


class TransformError(DistrolessError):
    """A var-transform `match` is not a usable regular expression."""


Lookup = Callable[[str], str]

# Substitution output is bounded: variables that refer to each other can double a value at each
# step (2^30 bytes from a 30-line `vars:`), so one result is capped, and so is the total that one
# recipe's preparation or compilation may produce (`output_budget`).
MAX_SUBST_OUTPUT = 1 << 20
MAX_SUBST_TOTAL = 64 << 20
_budget: ContextVar[list[int] | None] = ContextVar("subst_budget", default=None)


@contextmanager
def output_budget(total: int = MAX_SUBST_TOTAL) -> Iterator[None]:
    """Every substitution made inside the block draws from one budget of `total` bytes."""
    handle = _budget.set([total])
    try:
        yield
    finally:
        _budget.reset(handle)


class _Output:
    """A string being assembled, refused as soon as it outgrows the caps."""

    __slots__ = ("parts", "size")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0

    def add(self, text: str) -> None:
        self.size += len(text)
        if self.size > MAX_SUBST_OUTPUT:
            raise SubstError(f"a substituted value exceeds {MAX_SUBST_OUTPUT} characters "
                             f"(variables that expand each other?)")
        self.parts.append(text)

    def done(self) -> str:
        budget = _budget.get()
        if budget is not None:
            budget[0] -= self.size
            if budget[0] < 0:
                raise SubstError(f"substitutions produce more than {MAX_SUBST_TOTAL} characters in total")
        return "".join(self.parts)

_WS = " \t\r\n"
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")


def token(name: str) -> str:
    """The map key melange uses for a variable: `package.name` -> `${{package.name}}`."""
    return "${{" + name + "}}"


def _scan_reference(text: str, start: int) -> tuple[str, int]:
    """Parse the reference that starts at `text[start:]` (which begins with `${{`).
    Returns (name, index after the closing braces)."""
    pos = start + 3
    while pos < len(text) and text[pos] in _WS:
        pos += 1
    name_start = pos
    while pos < len(text) and text[pos] in _NAME_CHARS:
        pos += 1
    name = text[name_start:pos]
    while pos < len(text) and text[pos] in _WS:
        pos += 1
    if not name:
        raise SubstError(f"empty variable reference at offset {start}")
    if not text.startswith("}}", pos):
        raise SubstError(f"unterminated variable reference ${{{{{name} at offset {start}")
    return name, pos + 2


def references(text: str) -> list[str]:
    """The variable names `text` refers to, in order (syntax errors raise SubstError)."""
    names: list[str] = []
    pos = 0
    while (start := text.find("${{", pos)) != -1:
        name, pos = _scan_reference(text, start)
        names.append(name)
    return names


def go_quote(value: str) -> str:
    """Go's strconv.Quote for the characters recipe values contain."""
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def substitute(text: str, lookup: Lookup | Mapping[str, str], *, quote: bool = False) -> str:
    """Replace every `${{name}}` via `lookup` (a function, or a map keyed by `${{name}}`
    tokens). Undefined names raise SubstError naming the variable, as melange does."""
    if "${{" not in text:
        return text
    if isinstance(lookup, Mapping):
        table = lookup

        def lookup(name: str) -> str:
            try:
                return table[token(name)]
            except KeyError:
                raise SubstError(f"variable {name} not defined") from None

    out = _Output()
    pos = 0
    while (start := text.find("${{", pos)) != -1:
        out.add(text[pos:start])
        name, pos = _scan_reference(text, start)
        value = lookup(name)
        out.add(go_quote(value) if quote else value)
    out.add(text[pos:])
    return out.done()


def replace_exact(text: str, table: Mapping[str, str]) -> str:
    """Go's strings.Replacer over `{token: value}`: one left-to-right, non-recursive pass over
    exact tokens; unknown `${{…}}` are kept for the later, strict stage."""
    if "${{" not in text or not table:
        return text
    pattern = _exact_pattern(tuple(sorted(table, key=len, reverse=True)))
    out = _Output()
    pos = 0
    for m in pattern.finditer(text):
        out.add(text[pos:m.start()])
        out.add(table[m.group(0)])
        pos = m.end()
    if not pos:
        return text
    out.add(text[pos:])
    return out.done()


_PATTERN_CACHE: dict[tuple[str, ...], re.Pattern[str]] = {}


def _exact_pattern(keys: tuple[str, ...]) -> re.Pattern[str]:
    pattern = _PATTERN_CACHE.get(keys)
    if pattern is None:
        pattern = re.compile("|".join(re.escape(k) for k in keys))
        if len(_PATTERN_CACHE) > 256:
            _PATTERN_CACHE.clear()
        _PATTERN_CACHE[keys] = pattern
    return pattern


def resolve_map(raw: Mapping[str, str]) -> dict[str, str]:
    """Substitute every value of a `{token: value}` map against the map itself, to a fixed
    point (melange resolves once in random map order, which is order-dependent: issue #1614).
    A reference cycle or an undefined name raises SubstError."""
    done: dict[str, str] = {}
    active: list[str] = []

    def resolve(key: str) -> str:
        if key in done:
            return done[key]
        if key in active:
            chain = " -> ".join(active[active.index(key):] + [key])
            raise SubstError(f"variable reference cycle: {chain}")
        active.append(key)
        try:
            value = substitute(raw[key], lookup)
        finally:
            active.pop()
        done[key] = value
        return value

    def lookup(name: str) -> str:
        key = token(name)
        if key not in raw:
            raise SubstError(f"variable {name} not defined")
        return resolve(key)

    for key in raw:
        resolve(key)
    return done


# --- if: conditions (pkg/cond/parser.go) -----------------------------------------------------

@dataclass(slots=True)
class _CondParser:
    text: str
    lookup: Lookup
    pos: int = 0

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _WS:
            self.pos += 1

    def fail(self, message: str) -> CondError:
        return CondError(f"{message} at position {self.pos} in {self.text!r}")

    def value(self) -> str:
        self.skip()
        if self.pos >= len(self.text):
            raise self.fail("unexpected end of input")
        ch = self.text[self.pos]
        if ch in "'\"":
            return self.literal(ch)
        if self.text.startswith("${{", self.pos):
            self.pos += 3
            self.skip()
            start = self.pos
            while self.pos < len(self.text) and self.text[self.pos] in _NAME_CHARS:
                self.pos += 1
            if self.pos == start:
                raise self.fail("empty variable name")
            name = self.text[start:self.pos]
            self.skip()
            if not self.text.startswith("}}", self.pos):
                raise self.fail(f"unterminated variable reference {name!r}")
            self.pos += 2
            return self.lookup(name)
        raise self.fail(f"unexpected character {ch!r}")

    def literal(self, quote: str) -> str:
        self.pos += 1
        out: list[str] = []
        escapes = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t"}
        while self.pos < len(self.text) and self.text[self.pos] != quote:
            ch = self.text[self.pos]
            if ch == "\\" and self.pos + 1 < len(self.text):
                self.pos += 1
                nxt = self.text[self.pos]
                out.append(escapes.get(nxt, "\\" + nxt))  # unknown escapes stay as written
            else:
                out.append(ch)
            self.pos += 1
        if self.pos >= len(self.text):
            raise self.fail("unterminated string literal")
        self.pos += 1
        return "".join(out)

    def comparison(self) -> bool:
        lhs = self.value()
        self.skip()
        op = self.text[self.pos:self.pos + 2]
        if op not in ("==", "!="):
            raise self.fail(f"expected '==' or '!=', got {op!r}" if op else "expected comparison operator")
        self.pos += 2
        rhs = self.value()
        return (lhs == rhs) if op == "==" else (lhs != rhs)

    def atom(self) -> bool:
        self.skip()
        if self.text.startswith("(", self.pos):
            self.pos += 1
            result = self.expr()
            self.skip()
            if not self.text.startswith(")", self.pos):
                raise self.fail("expected ')'")
            self.pos += 1
            return result
        return self.comparison()

    def expr(self) -> bool:
        # && and || have equal precedence and associate left to right, as in melange.
        result = self.atom()
        while True:
            self.skip()
            op = self.text[self.pos:self.pos + 2]
            if op not in ("&&", "||"):
                return result
            self.pos += 2
            rhs = self.atom()
            result = (result and rhs) if op == "&&" else (result or rhs)


def _null_lookup(name: str) -> str:
    return ""


def evaluate(expr: str, lookup: Lookup | Mapping[str, str] | None = None) -> bool:
    """Evaluate an `if:` condition. Variables resolve through `lookup` (unquoted values; a
    map is keyed by `${{name}}` tokens); without one they are empty, as in melange."""
    if lookup is None:
        fn: Lookup = _null_lookup
    elif isinstance(lookup, Mapping):
        table = lookup

        def fn(name: str) -> str:
            try:
                return table[token(name)]
            except KeyError:
                raise CondError(f"variable {name} not defined") from None
    else:
        fn = lookup
    parser = _CondParser(expr, fn)
    result = parser.expr()
    parser.skip()
    if parser.pos != len(expr):
        raise parser.fail(f"unexpected trailing input {expr[parser.pos:]!r}")
    return result


# --- var-transforms: Go RE2 regexp + Regexp.Expand replacement -----------------------------

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # the error is raised with the recipe's location instead


def go_regexp(pattern: str) -> re2._Regexp:
    """Compile a Go regexp with RE2 itself (Go's regexp is RE2's syntax and semantics): matching
    is linear in the input, so a pattern such as `(a+)+$` cannot take exponential time, and a
    construct RE2 refuses (backreferences, lookaround) is an error here as it is in melange."""
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        detail = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else exc
        raise TransformError(f"match value: {pattern} string does not compile into a regex: {detail}") from None


_TEMPLATE_NAME_RE = re.compile(r"[A-Za-z0-9_]+")


def go_expand(template: str, match) -> str:  # noqa: ANN001 (an re2 match)
    """Go's Regexp.Expand: `$1`, `$name`, `${1}`, `${name}` (the longest run of word
    characters after `$` is the name, so `$1x` is the group named `1x`), `$$` is `$`;
    unknown groups expand to nothing and a malformed `$` is kept literally."""
    out: list[str] = []
    i = 0
    while i < len(template):
        ch = template[i]
        if ch != "$" or i + 1 >= len(template):
            out.append(ch)
            i += 1
            continue
        nxt = template[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
            continue
        if nxt == "{":
            end = template.find("}", i + 2)
            name = template[i + 2:end] if end != -1 else ""
            if end == -1 or not _TEMPLATE_NAME_RE.fullmatch(name):
                out.append("$")
                i += 1
                continue
            i = end + 1
        else:
            m = _TEMPLATE_NAME_RE.match(template, i + 1)
            if not m:
                out.append("$")
                i += 1
                continue
            name = m.group(0)
            i = m.end()
        out.append(_group(match, name))
    return "".join(out)


def _group(match, name: str) -> str:  # noqa: ANN001
    if name.isdigit():
        index = int(name)
        if index <= (match.re.groups or 0):
            return match.group(index) or ""
        return ""
    if name in match.re.groupindex:
        return match.group(name) or ""
    return ""


def go_replace_all(pattern: re2._Regexp, text: str, template: str) -> str:
    """Go's ReplaceAllString: like re.sub, except that an empty match right after the
    previous match is skipped (Python ≥3.7 replaces it)."""
    out = _Output()
    pos = 0
    last_end = -1
    search_at = 0
    while search_at <= len(text):
        m = pattern.search(text, search_at)
        if m is None:
            break
        if m.start() == m.end() and m.start() == last_end:
            search_at = m.start() + 1
            continue
        out.add(text[pos:m.start()])
        out.add(go_expand(template, m))
        pos = m.end()
        last_end = m.end()
        search_at = m.end() + 1 if m.start() == m.end() else m.end()
    out.add(text[pos:])
    return out.done()


def apply_transform(value: str, match: str, replace: str) -> str:
    """One var-transform: replace every `match` in `value` by the Go template `replace`."""
    return go_replace_all(go_regexp(match), value, replace)
