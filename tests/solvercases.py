"""Run apk-tools' solver test cases through our resolver and report how each compares.

A case (`*.test`) names repositories (`@REPO [@tag] file.repo`, APKINDEX text), an installed
state (`@INSTALLED`), a world (`@WORLD`), the `apk` command line (`@ARGS`) and apk's output
(`@EXPECT`). Image builds always start from an empty root, so:

* `apk add` on an empty root is compared exactly: the install list, versions, tags and order;
* every other case is compared by its end state: the world apk would hold afterwards is
  resolved from scratch and the package set compared with apk's installed set after its
  changes (apk keeps installed versions where it may; a fresh build takes the best available,
  so some cases differ by design, each with its reason below);
* expected errors must be errors.

Usage: ``python tests/solvercases.py [--cases DIR] [--report docs/solver-cases.md]``
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from distroless.apk import index as apkindex
from distroless.apk import version as apkver
from distroless.apk.atom import Atom
from distroless.apk.model import Package
from distroless.errors import DistrolessError, FormatError, ResolveError
from distroless.resolve.provider import Index
from distroless.resolve.resolver import Resolver

DEFAULT_CASES = Path(__file__).resolve().parent / "fixtures" / "apk" / "solver-cases"
REAL_INDEXES = (
    ("Alpine v3.16 main x86_64", Path(__file__).resolve().parent / "fixtures" / "apk" / "alpine-v3.16-main-x86_64" / "APKINDEX.tar.gz", "x86_64"),
    ("Alpine v3.17 main aarch64", Path(__file__).resolve().parent / "fixtures" / "apk" / "alpine-v3.17-main-aarch64" / "APKINDEX.tar.gz", "aarch64"),
)
ARCH = "x86_64"

# Cases whose end state differs from apk's on purpose, and why. Every entry is checked: a
# reason for a case that agrees is reported as stale and fails tests/test_solver_cases.py.
BY_DESIGN: dict[str, str] = {
    "basic2": "apk keeps the installed a-1/b-1 when nothing asks for an upgrade; a fresh build takes the latest (a-2, b-2)",
    "basic7": "`--no-network` keeps the installed a-1/b-1 (new ones cannot be fetched); a fresh build fetches the latest",
    "basic12": "`--no-network` masks every repository package; an image build always fetches",
    "basic15": "apk keeps the installed b-1; a fresh build takes b-2",
    "basic20": "no repository at all: apk keeps what is installed, a fresh build has nothing to install from",
    "basic4": "apk keeps the installed b-1; a fresh build takes b-2",
    "basic9": "the installed a-1/b-1 stay under `--no-network`; a fresh build takes the latest",
    "installif11": "app/foo/lib stay installed although gone from the repositories; a fresh build cannot install what no repository has",
    "installif12": "no repository at all: apk keeps what is installed",
    "fix4": "`apk fix` reinstalls the installed b-1; a fresh build takes b-2",
    "fix5": "`apk fix` reinstalls the installed a-1; a fresh build takes a-2",
    "fix6": "`apk fix` reinstalls the installed versions; a fresh build takes the latest",
    "fix1": "`fix --upgrade b` upgrades only b and keeps a-1; a fresh build takes the latest a",
    "fix2": "`fix --upgrade a` upgrades only a and keeps b-1; a fresh build takes the latest b",
    "upgrade2": "`--ignore app` keeps the installed app-1; a fresh build takes app-2",
    "upgrade3": "`upgrade b` upgrades only b; app-1/libold stay, a fresh build takes app-2/libnew",
    "pinning5": "apk keeps the installed tagged versions without an upgrade; a fresh build takes the latest @testing ones",
    "pinning9": "apk keeps the installed versions without an upgrade; a fresh build takes the latest",
    "basic13": "`upgrade --latest` demands the newest a, which the world's a<2 forbids; image builds have no --latest and resolve a<2 to a-1",
    "basic21": "`--prune` drops the installed a that no repository has and leaves its world entry dangling; an image build must fail on a world atom nothing provides",
    "upgrade4": "`--prune` drops the installed b that no repository has and leaves its world entry dangling; an image build must fail on a world atom nothing provides",
    "pinning6": "apk keeps the installed b-3 (fetched from @testing earlier) during an upgrade; a fresh build takes b from the untagged repository, preferred for dependencies",
    "provides14": "apk-tools 3 will not auto-select even a lone unversioned provider without provider_priority; apk-tools 2 and apko take it, and real indexes need that (Alpine 3.16's /bin/sh is provided only by busybox, unversioned)",
    "selfupgrade1": "`--self-upgrade-only` upgrades apk-tools alone; not an image-build operation",
    "selfupgrade3": "`--self-upgrade-only` upgrades apk-tools alone; not an image-build operation",
    "selfupgrade4": "`--self-upgrade-only` upgrades apk-tools alone; not an image-build operation",
    "selfupgrade5": "`--preupgrade-only` upgrades a named subset; not an image-build operation",
    "selfupgrade6": "`--preupgrade-only` upgrades a named subset; not an image-build operation",
    "selfupgrade7": "`--preupgrade-only` upgrades a named subset; not an image-build operation",
    "pinning7": "apk only moves the installed packages to the @testing2 tag (same versions); a fresh build resolves c@testing2 to the latest allowed",
    "pinning10": "apk keeps c-3 (@testing) until asked; the end state is the same packages but via a downgrade path",
}



@dataclass(slots=True)
class Case:
    name: str
    args: list[str]
    repos: list[tuple[str, str]] = field(default_factory=list)  # (tag, file)
    installed: str = ""
    world: list[str] = field(default_factory=list)
    expect: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Outcome:
    case: str
    command: str
    verdict: str  # "agree", "differs by design", "fails"
    note: str


def load_case(path: Path) -> Case:
    case = Case(path.stem, [])
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("@ARGS"):
            case.args = line.split()[1:]
        elif line.startswith("@REPO") or line.startswith("@CACHE"):
            parts = line.split()[1:]
            case.repos.append((parts[0][1:], parts[1]) if parts[0].startswith("@") else ("", parts[0]))
        elif line.startswith("@INSTALLED"):
            case.installed = line.split()[1]
        elif line.startswith("@WORLD"):
            case.world = line.split()[1:]
        elif line.startswith("@EXPECT"):
            case.expect = lines[i + 1 :]
            break
    return case


_CHANGE = re.compile(r"^\(\d+/\d+\) (\w+(?: pinning)?) (\S+) \((\S+?)(?: -> (\S+))?\)$")


def _split_tag(name: str) -> tuple[str, str]:
    n, _, tag = name.partition("@")
    return n, tag


def _expected_changes(expect: list[str]) -> list[tuple[str, str, str]]:
    """(verb, name[@tag], final version) for each change line."""
    out = []
    for line in expect:
        m = _CHANGE.match(line.strip())
        if m:
            verb, name, v1, v2 = m.groups()
            out.append((verb, name, v2 or v1))
    return out


def _parse_args(args: list[str]) -> tuple[str, dict[str, str | bool], list[str]]:
    opts: dict[str, str | bool] = {}
    cmd = ""
    rest: list[str] = []
    it = iter(args)
    for a in it:
        if not cmd and a in ("add", "del", "upgrade", "fix"):
            cmd = a
        elif a in ("-t", "--virtual", "--preupgrade-depends", "--ignore"):
            opts[a] = next(it)
        elif a.startswith("-"):
            opts[a.split("=")[0]] = True
        else:
            rest.append(a)
    return cmd, opts, rest


def _fmt(pkgs: list[Package]) -> list[str]:
    return [f"{p.name}{'@' + p.pin if p.pin else ''} ({p.version})" for p in pkgs]


def _merge_world(world: list[str], add: list[str]) -> list[str]:
    names = {Atom.parse(a).name for a in add}
    return [w for w in world if Atom.parse(w).name not in names] + add


def _resolve(resolver: Resolver, world: list[str], force_broken: bool) -> list[Package]:
    if force_broken:  # apk --force-broken-world: drop the world atoms that cannot be installed
        ok = []
        for w in world:
            try:
                resolver.resolve(ok + [w])
                ok.append(w)
            except ResolveError:
                pass
        world = ok
    return resolver.resolve(world)


def run_case(case: Case, cases_dir: Path) -> Outcome:
    cmd, opts, args = _parse_args(case.args)
    command = " ".join(case.args)
    packages: list[Package] = []
    for tag, fname in case.repos:
        packages += apkindex.parse_text((cases_dir / fname).read_text(), fname, repository=fname, pin=tag)
    index = Index.build(packages, arch=ARCH)
    resolver = Resolver(index)
    expect_error = any(line.startswith("ERROR") for line in case.expect)
    direct = cmd == "add" and not case.installed

    def done(verdict: str, note: str) -> Outcome:
        if case.name in BY_DESIGN and verdict != "fails":
            if verdict == "agree":
                note = f"{note} (stale by-design entry: {BY_DESIGN[case.name]})"
        return Outcome(case.name, command, verdict, note)

    # The world after the command, as apk would write it.
    world = list(case.world)
    try:
        if cmd == "add":
            if "-t" in opts:  # `apk add -t NAME=VER deps...`: a virtual package holding the deps
                vname, _, vver = str(opts["-t"]).partition("=")
                vatom = Atom.parse(str(opts["-t"]))
                if vatom.op not in ("", "=") or vatom.pin:
                    raise FormatError(f"{opts['-t']}: bad package specifier")
                deps = [Atom.parse(a) for a in args]
                if any(d.pin for d in deps):
                    raise FormatError(f"{args}: a virtual package dependency cannot carry a tag")
                virt = Package(name=vname, version=vver or "0", depends=list(args))
                index = Index.build(packages + [virt], arch=ARCH)
                resolver = Resolver(index)
                args = [vname]
            for a in args:
                Atom.parse(a)
            world = _merge_world(world, args)
        elif cmd == "del":
            names = {Atom.parse(a).name for a in args}
            world = [w for w in world if Atom.parse(w).name not in names]
    except FormatError as exc:
        if expect_error:
            return done("agree", f"rejected as malformed: {exc}")
        return done("fails", f"rejected as malformed: {exc}")

    try:
        got = _resolve(resolver, world, bool(opts.get("--force-broken-world")))
        err = ""
    except DistrolessError as exc:
        got, err = [], str(exc).splitlines()[0]

    if expect_error:
        if err:
            return done("agree", f"error: {err}")
        return done(*_by_design_or_fail(case, f"apk errors; we install {', '.join(_fmt(got))}"))
    if err:
        return done(*_by_design_or_fail(case, f"we error: {err}"))

    changes = _expected_changes(case.expect)
    if direct:
        want = [f"{n} ({v})" for verb, n, v in changes if verb == "Installing"]
        have = _fmt(got)
        if want == have:
            return done("agree", "same packages, versions and order")
        if sorted(want) == sorted(have):
            return done(*_by_design_or_fail(case, f"same set, order differs: {', '.join(have)}"))
        return done(*_by_design_or_fail(case, f"apk installs {', '.join(want)}; we install {', '.join(have)}"))

    # End-state comparison.
    state: dict[str, str] = {}
    if case.installed:
        for p in apkindex.parse_text((cases_dir / case.installed).read_text(), case.installed):
            state[p.name] = p.version
    for verb, name, ver in changes:
        n, _ = _split_tag(name)
        if verb == "Purging":
            state.pop(n, None)
        else:
            state[n] = ver
    want_set = sorted(f"{n} ({v})" for n, v in state.items())
    have_set = sorted(f"{p.name} ({p.version})" for p in got)
    if want_set == have_set:
        return done("agree", "same end state")
    return done(*_by_design_or_fail(case, f"apk ends with {', '.join(want_set) or 'nothing'}; we resolve {', '.join(have_set) or 'nothing'}"))


def _by_design_or_fail(case: Case, note: str) -> tuple[str, str]:
    reason = BY_DESIGN.get(case.name)
    if reason:
        return "differs by design", f"{reason}. ({note})"
    return "fails", note


def run_all(cases_dir: Path = DEFAULT_CASES) -> list[Outcome]:
    return [run_case(load_case(p), cases_dir) for p in sorted(cases_dir.glob("*.test"), key=_natural)]


@dataclass(slots=True)
class ProviderWorld:
    index: str
    name: str  # the virtual: the world is just this name
    providers: str  # "pkg (k:prio)" for each, index order
    expected: str  # what apk-tools' rules select ("error" when they refuse to guess)
    got: str

    @property
    def agrees(self) -> bool:
        return self.expected == self.got


def apk_tools_choice(index: Index, name: str) -> str:
    """What apk-tools' `select_package` takes for a world holding only the virtual `name`,
    written from its rules (solver.c, `is_provider_auto_selectable` and `compare_providers`),
    independently of our resolver: providers that cannot be installed are out; an unversioned
    provide without provider_priority is not auto-selected (a lone one is, as apk-tools 2 and
    apko do: the by-design `provides14`); then the higher provided version (unversioned lowest),
    the higher provider_priority, the first in the index."""
    cands = [(c, v) for c, v in index.providers.get(name, ()) if index.viable(c)]
    selectable = [(c, v) for c, v in cands if v is not None or c.pkg.provider_priority]
    if not selectable:
        selectable = cands if len(cands) == 1 else []
    best: tuple | None = None
    for c, v in selectable:
        if best is None or _apk_better((c, v), best):
            best = (c, v)
    return "error" if best is None else f"{best[0].pkg.name}-{best[0].pkg.version}"


def _apk_better(a: tuple, b: tuple) -> bool:
    (ca, va), (cb, vb) = a, b
    if va is not None and vb is not None:
        r = apkver.compare(va, vb)
        if r:
            return r > 0
    elif (va is None) != (vb is None):
        return va is not None
    if ca.pkg.name == cb.pkg.name:
        r = apkver.compare(ca.pkg.version, cb.pkg.version)
        if r:
            return r > 0
    return ca.pkg.provider_priority > cb.pkg.provider_priority  # ties: the earlier stays


def provider_worlds() -> list[ProviderWorld]:
    """Every virtual name (no package has it as its own name) with several providers in the
    real Alpine indexes, resolved alone and compared with apk-tools' choice."""
    out: list[ProviderWorld] = []
    for label, path, arch in REAL_INDEXES:
        packages = apkindex.read_file(path, verify=False).packages
        index = Index.build(packages, arch=arch)
        resolver = Resolver(index)
        for name in sorted(index.providers):
            provs = index.providers[name]
            if name in index.by_name or len({c.pkg.name for c, _ in provs}) < 2:
                continue
            try:
                st = resolver.resolve_state([Atom.parse(name)])
                # the provider chosen for the world's requirement (its dependencies may bring
                # in other providers of the same unversioned name)
                got = next(f"{c.pkg.name}-{c.pkg.version}" for c in st.order
                           if st.why[c.idx].requirer is None and st.why[c.idx].atom.name == name)
            except ResolveError:
                got = "error"
            shown = ", ".join(f"{c.pkg.name}{'' if v is None else '=' + v} (k:{c.pkg.provider_priority})"
                              for c, v in provs[:8]) + (f", … {len(provs) - 8} more" if len(provs) > 8 else "")
            out.append(ProviderWorld(label, name, shown, apk_tools_choice(index, name), got))
    return out


def render_provider_worlds(worlds: list[ProviderWorld]) -> str:
    """The section of the report on the real indexes: a tally per index, every world whose
    providers are unversioned (provider_priority decides) in full, and any disagreement."""
    lines = ["", "## Real indexes: virtuals with several providers", "",
             "Every name in the real Alpine indexes of `tests/fixtures` that no package has as its "
             "own name and that several packages provide, resolved as a world of its own and "
             "compared with the provider apk-tools' rules select (`select_package`: providers "
             "that cannot be installed are out, an unversioned provide without provider_priority "
             "is not auto-selected, then the higher provided version, the higher "
             "provider_priority, the first in the index).", ""]
    for label, _, _ in REAL_INDEXES:
        mine = [w for w in worlds if w.index == label]
        agree = sum(w.agrees for w in mine)
        lines.append(f"- {label}: {len(mine)} worlds, {agree} agree, {len(mine) - agree} differ")
    lines += ["", "Worlds decided by provider_priority or refused (unversioned provides), and any that differ:", "",
              "| index | world | providers (index order) | apk-tools' rules | we select |",
              "| --- | --- | --- | --- | --- |"]
    for w in worlds:
        unversioned = "=" not in w.providers
        if unversioned or not w.agrees:
            lines.append(f"| {w.index} | `{w.name}` | {w.providers} | {w.expected} | {w.got}"
                         f"{'' if w.agrees else ' (differs)'} |")
    return "\n".join(lines) + "\n"


def _natural(p: Path) -> list[object]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.stem)]


def render(outcomes: list[Outcome]) -> str:
    tally: dict[str, int] = {}
    for o in outcomes:
        tally[o.verdict] = tally.get(o.verdict, 0) + 1
    lines = [
        "# apk-tools solver cases",
        "",
        "Generated by `python tests/solvercases.py --report docs/solver-cases.md`",
        "from apk-tools' `test/solver` cases (`tests/fixtures/apk/solver-cases`); "
        "`tests/test_solver_cases.py` keeps this file current.",
        "",
        "`apk add` on an empty root is compared exactly (packages, versions, tags, order); other "
        "cases by the end state, since image builds always start from an empty root.",
        "",
        f"Tally: {len(outcomes)} cases: "
        + ", ".join(f"{tally.get(k, 0)} {k}" for k in ("agree", "differs by design", "fails")),
        "",
        "| case | `apk` arguments | result | note |",
        "| --- | --- | --- | --- |",
    ]
    for o in outcomes:
        note = o.note.replace("|", "\\|")
        lines.append(f"| {o.case} | `{o.command}` | {o.verdict} | {note} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=Path, default=DEFAULT_CASES)
    ap.add_argument("--report", type=Path, help="write the markdown report here")
    ns = ap.parse_args(argv)
    text = render(run_all(ns.cases)) + render_provider_worlds(provider_worlds())
    if ns.report:
        ns.report.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
