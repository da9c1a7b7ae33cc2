"""The resolver's view of an index: every name mapped to the packages that can fill it.

Built once from a list of `Package` records (in repository order: earlier wins ties, as apk's
"lowest repository" rule) and reused for any number of resolutions. Dependency atoms are parsed
here, once; a package whose metadata cannot be used (bad atom, foreign arch, missing from a
sibling arch, providing one name twice) is kept but marked `broken`, so errors can say why.
"""

from __future__ import annotations

import base64

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from distroless.apk import version as apkver
from distroless.apk.atom import Atom
from distroless.apk.model import Package
from distroless.errors import FormatError


@dataclass(eq=False, slots=True)
class Candidate:
    """One package with its parsed metadata. `provides` lists its own name first.

    Only the provides (for the name map) and install_if (for the reverse map) are read when the
    index is built; dependencies, conflicts and the provides' version checks are parsed the
    first time the resolver looks at the candidate, so an index of thousands of packages costs
    little more than the handful a world reaches."""

    idx: int
    pkg: Package
    provides: tuple[tuple[str, str | None], ...]
    install_if: tuple[Atom, ...]
    known_broken: str = ""  # found when the index was built (arch, siblings, provides)
    _parsed: tuple | None = None  # (depends, conflicts, dep_names, broken) once parsed

    @property
    def name(self) -> str:
        return self.pkg.name

    @property
    def label(self) -> str:
        pin = f"@{self.pkg.pin}" if self.pkg.pin else ""
        return f"{self.pkg.name}{pin}-{self.pkg.version}"

    @property
    def depends(self) -> tuple[Atom, ...]:
        return self._parse()[0]

    @property
    def conflicts(self) -> tuple[Atom, ...]:
        return self._parse()[1]

    @property
    def dep_names(self) -> tuple[str, ...]:
        """Names of all dependencies, conflicts included, in index order: apk walks them all
        when ordering the install (a conflict's name, if installed, goes first too)."""
        return self._parse()[2]

    @property
    def broken(self) -> str:
        return self.known_broken or self._parse()[3]

    def _parse(self) -> tuple:
        if self._parsed is None:
            self._parsed = _parse_depends(self)
        return self._parsed


@functools.lru_cache(maxsize=131072)
def _parse_atom(text: str) -> Atom:
    # Indexes repeat the same atoms (so:libc.musl-x86_64.so.1) thousands of times.
    return Atom.parse(text)


_NOT_IN_PLAIN_PROVIDE = frozenset("<>~!@ \t")


def _split_provide(text: str) -> tuple[str, str | None]:
    """`name` or `name=version`, without validating the version (that waits for `_parse`)."""
    if not _NOT_IN_PLAIN_PROVIDE.intersection(text):
        name, sep, ver = text.partition("=")
        if name and (not sep or (ver and "=" not in ver)):
            return name, (ver if sep else None)
    atom = _parse_atom(text)
    if atom.conflict or atom.pin or atom.op not in ("", "="):
        raise FormatError(f"invalid provide {text!r}")
    return atom.name, (atom.version if atom.op else None)


def _parse_depends(cand: Candidate) -> tuple:
    depends: list[Atom] = []
    conflicts: list[Atom] = []
    names: list[str] = []
    broken = ""
    try:
        for text in cand.pkg.depends:
            atom = _parse_atom(text)
            names.append(atom.name)
            if atom.pin:  # apk: a package dependency cannot name a repository tag
                raise FormatError(f"dependency {text!r} names a repository tag")
            (conflicts if atom.conflict else depends).append(atom)
        for _, ver in cand.provides[1:]:
            if ver is not None and not apkver.validate(ver):
                raise FormatError(f"invalid provide version {ver!r}")
    except FormatError as exc:
        broken = f"uninstallable: {exc}"
    return tuple(depends), tuple(conflicts), tuple(dict.fromkeys(names)), broken


def _candidate(idx: int, pkg: Package, arch: str | None) -> Candidate:
    broken = ""
    install_if: tuple[Atom, ...] = ()
    provides: list[tuple[str, str | None]] = [(pkg.name, pkg.version)]
    try:
        if pkg.install_if:
            install_if = tuple(_parse_atom(t) for t in pkg.install_if)
        provides += [_split_provide(t) for t in pkg.provides]
    except FormatError as exc:
        broken = f"uninstallable: {exc}"
        provides = provides[:1]
    if not broken and arch and pkg.arch not in ("", "noarch", arch):
        broken = f"uninstallable: arch {pkg.arch}"
    if not broken:
        # apk: claiming one name twice conflicts unless both claims are unversioned.
        seen: dict[str, str | None] = {}
        for name, ver in provides:
            if name in seen and not (ver is None and seen[name] is None):
                broken = f"conflicts with itself: provides {name} twice"
                break
            seen[name] = ver
    return Candidate(idx, pkg, tuple(provides), install_if, broken)


@dataclass(slots=True)
class Index:
    """Names → candidates, for one architecture.

    `siblings` are the package sets of the other architectures being built: a name+version
    missing from any of them is disqualified here, so every arch resolves to the same versions.
    """

    candidates: list[Candidate]
    providers: dict[str, list[tuple[Candidate, str | None]]]
    by_name: dict[str, list[Candidate]]
    rinstall_if: dict[str, list[Candidate]]
    _viable: dict[int, bool] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        packages: Iterable[Package],
        *,
        arch: str | None = None,
        siblings: Sequence[Iterable[Package]] = (),
    ) -> Index:
        sibling_sets = [{(p.name, p.version) for p in s} for s in siblings]
        cands: list[Candidate] = []
        providers: dict[str, list[tuple[Candidate, str | None]]] = {}
        by_name: dict[str, list[Candidate]] = {}
        rinstall_if: dict[str, list[Candidate]] = {}
        seen: set[bytes] = set()
        for pkg in packages:
            # apk-tools identifies a package by its control checksum: a later entry whose
            # checksum decodes to one already seen is the same package and is dropped.
            if pkg.checksum.startswith("Q1"):
                try:
                    ident = base64.b64decode(pkg.checksum[2:])
                except ValueError:
                    ident = pkg.checksum.encode()
                if ident in seen:
                    continue
                seen.add(ident)
            c = _candidate(len(cands), pkg, arch)
            if not c.known_broken:
                for n, s in enumerate(sibling_sets):
                    if (pkg.name, pkg.version) not in s:
                        c.known_broken = f"not available in every requested architecture (sibling {n + 1})"
                        break
            cands.append(c)
            by_name.setdefault(pkg.name, []).append(c)
            for name, ver in c.provides:
                providers.setdefault(name, []).append((c, ver))
            for atom in c.install_if:
                if not atom.conflict:
                    lst = rinstall_if.setdefault(atom.name, [])
                    if not lst or lst[-1] is not c:
                        lst.append(c)
        return cls(cands, providers, by_name, rinstall_if)

    def viable(self, cand: Candidate) -> bool:
        """Not broken, and every dependency has some viable provider (pins and the current
        selection aside). Memoised; a cycle counts as viable. Iterative (an explicit stack
        standing for the recursion), so a dependency chain of any depth is fine."""
        memo = self._viable
        hit = memo.get(cand.idx)
        if hit is not None:
            return hit
        stack: list[list] = []  # frames: [candidate, index of dependency, index of provider]

        def enter(c: Candidate) -> bool | None:
            """The known answer for `c`, or None after pushing a frame to work it out."""
            known = memo.get(c.idx)
            if known is not None:
                return known
            if c.broken:
                memo[c.idx] = False
                return False
            memo[c.idx] = True  # cycle guard: a candidate being decided counts as viable
            stack.append([c, 0, 0])
            return None

        enter(cand)
        child: bool | None = None  # the answer of the frame just finished, for its parent
        while stack:
            frame = stack[-1]
            c, ai, pi = frame
            if ai == len(c.depends):
                stack.pop()
                child = True
                continue
            atom = c.depends[ai]
            provs = self.providers.get(atom.name, ())
            if child is None and pi < len(provs):
                other, ver = provs[pi]
                if not atom.version_matches(ver):
                    frame[2] = pi + 1
                    continue
                child = True if other is c else enter(other)
                if child is None:
                    continue  # descended; the answer comes back in `child`
            if child:  # this dependency has a viable provider: on to the next one
                frame[1], frame[2] = ai + 1, 0
            elif pi < len(provs):
                frame[2] = pi + 1
            else:  # no provider of this dependency is viable
                memo[c.idx] = False
                stack.pop()
                child = False
                continue
            child = None
        return memo[cand.idx]

    def unviable_reason(self, cand: Candidate) -> str:
        if cand.broken:
            return cand.broken
        for atom in cand.depends:
            if not any(atom.version_matches(v) and self.viable(c) for c, v in self.providers.get(atom.name, ())):
                return f"its dependency {atom} cannot be satisfied"
        return ""
