"""Dependency atoms: ``name``, ``name>=1.2``, ``!name<2``, ``name@tag``, ``so:libc.so.6=1``.

The syntax accepted is the union of apk-tools' (``name(@tag)([<>~=]version)``) and apko's
(``name([<>~=]version)(@tag)``); `str()` prints apk's order. Operators: ``= < > <= >= ~`` plus
apk's ``<~ >~`` (fuzzy with an ordering) and ``><`` (match by package checksum); ``=~`` is
apko's spelling of ``~``. ``so:``, ``cmd:``, ``pc:`` and ``/path`` names are ordinary names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from distroless.apk import version as apkver
from distroless.errors import FormatError

_OP_CHARS = "<>=~"
_NAME_RE = re.compile(r"[^\s@<>=~!]+")
_TAG_RE = re.compile(r"[A-Za-z0-9._-]+")
_REVISION_RE = re.compile(r"-r[0-9]+$")


@dataclass(frozen=True, slots=True)
class Atom:
    """One dependency atom. `op` is canonical ('' when unversioned); `pin` is the @tag or ''."""

    name: str
    op: str = ""
    version: str = ""
    pin: str = ""
    conflict: bool = False

    @classmethod
    def parse(cls, text: str) -> Atom:
        """Parse one atom; FormatError naming the atom if malformed."""
        s = text.strip()
        conflict = s.startswith("!")
        if conflict:
            s = s[1:]
        m = _NAME_RE.match(s)
        if not m:
            raise FormatError(f"invalid dependency {text!r}: missing package name")
        name, rest = m.group(0), s[m.end() :]
        pin = ""
        if rest.startswith("@"):  # apk order: the tag before the operator
            t = re.match(r"@([^<>=~@]*)", rest)
            assert t is not None
            pin, rest = t.group(1), rest[t.end() :]
            if not _TAG_RE.fullmatch(pin):
                raise FormatError(f"invalid dependency {text!r}: bad repository tag {pin!r}")
        op, ver = "", ""
        if rest:
            j = 0
            while j < len(rest) and rest[j] in _OP_CHARS:
                j += 1
            if j == 0:
                raise FormatError(f"invalid dependency {text!r}: unexpected {rest!r} after the name")
            raw_op, ver = rest[:j], rest[j:]
            if "@" in ver:  # apko order: the tag after the version
                if pin:
                    raise FormatError(f"invalid dependency {text!r}: two repository tags")
                ver, pin = ver.split("@", 1)
                if not _TAG_RE.fullmatch(pin):
                    raise FormatError(f"invalid dependency {text!r}: bad repository tag {pin!r}")
            try:
                op = apkver.canonical_op(raw_op)
            except FormatError:
                raise FormatError(f"invalid dependency {text!r}: unknown operator {raw_op!r}") from None
            if not ver:
                raise FormatError(f"invalid dependency {text!r}: operator {raw_op!r} without a version")
            if op != "><" and not apkver.validate(ver):
                raise FormatError(f"invalid dependency {text!r}: {ver!r} is not a valid apk version")
        return cls(name=name, op=op, version=ver, pin=pin, conflict=conflict)

    def __str__(self) -> str:
        tag = f"@{self.pin}" if self.pin else ""
        return f"{'!' if self.conflict else ''}{self.name}{tag}{self.op}{self.version}"

    @property
    def versioned(self) -> bool:
        return self.op != ""

    def version_matches(self, have: str | None) -> bool:
        """Whether a provider at version `have` falls inside the version range (ignores `!`).

        `have` is None for an unversioned provide, which only an unversioned atom accepts.
        An ``so:`` atom ``=V`` with no ``-rN`` also accepts ``0.V``: apko's rewrite for
        melange-generated shared-object versions (apk-tools compares V as is; both pass).
        """
        if not self.op:
            return True
        if have is None or self.op == "><":
            return False  # checksum atoms are matched against packages, not versions
        if apkver.matches(self.op, have, self.version):
            return True
        return (
            self.op == "="
            and self.name.startswith("so:")
            and not _REVISION_RE.search(self.version)
            and apkver.compare(have, "0." + self.version) == 0
        )

    def matches(self, have: str | None) -> bool:
        """Whether a provider at version `have` satisfies the atom; a conflict inverts the test."""
        return self.version_matches(have) != self.conflict

    def without_pin(self) -> Atom:
        return Atom(self.name, self.op, self.version, "", self.conflict)


def parse_atoms(texts: list[str] | str) -> list[Atom]:
    """Parse a list of atoms, or a whitespace-separated string of them."""
    items = texts.split() if isinstance(texts, str) else texts
    return [Atom.parse(t) for t in items]
