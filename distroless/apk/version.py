"""APK version strings: validation, ordering and operator matching, as apk-tools defines them.

Grammar: ``digit{.digit}...{letter}{_suffix{number}}...{~hash}{-r number}``. Suffixes are
``alpha beta pre rc`` (pre-releases, sorting before the bare version) and ``cvs svn git hg p``
(post-releases, sorting after it); several may follow one another (``0.1_alpha_pre2``).

Where apko differs, this module follows apk-tools (its ``version.data`` table is the
definition and passes in full):

* a digit group after the first with a leading zero (``4.09``, ``8.2.0015``) is compared as a
  string, Gentoo-style, so ``8.2.0015 < 8.2.002``; apko compares integers;
* any number of ``_suffix`` groups is accepted (apko allows one pre- and one post-suffix);
* a ``~<hex>`` commit hash before ``-rN`` is accepted and compared as a string (apko rejects it).

Comparing an invalid version is still defined (apk compares the valid prefix), so sorting
never raises; `validate`/`parse` tell whether a string is well formed.
"""

from __future__ import annotations

import functools
from typing import Final

from distroless.errors import FormatError

# Token kinds, in the order apk-tools ranks them (the order is the semantics: which token may
# follow which, and which version is greater when one runs out first).
INITIAL_DIGIT: Final = 0
DIGIT: Final = 1
LETTER: Final = 2
SUFFIX: Final = 3
SUFFIX_NO: Final = 4
COMMIT_HASH: Final = 5
REVISION_NO: Final = 6
END: Final = 7
INVALID: Final = 8

# Suffix ranks; NONE is the pivot between pre-release and post-release suffixes.
_SUFFIX_NONE: Final = 5
_SUFFIXES: Final = {"alpha": 1, "beta": 2, "pre": 3, "rc": 4, "cvs": 6, "svn": 7, "git": 8, "hg": 9, "p": 10}

# Result bits, combined into operator masks as apk-tools does.
LESS: Final = 1
EQUAL: Final = 2
GREATER: Final = 4
FUZZY: Final = 8
CHECKSUM: Final = 16  # `><`: match by package checksum, not by version (own bit, unlike apk)

_HEX: Final = frozenset("0123456789abcdefABCDEF")
_LOWER: Final = frozenset("abcdefghijklmnopqrstuvwxyz")

# A token: (kind, number, text). `number` serves numeric kinds and suffix ranks, `text` the
# string comparisons (leading-zero digits, letters, hashes).
Token = tuple[int, int, str]


def _digits_end(s: str, i: int) -> int:
    n = len(s)
    while i < n and "0" <= s[i] <= "9":
        i += 1
    return i


@functools.lru_cache(maxsize=65536)
def tokenize(version: str) -> tuple[Token, ...]:
    """The token stream of `version`, always ending in an END or INVALID token."""
    out: list[Token] = []
    j = _digits_end(version, 0)
    if j == 0:
        return ((INVALID, 0, ""),)
    out.append((INITIAL_DIGIT, int(version[:j]), version[:j]))
    kind, i, n = INITIAL_DIGIT, j, len(version)
    while i < n:
        c = version[i]
        if c in _LOWER:
            if kind > DIGIT:
                break
            kind = LETTER
            out.append((LETTER, ord(c), c))
            i += 1
        elif c == "." or "0" <= c <= "9":
            if c == ".":
                if kind > DIGIT:
                    break
                i += 1
            if kind in (INITIAL_DIGIT, DIGIT):
                kind = DIGIT
            elif kind == SUFFIX:
                kind = SUFFIX_NO
            else:
                break
            j = _digits_end(version, i)
            if j == i:
                break
            out.append((kind, int(version[i:j]), version[i:j]))
            i = j
        elif c == "_":
            if kind > SUFFIX_NO:
                break
            j = i + 1
            while j < n and version[j] in _LOWER:
                j += 1
            rank = _SUFFIXES.get(version[i + 1 : j])
            if rank is None:
                break
            kind = SUFFIX
            out.append((SUFFIX, rank, version[i + 1 : j]))
            i = j
        elif c == "~":
            if kind >= COMMIT_HASH:
                break
            j = i + 1
            while j < n and version[j] in _HEX:
                j += 1
            if j == i + 1:
                break
            kind = COMMIT_HASH
            out.append((COMMIT_HASH, 0, version[i + 1 : j]))
            i = j
        elif c == "-":
            if kind >= REVISION_NO or not version.startswith("-r", i):
                break
            j = _digits_end(version, i + 2)
            if j == i + 2:
                break
            kind = REVISION_NO
            out.append((REVISION_NO, int(version[i + 2 : j]), version[i + 2 : j]))
            i = j
        else:
            break
    else:
        out.append((END, 0, ""))
        return tuple(out)
    out.append((INVALID, 0, ""))
    return tuple(out)


def validate(version: str) -> bool:
    """True if `version` is a well-formed apk version."""
    return tokenize(version)[-1][0] == END


def parse(version: str) -> tuple[Token, ...]:
    """The tokens of a valid version; FormatError naming the version otherwise."""
    tokens = tokenize(version)
    if tokens[-1][0] != END:
        raise FormatError(f"invalid apk version {version!r}")
    return tokens


def _token_cmp(ta: Token, tb: Token) -> int:
    kind = ta[0]
    if kind == DIGIT and (ta[2][0] == "0" or tb[2][0] == "0"):
        a: int | str = ta[2]
        b: int | str = tb[2]
    elif kind in (LETTER, COMMIT_HASH):
        a, b = ta[2], tb[2]
    else:
        a, b = ta[1], tb[1]
    return (a > b) - (a < b)  # type: ignore[operator]


def _compare_mask(a: str, b: str, fuzzy: bool) -> int:
    """LESS, EQUAL or GREATER: how `a` relates to `b`; `fuzzy` makes b a prefix match."""
    ta, tb = tokenize(a), tokenize(b)
    n = min(len(ta), len(tb))
    k = 0
    while k < n:
        x, y = ta[k], tb[k]
        if x[0] != y[0] or x[0] >= END:
            break
        r = _token_cmp(x, y)
        if r:
            return LESS if r < 0 else GREATER
        k += 1
    x, y = ta[k], tb[k]
    if x[0] == y[0]:
        return EQUAL
    if fuzzy and y[0] == END:
        return EQUAL
    # One side has more tokens: it is greater, unless the extra token is a pre-release suffix.
    if x[0] == SUFFIX and x[1] < _SUFFIX_NONE:
        return LESS
    if y[0] == SUFFIX and y[1] < _SUFFIX_NONE:
        return GREATER
    if x[0] > y[0]:
        return LESS
    if y[0] > x[0]:
        return GREATER
    return EQUAL


@functools.lru_cache(maxsize=262144)
def compare(a: str, b: str) -> int:
    """-1, 0 or 1 as version `a` sorts before, equal to or after `b`."""
    if a == b:
        return 0
    r = _compare_mask(a, b, False)
    return -1 if r == LESS else (1 if r == GREATER else 0)


#: Sort key: ``sorted(versions, key=version_key)`` orders oldest first.
version_key = functools.cmp_to_key(compare)


_OP_MASKS: Final = {
    "": LESS | EQUAL | GREATER,
    "=": EQUAL,
    "<": LESS,
    ">": GREATER,
    "<=": LESS | EQUAL,
    ">=": GREATER | EQUAL,
    "~": EQUAL | FUZZY,
    "<~": LESS | EQUAL | FUZZY,
    ">~": GREATER | EQUAL | FUZZY,
    "><": CHECKSUM,
}

#: Canonical operator spellings, as apk-tools prints them.
OPERATORS: Final = tuple(_OP_MASKS)


def op_mask(op: str) -> int:
    """The result mask of an operator string; apk accepts `<`, `>`, `=`, `~` in any order."""
    if op == "><":
        return CHECKSUM
    mask = 0
    for c in op:
        if c == "<":
            mask |= LESS
        elif c == ">":
            mask |= GREATER
        elif c == "=":
            mask |= EQUAL
        elif c == "~":
            mask |= FUZZY | EQUAL
        else:
            raise FormatError(f"unknown version operator {op!r}")
    return mask if op else LESS | EQUAL | GREATER


_MASK_OPS: Final = {mask: op for op, mask in _OP_MASKS.items()}


def canonical_op(op: str) -> str:
    """The canonical spelling of an operator (`=~` → `~`, `=<` → `<=`); FormatError if none."""
    mask = op_mask(op)
    if mask not in _MASK_OPS:
        raise FormatError(f"unsupported version operator {op!r}")
    return _MASK_OPS[mask]


def matches(op: str, have: str, want: str) -> bool:
    """Whether version `have` satisfies ``<op> want`` (e.g. ``matches(">=", "1.2", "1.0")``).

    `~` is apk's fuzzy match: `want` must be a token prefix of `have` (``3.6.9 ~ 3.6``);
    `<~`/`>~` extend it with an ordering. A leading `!` negates. `><` compares checksums, so
    as a version test it is plain string equality.
    """
    negate = op.startswith("!")
    if negate:
        op = op[1:]
    mask = op_mask(op)
    if mask == CHECKSUM:
        ok = have == want
    elif mask & (LESS | EQUAL | GREATER) == LESS | EQUAL | GREATER:
        ok = True
    else:
        ok = bool(_compare_mask(have, want, bool(mask & FUZZY)) & mask)
    return ok != negate
