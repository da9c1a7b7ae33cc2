"""Choose the packages for a world: apko's contract, apk-tools' rules where apko has known bugs.

The search is depth-first with backtracking over an `Index`:

* A *requirement* is an atom plus who asked for it. Satisfied requirements (some selected
  package already fills the name acceptably) are just recorded as constraints; the rest are
  decided one at a time: empty candidate lists first, then real package names before virtual
  ones (so `mail-reader mymailreader` installs only mymailreader), then the fewest candidates
  (apko), then first come.
* Names are exclusive as in apk-tools: a package claims its own name and every provide; two
  packages may share a name only when both provide it unversioned. This fixes apko's #921
  (two providers of one versioned name, e.g. two `so:` providers, were not a conflict).
* A virtual name with several unversioned providers is auto-selected only through one with a
  `provider_priority` (apk-tools refuses to guess; apko picks one). A lone unversioned provider
  is taken, as apk-tools 2 and apko do (apk-tools 3 refuses; Alpine 3.16's /bin/sh needs it).
* Candidate preference, best first (apk-tools' `compare_providers`, plus apko's origin rule
  among versions of one package): the preferred repository tag; for one package name, the
  version whose origin is already selected at that version (apko); the higher version of the
  requested name (a versioned provide above an unversioned one); the higher version of the same
  package; the higher provider_priority; the earlier repository (apk-tools; apko takes the
  higher version regardless of repository); the name.
* `@tag` pins: a world atom `name@tag` prefers and allows that tag's repository; the
  dependencies of what it pulls in may use the tag (allowed) but prefer untagged repositories.
* install_if is global (apk-tools, not apko's per-package scope): once every condition holds
  (`!name` conditions: the name is absent) the package joins. One whose candidates are all
  impossible is skipped rather than forcing other choices.
* Dead ends backtrack to the latest choice with alternatives (apk-tools' `add a` on a repo where
  a-3 needs d>1.5 but b needs d<2.0 installs a-2; apko's greedy walk errors).

The install order is apk-tools' changeset order, which is also apko's: world atoms sorted by
name, each package after its dependencies, an install_if package right after the last of its
triggers.
"""

from __future__ import annotations

import functools
import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from distroless.apk import version as apkver
from distroless.apk.atom import Atom
from distroless.apk.model import Package
from distroless.errors import ResolveError
from distroless.resolve.provider import Candidate, Index

_MAX_BACKTRACKS = 20000


@dataclass(frozen=True, slots=True, eq=False)
class Requirement:
    atom: Atom
    requirer: Candidate | None  # None: the world
    allowed: frozenset[str]  # repository tags this requirement may draw from ('' = untagged)
    preferred: frozenset[str]
    iif: bool = False  # raised by a satisfied install_if, not by a dependency


@dataclass(slots=True)
class _State:
    chosen: dict[str, Candidate] = field(default_factory=dict)
    claims: dict[str, tuple[tuple[Candidate, str | None], ...]] = field(default_factory=dict)
    constraints: dict[str, tuple[Requirement, ...]] = field(default_factory=dict)
    conflicts: dict[str, tuple[tuple[Atom, Candidate | None], ...]] = field(default_factory=dict)
    # Undecided requirements: by identity in arrival order, by name (to re-check when the name
    # is claimed), and a heap by decision order (stale entries are skipped when popped).
    pending: dict[int, Requirement] = field(default_factory=dict)
    pending_by_name: dict[str, tuple[Requirement, ...]] = field(default_factory=dict)
    heap: list[tuple[tuple[int, int, int, int, int], int, Requirement]] = field(default_factory=list)
    allowed: dict[int, frozenset[str]] = field(default_factory=dict)
    why: dict[int, Requirement] = field(default_factory=dict)
    order: list[Candidate] = field(default_factory=list)
    skipped_iif: frozenset[str] = frozenset()
    claim_log: list[str] = field(default_factory=list)  # names in the order they were claimed
    iif_seen: int = 0  # claim_log entries already looked at for install_if triggers

    def copy(self) -> _State:
        return _State(
            dict(self.chosen),
            dict(self.claims),
            dict(self.constraints),
            dict(self.conflicts),
            dict(self.pending),
            dict(self.pending_by_name),
            list(self.heap),
            dict(self.allowed),
            dict(self.why),
            list(self.order),
            self.skipped_iif,
            list(self.claim_log),
            self.iif_seen,
        )


@dataclass(slots=True)
class _Failure:
    req: Requirement
    rejected: list[tuple[Candidate, str]]
    no_provider: bool


class _Dead(Exception):
    """A branch of the search cannot be completed."""


def chain(state: _State, req: Requirement) -> str:
    """`world → curl → so:libssl.so.3`: who asked for a requirement."""
    names = [str(req.atom)]
    seen: set[int] = set()
    r: Requirement | None = req
    while r is not None and r.requirer is not None and r.requirer.idx not in seen:
        seen.add(r.requirer.idx)
        names.append(r.requirer.name)
        r = state.why.get(r.requirer.idx)
    names.append("install_if" if req.iif and req.requirer is None else "world")
    return " → ".join(reversed(names))


def _claim_ok(atom: Atom, ver: str | None, cand: Candidate) -> bool:
    if atom.op == "><":
        return cand.pkg.checksum == atom.version
    return atom.version_matches(ver)


class Resolver:
    """Resolves worlds against one `Index`. Cheap to create; the index carries the caches."""

    def __init__(self, index: Index) -> None:
        self.index = index
        self._static: dict[tuple[Atom, frozenset[str]], list[tuple[Candidate, str | None, str]]] = {}
        self._ranks: dict[tuple[Atom, frozenset[str]], tuple[int, bool]] = {}
        self._seq = 0  # arrival number of requirements: ties in decision order go first-come

    # -- candidate filtering -------------------------------------------------------------

    def _static_candidates(self, req: Requirement) -> list[tuple[Candidate, str | None, str]]:
        """Providers of the name with a reason each is impossible whatever else is selected
        ('' if possible). Cached per atom and allowed tags."""
        key = (req.atom, req.allowed)
        hit = self._static.get(key)
        if hit is not None:
            return hit
        out: list[tuple[Candidate, str | None, str]] = []
        atom = req.atom
        for cand, ver in self.index.providers.get(atom.name, ()):
            if not self.index.viable(cand):
                why = self.index.unviable_reason(cand)
            elif not _claim_ok(atom, ver, cand):
                shown = "an unversioned provide" if ver is None else f"version {ver}"
                why = f"{shown} does not satisfy {atom}"
            elif cand.pkg.pin not in req.allowed:
                why = f"is in repository @{cand.pkg.pin}, not allowed here"
            else:
                why = ""
            out.append((cand, ver, why))
        self._static[key] = out
        return out

    def _static_rank(self, req: Requirement) -> tuple[int, bool]:
        """(number of possible candidates, whether all of them are unversioned providers
        without a priority, which only an explicit choice elsewhere can select)."""
        key = (req.atom, req.allowed)
        hit = self._ranks.get(key)
        if hit is None:
            ok = [(c, v) for c, v, why in self._static_candidates(req) if not why]
            explicit = len(ok) > 1 and all(
                v is None and c.name != req.atom.name and not c.pkg.provider_priority for c, v in ok
            )
            hit = self._ranks[key] = (len(ok), explicit)
        return hit

    def _dynamic_reason(self, st: _State, req: Requirement, cand: Candidate, ver: str | None) -> str:
        """Why `cand` cannot join the current selection ('' if it can)."""
        other = st.chosen.get(cand.name)
        if other is not None and other is not cand:
            return f"{other.label} is already selected"
        if ver is None and cand.name != req.atom.name and not cand.pkg.provider_priority and not req.iif:
            # Several unversioned providers and no priority: apk refuses to guess. A single one
            # is taken, as apk-tools 2 and apko do (Alpine <= 3.16 fills /bin/sh that way).
            if self._static_rank(req)[0] > 1 and not st.pending_by_name.get(cand.name):
                return "provides the name without a version or a provider_priority; select it explicitly"
        if req.iif and req.atom.name in st.skipped_iif:
            return "skipped"
        for name, pv in cand.provides:
            for c0, v0 in st.claims.get(name, ()):
                if c0 is not cand and not (pv is None and v0 is None):
                    return f"conflicts with {c0.label}: both provide {name}"
            for r in st.constraints.get(name, ()):
                if not _claim_ok(r.atom, pv, cand):
                    return f"breaks {chain(st, r)}"
            for atom, owner in st.conflicts.get(name, ()):
                if owner is not cand and atom.version_matches(pv):
                    who = owner.label if owner else "world"
                    return f"conflicts with {who}: it requires !{atom.name}{atom.op}{atom.version}"
        for atom in cand.conflicts:
            for c0, v0 in st.claims.get(atom.name, ()):
                if c0 is not cand and atom.version_matches(v0):
                    return f"conflicts with {c0.label}: requires !{atom.name}{atom.op}{atom.version}"
        for atom in cand.depends:  # forward check: a dependency already decided against it
            claims = st.claims.get(atom.name)
            if claims and not any(_claim_ok(atom, v0, c0) for c0, v0 in claims):
                if not any(c0 is cand for c0, _ in claims):
                    return f"its dependency {atom} conflicts with {claims[0][0].label}"
        return ""

    def _satisfied(self, st: _State, req: Requirement) -> bool:
        claims = st.claims.get(req.atom.name)
        return bool(claims) and any(_claim_ok(req.atom, v, c) for c, v in claims)

    def _origin_version(self, st: _State) -> set[tuple[str, str]]:
        return {(c.pkg.origin, c.pkg.version) for c in st.chosen.values() if c.pkg.origin}

    def candidates(self, st: _State, req: Requirement) -> tuple[list[Candidate], list[tuple[Candidate, str]]]:
        """The acceptable candidates, best first, and the rejected ones with reasons."""
        ok: list[tuple[Candidate, str | None]] = []
        rejected: list[tuple[Candidate, str]] = []
        for cand, ver, why in self._static_candidates(req):
            if not why:
                if req.iif and cand.name != req.atom.name:
                    continue
                why = self._dynamic_reason(st, req, cand, ver)
                if not why and req.iif and self._iif_triggers(st, cand) is None:
                    why = "its install_if conditions do not hold"
            if why:
                rejected.append((cand, why))
            else:
                ok.append((cand, ver))
        if len(ok) > 1:
            origins = self._origin_version(st)
            ok.sort(key=functools.cmp_to_key(lambda a, b: _prefer(req, origins, a, b)))
        return [c for c, _ in ok], rejected

    # -- state changes -------------------------------------------------------------------

    def _select(self, st: _State, req: Requirement, cand: Candidate) -> None:
        st.chosen[cand.name] = cand
        st.order.append(cand)
        st.why[cand.idx] = req
        allowed = req.allowed | req.preferred
        st.allowed[cand.idx] = allowed
        for name, ver in cand.provides:
            st.claims[name] = st.claims.get(name, ()) + ((cand, ver),)
            st.claim_log.append(name)
            self._recheck(st, name)
        for atom in cand.conflicts:
            st.conflicts[atom.name] = st.conflicts.get(atom.name, ()) + ((atom, cand),)
        for atom in cand.depends:
            self._add(st, Requirement(atom, cand, allowed, frozenset({""})))

    def _add(self, st: _State, req: Requirement) -> None:
        """A new requirement: recorded as a constraint if already satisfied, else pending."""
        name = req.atom.name
        if self._satisfied(st, req):
            st.constraints[name] = st.constraints.get(name, ()) + (req,)
            return
        st.pending[id(req)] = req
        st.pending_by_name[name] = st.pending_by_name.get(name, ()) + (req,)
        self._seq += 1
        heapq.heappush(st.heap, (self._order_key(req), self._seq, req))

    def _drop(self, st: _State, req: Requirement) -> None:
        del st.pending[id(req)]
        name = req.atom.name
        rest = tuple(r for r in st.pending_by_name[name] if r is not req)
        if rest:
            st.pending_by_name[name] = rest
        else:
            del st.pending_by_name[name]

    def _recheck(self, st: _State, name: str) -> None:
        """`name` gained a claim: its pending requirements that it now satisfies become constraints."""
        waiting = st.pending_by_name.get(name)
        if not waiting:
            return
        met = tuple(r for r in waiting if self._satisfied(st, r))
        if not met:
            return
        st.constraints[name] = st.constraints.get(name, ()) + met
        for req in met:
            del st.pending[id(req)]
        rest = tuple(r for r in waiting if r not in met)
        if rest:
            st.pending_by_name[name] = rest
        else:
            del st.pending_by_name[name]

    def _triggered_iif(self, st: _State) -> list[Requirement]:
        """install_if packages whose every condition now holds, as requirements. A condition
        only becomes true when its name is claimed, so only the names claimed since the last
        look are followed (a long install_if chain stays linear)."""
        out: list[Requirement] = []
        seen: set[str] = set()
        fresh = dict.fromkeys(st.claim_log[st.iif_seen:])
        st.iif_seen = len(st.claim_log)
        for name in fresh:
            for cand in self.index.rinstall_if.get(name, ()):
                n = cand.name
                if n in seen or n in st.chosen or n in st.skipped_iif:
                    continue
                triggers = self._iif_triggers(st, cand)
                if triggers is None:
                    continue
                seen.add(n)
                allowed = frozenset({""}).union(*(st.allowed.get(t.idx, frozenset()) for t in triggers))
                out.append(Requirement(Atom(n), None, allowed, frozenset({""}), iif=True))
        return out

    def _iif_triggers(self, st: _State, cand: Candidate) -> list[Candidate] | None:
        triggers: list[Candidate] = []
        for atom in cand.install_if:
            claims = st.claims.get(atom.name, ())
            hit = [c for c, v in claims if atom.version_matches(v)]
            if atom.conflict:
                if hit:
                    return None
            elif not hit:
                return None
            else:
                triggers.extend(hit)
        return triggers

    # -- the search ----------------------------------------------------------------------

    def _order_key(self, req: Requirement) -> tuple[int, int, int, int, int]:
        """The decision order of a requirement, which never changes (computed when it arrives)."""
        n, explicit = self._static_rank(req)
        return (0 if n == 0 else 1, 1 if req.iif else 0, 1 if explicit else 0,
                0 if req.atom.name in self.index.by_name else 1, n)

    def _next(self, st: _State) -> Requirement | None:
        """The next undecided requirement: lowest decision order, then first come. Satisfied
        ones left the pending set when their name was claimed, so this is a heap pop."""
        while True:
            heap = st.heap
            while heap:
                req = heap[0][2]
                if id(req) in st.pending and st.pending[id(req)] is req:
                    return req
                heapq.heappop(heap)  # decided or satisfied since it was pushed
            more = self._triggered_iif(st)
            if not more:
                return None
            for req in more:
                self._add(st, req)

    def _solve(self, world: Sequence[Atom], skip_iif: frozenset[str]) -> tuple[_State | None, _Failure | None, set[str]]:
        st = _State(skipped_iif=skip_iif)
        for atom in world:
            if atom.conflict:
                st.conflicts[atom.name] = st.conflicts.get(atom.name, ()) + ((atom, None),)
            else:
                tags = frozenset({atom.pin})
                self._add(st, Requirement(atom.without_pin(), None, tags | {""}, tags))
        stack: list[tuple[_State, Requirement, list[Candidate]]] = []
        first: _Failure | None = None
        failed_iif: set[str] = set()
        backtracks = 0
        while True:
            req = self._next(st)
            if req is None:
                return st, None, failed_iif
            cands, rejected = self.candidates(st, req)
            if not cands and req.iif:
                # apk skips an install_if package it cannot install rather than forcing it.
                st.skipped_iif = st.skipped_iif | {req.atom.name}
                self._drop(st, req)
                continue
            if cands:
                if len(cands) > 1:
                    stack.append((st.copy(), req, cands[1:]))
                self._select(st, req, cands[0])
                continue
            if first is None:
                no_provider = req.atom.name not in self.index.providers
                first = _Failure(req, rejected, no_provider)
                first_state = st
            if req.iif:
                failed_iif.add(req.atom.name)
            # backtrack to the latest choice with an untried alternative
            while stack:
                snap, sreq, rest = stack[-1]
                if len(rest) > 1:
                    stack[-1] = (snap, sreq, rest[1:])
                    st = snap.copy()
                else:
                    stack.pop()
                    st = snap
                if sreq.iif:
                    failed_iif.add(sreq.atom.name)
                self._select(st, sreq, rest[0])
                break
            else:
                assert first is not None
                self._first_state = first_state
                return None, first, failed_iif
            backtracks += 1
            if backtracks > _MAX_BACKTRACKS:
                assert first is not None
                self._first_state = first_state
                return None, first, failed_iif

    def resolve_state(self, world: Sequence[Atom]) -> _State:
        skip: frozenset[str] = frozenset()
        while True:
            st, failure, failed_iif = self._solve(world, skip)
            if st is not None:
                return st
            assert failure is not None
            if failed_iif - skip:
                skip = skip | failed_iif  # retry without the install_if packages that failed
                continue
            raise ResolveError(self._explain(self._first_state, failure))

    def _explain(self, st: _State, f: _Failure) -> str:
        head = chain(st, f.req)
        if f.no_provider:
            return f"{head}: no provider"
        rejected = f.rejected
        last = f.req.atom.name
        # When every candidate is dead because of its own dependencies, follow the best one down
        # so the message names the missing piece: `world → curl → so:libssl.so.3: no provider`.
        for _ in range(32):
            dead = [(c, self._dead_dependency(c)) for c, _ in rejected]
            if not dead or any(a is None for _, a in dead):
                break
            cand, atom = max(dead, key=lambda ca: (apkver.version_key(ca[0].pkg.version), -ca[0].idx))
            assert atom is not None
            head = f"{head} → {atom}" if cand.name == last else f"{head} → {cand.name} → {atom}"
            last = atom.name
            providers = self.index.providers.get(atom.name)
            if not providers:
                return f"{head}: no provider"
            rejected = [
                (c, self.index.unviable_reason(c) or f"{'an unversioned provide' if v is None else f'version {v}'} does not satisfy {atom}")
                for c, v in providers
            ]
        lines = [f"{head}: no candidate can be installed"]
        for cand, why in rejected:
            lines.append(f"  {cand.label}: {why}")
        return "\n".join(lines)

    def _dead_dependency(self, cand: Candidate) -> Atom | None:
        """The dependency that makes `cand` statically impossible, if that is why."""
        if cand.broken:
            return None
        for atom in cand.depends:
            if not any(atom.version_matches(v) and self.index.viable(c) for c, v in self.index.providers.get(atom.name, ())):
                return atom
        return None

    def resolve(self, world: Iterable[str | Atom]) -> list[Package]:
        """The packages to install for `world`, in install order."""
        atoms = [a if isinstance(a, Atom) else Atom.parse(a) for a in world]
        st = self.resolve_state(atoms)
        return [c.pkg for c in install_order(self.index, st, atoms)]


def _prefer(req: Requirement, origins: set[tuple[str, str]], a: tuple[Candidate, str | None], b: tuple[Candidate, str | None]) -> int:
    """Negative when `a` is the better candidate for `req`."""
    ca, va = a
    cb, vb = b
    pa, pb = ca.pkg, cb.pkg
    r = (pb.pin in req.preferred) - (pa.pin in req.preferred)
    if r:
        return r
    if pa.name == pb.name:
        # apko's origin rule, among versions of one package only: between different providers
        # of a virtual apk-tools' order decides (ifupdown-any: ifupdown-ng, priority 900, over
        # busybox-ifupdown, priority 200, even when busybox is selected).
        r = ((pb.origin, pb.version) in origins) - ((pa.origin, pa.version) in origins)
        if r:
            return r
    if va is not None and vb is not None:
        r = apkver.compare(vb, va)
        if r:
            return r
    elif va is not None or vb is not None:
        return -1 if va is not None else 1  # apk: an unversioned provide sorts below any version
    if pa.name == pb.name:
        r = apkver.compare(pb.version, pa.version)
        if r:
            return r
    r = pb.provider_priority - pa.provider_priority
    if r:
        return r
    r = ca.idx - cb.idx
    if r:
        return r
    return (pa.name > pb.name) - (pa.name < pb.name)


def install_order(index: Index, st: _State, world: Sequence[Atom]) -> list[Candidate]:
    """apk-tools' changeset order: sorted world, dependencies first, install_if after triggers."""
    out: list[Candidate] = []
    emitted: set[int] = set()
    processed: set[str] = set()

    def provider_of(name: str) -> Candidate | None:
        c = st.chosen.get(name)
        if c is not None:
            return c
        claims = st.claims.get(name)
        return claims[0][0] if claims else None

    # One explicit stack for the whole walk; a frame is [candidate, index of next dependency].
    # An install_if package whose triggers are all in is walked right after the last of them:
    # its root frame goes on top of the stack, as a nested walk would.
    stack: list[list] = []
    pending_iif: list[str] = []

    def start(name: str) -> None:
        if name in processed:
            return
        processed.add(name)
        root = provider_of(name)
        if root is None or root.idx in emitted:
            return
        emitted.add(root.idx)
        processed.update(n for n, _ in root.provides)
        stack.append([root, 0])

    def gen(name: str) -> None:
        start(name)
        while stack or pending_iif:
            if not stack:
                start(pending_iif.pop(0))
                continue
            frame = stack[-1]
            cand, i = frame
            if i < len(cand.dep_names):
                frame[1] = i + 1
                dname = cand.dep_names[i]
                if dname in processed:
                    continue
                processed.add(dname)
                dep = provider_of(dname)
                if dep is None or dep.idx in emitted:
                    continue
                emitted.add(dep.idx)
                processed.update(n for n, _ in dep.provides)
                stack.append([dep, 0])
                continue
            stack.pop()
            out.append(cand)
            for pname, _ in cand.provides:
                for iif in index.rinstall_if.get(pname, ()):
                    if st.chosen.get(iif.name) is iif and iif.name not in processed:
                        if all(a.conflict or a.name in processed for a in iif.install_if):
                            pending_iif.append(iif.name)
            while pending_iif:  # drain, one nested walk at a time
                depth = len(stack)
                start(pending_iif.pop(0))
                if len(stack) > depth:
                    break

    for atom in sorted((a for a in world if not a.conflict), key=lambda a: a.name):
        gen(atom.name)
    for cand in st.order:  # whatever the world walk did not reach (install_if stragglers)
        if cand.idx not in emitted:
            if cand.name not in processed:
                gen(cand.name)
            if cand.idx not in emitted:  # its name was processed through another provider
                emitted.add(cand.idx)
                out.append(cand)
    return out


def resolve(
    packages: Iterable[Package] | Index,
    world: Iterable[str | Atom],
    *,
    arch: str | None = None,
    siblings: Sequence[Iterable[Package]] = (),
) -> list[Package]:
    """Resolve `world` against `packages` (or a prebuilt `Index`); install order.

    `siblings`: the package lists of the other architectures in the same build; a name+version
    missing from any of them is not used (apko's multi-arch rule).
    """
    index = packages if isinstance(packages, Index) else Index.build(packages, arch=arch, siblings=siblings)
    return Resolver(index).resolve(world)
