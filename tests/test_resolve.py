"""The resolver on real indexes (checked by an independent checker) and on small built cases."""

from __future__ import annotations

import re

import pytest

from shared import APK
from distroless.apk import version
from distroless.apk.model import Package
from distroless.errors import ResolveError
from distroless.resolve import Index, Resolver, resolve

from distroless.apk import index as apkindex

FIXTURES = APK
ALPINE = FIXTURES / "alpine-v3.16-main-x86_64/APKINDEX.tar.gz"
WOLFI = FIXTURES / "wolfi-excerpt/APKINDEX.tar.gz"


# -- an independent checker: its own atom parsing and matching, only version.compare shared --

_DEP = re.compile(r"^(!?)([^<>=~]+)(?:([<>=~]+)(.+))?$")
_WANT = {"=": {0}, "<": {-1}, ">": {1}, "<=": {-1, 0}, ">=": {0, 1}}


def _split(dep: str) -> tuple[bool, str, str, str]:
    m = _DEP.match(dep)
    assert m, dep
    neg, name, op, ver = m.groups()
    return bool(neg), name, op or "", ver or ""


def _ok(op: str, have: str | None, want: str) -> bool:
    if not op:
        return True
    if have is None:
        return False
    assert op in _WANT, f"checker does not know operator {op!r}"
    return version.compare(have, want) in _WANT[op]


def _claims(pkgs: list[Package]) -> dict[str, list[tuple[Package, str | None]]]:
    out: dict[str, list[tuple[Package, str | None]]] = {}
    for p in pkgs:
        out.setdefault(p.name, []).append((p, p.version))
        for prov in p.provides:
            name, _, ver = prov.partition("=")
            out.setdefault(name, []).append((p, ver or None))
    return out


def check_closure(world: list[str], pkgs: list[Package]) -> None:
    claims = _claims(pkgs)
    names = [p.name for p in pkgs]
    assert len(names) == len(set(names)), "one package name installed twice"
    for name, cl in claims.items():
        versioned = [c for c in cl if c[1] is not None]
        assert len(cl) == 1 or not versioned, f"{name} claimed by several packages: {cl}"
    pos = {id(p): i for i, p in enumerate(pkgs)}
    edges: dict[int, set[int]] = {id(p): set() for p in pkgs}

    def satisfied(dep: str, who: str) -> list[Package]:
        neg, name, op, ver = _split(dep)
        hits = [p for p, v in claims.get(name, []) if _ok(op, v, ver)]
        if neg:
            assert all(p.name == who for p in hits), f"{who}: conflict {dep} violated by {hits}"
        else:
            assert hits, f"{who}: dependency {dep} unsatisfied"
        return hits

    for w in world:
        satisfied(w, "world")
    for p in pkgs:
        for d in p.depends:
            for q in satisfied(d, p.name):
                if not d.startswith("!") and q is not p:
                    edges[id(p)].add(id(q))

    def reaches(a: int, b: int) -> bool:
        seen, todo = set(), [a]
        while todo:
            x = todo.pop()
            if x == b:
                return True
            if x not in seen:
                seen.add(x)
                todo.extend(edges[x])
        return False

    for p in pkgs:  # dependencies first, unless they are in a cycle with the package
        for q in edges[id(p)]:
            if pos[q] > pos[id(p)]:
                assert reaches(q, id(p)), f"{p.name} installed before its dependency"


@pytest.fixture(scope="module")
def alpine() -> Resolver:
    return Resolver(Index.build(apkindex.read_file(ALPINE, verify=False).packages, arch="x86_64"))


@pytest.fixture(scope="module")
def wolfi_packages() -> list[Package]:
    return apkindex.read_file(WOLFI, verify=False).packages


WORLDS = [
    ["busybox"],
    ["alpine-baselayout"],
    ["ca-certificates-bundle"],
    ["openssl"],
    ["curl"],
    ["python3", "busybox"],
    ["git"],
    ["alpine-base"],
    ["build-base"],
    ["nginx"],
    ["openssh"],
    ["bash", "coreutils", "jq"],
    ["postgresql14"],
]


@pytest.mark.parametrize("world", WORLDS, ids=[" ".join(w) for w in WORLDS])
def test_alpine_closure_is_consistent(alpine: Resolver, world: list[str]) -> None:
    pkgs = alpine.resolve(world)
    check_closure(world, pkgs)
    for name in world:  # the newest version of what was asked for
        newest = max((c.pkg.version for c in alpine.index.by_name[name]), key=version.version_key)
        assert next(p for p in pkgs if p.name == name).version == newest


def test_alpine_checker_can_fail(alpine: Resolver) -> None:
    pkgs = alpine.resolve(["curl"])
    with pytest.raises(AssertionError):
        check_closure(["curl"], [p for p in pkgs if p.name != "musl"])


def test_alpine_bin_sh_from_lone_provider(alpine: Resolver) -> None:
    names = [p.name for p in alpine.resolve(["alpine-baselayout"])]
    assert "busybox" in names  # /bin/sh: busybox is its only (unversioned) provider in 3.16


def test_wolfi_so_and_cmd_names(wolfi_packages: list[Package]) -> None:
    pkgs = resolve(wolfi_packages, ["wolfi-base"], arch="aarch64")
    check_closure(["wolfi-base"], pkgs)
    names = [p.name for p in pkgs]
    assert {"glibc", "ld-linux", "libcrypto3", "libssl3", "zlib", "apk-tools", "busybox"} <= set(names)
    assert names.index("ld-linux") < names.index("busybox")  # busybox needs so:ld-linux-aarch64.so.1
    assert [p.name for p in resolve(wolfi_packages, ["cmd:apk"])][-1] == "apk-tools"


def test_wolfi_provider_priority(wolfi_packages: list[Package]) -> None:
    def rival(k: int) -> Package:
        return Package("ld-linux-alt", "2.40-r4", provides=["so:ld-linux-aarch64.so.1=1"], provider_priority=k)

    world = ["so:ld-linux-aarch64.so.1"]
    # same provided version: the higher provider_priority wins, whatever the repository order
    assert "ld-linux" in [p.name for p in resolve([rival(5), *wolfi_packages], world)]
    assert "ld-linux-alt" in [p.name for p in resolve([rival(20), *wolfi_packages], world)]
    # between different providers apk-tools' priority decides, even when the other provider's
    # origin (glibc-2.40-r4) is already selected: apko's origin rule only ranks versions of one name
    names = [p.name for p in resolve([rival(20), *wolfi_packages], ["busybox"])]
    assert "ld-linux-alt" in names and "ld-linux" not in names
    names = [p.name for p in resolve([rival(5), *wolfi_packages], ["busybox"])]
    assert "ld-linux" in names and "ld-linux-alt" not in names


def test_error_names_the_chain(wolfi_packages: list[Package]) -> None:
    with pytest.raises(ResolveError) as exc:
        resolve(wolfi_packages, ["7zip"])
    assert "world → 7zip → so:libstdc++.so.6: no provider" in str(exc.value)


def test_error_lists_rejected_candidates() -> None:
    pkgs = [
        Package("curl", "8", depends=["libssl>=3"]),
        Package("libssl", "1.1"),
        Package("libssl", "3", arch="aarch64"),
    ]
    with pytest.raises(ResolveError) as exc:
        resolve(pkgs, ["curl"], arch="x86_64")
    msg = str(exc.value)
    assert msg.startswith("world → curl → libssl>=3: no candidate")
    assert "libssl-1.1: version 1.1 does not satisfy libssl>=3" in msg
    assert "libssl-3: uninstallable: arch aarch64" in msg


def test_multi_arch_disqualification() -> None:
    x86 = [Package("foo", "1", arch="x86_64"), Package("foo", "2", arch="x86_64"), Package("bar", "1", depends=["foo"])]
    arm = [Package("foo", "1", arch="aarch64"), Package("bar", "1")]
    assert [p.version for p in resolve(x86, ["foo"])] == ["2"]
    assert [p.version for p in resolve(x86, ["foo"], siblings=[arm])] == ["1"]
    with pytest.raises(ResolveError, match="not available in every requested architecture"):
        resolve(x86, ["foo=2"], siblings=[arm])


def test_tag_pins() -> None:
    main = [Package("a", "2", depends=["b"]), Package("b", "2")]
    testing = [Package("a", "3", depends=["b"], pin="testing"), Package("b", "3", pin="testing")]
    idx = Index.build(main + testing)
    r = Resolver(idx)
    assert [(p.name, p.version) for p in r.resolve(["a"])] == [("b", "2"), ("a", "2")]
    # a@testing prefers the tag; its dependencies may use it but prefer untagged repositories
    assert [(p.name, p.version, p.pin) for p in r.resolve(["a@testing"])] == [("b", "2", ""), ("a", "3", "testing")]
    assert [(p.name, p.version) for p in r.resolve(["a@testing", "b@testing"])] == [("b", "3"), ("a", "3")]
    with pytest.raises(ResolveError, match="not allowed"):
        r.resolve(["b>2"])


def test_install_if_is_global_and_follows_triggers() -> None:
    pkgs = [
        Package("app", "1", depends=["lib"]),
        Package("lib", "1"),
        Package("docs", "1"),
        Package("app-doc", "1", install_if=["app", "docs"]),
        Package("lib-extra", "1", install_if=["lib", "!nope"]),
        Package("nope", "1"),
        Package("never", "1", install_if=["app", "nope"]),
    ]
    names = [p.name for p in resolve(pkgs, ["docs", "app"])]
    assert names == ["lib", "lib-extra", "app", "docs", "app-doc"]
    assert "lib-extra" not in [p.name for p in resolve(pkgs, ["app", "nope"])]


def test_backtracks_to_an_older_version() -> None:
    pkgs = [
        Package("a", "2", depends=["b", "c"]),
        Package("a", "3", depends=["b", "c", "d>1.5"]),
        Package("b", "1", depends=["c", "d<2.0"]),
        Package("c", "1", depends=["d>1.0"]),
        Package("d", "1.0"),
        Package("d", "1.5"),
        Package("d", "2.0"),
    ]
    assert [(p.name, p.version) for p in resolve(pkgs, ["a"])] == [("d", "1.5"), ("c", "1"), ("b", "1"), ("a", "2")]


def test_versioned_provides_conflict() -> None:
    # apko #921: two providers of one versioned name must not both be installed.
    pkgs = [Package("server-a", "1", provides=["theservice=1"]), Package("server-b", "1", provides=["theservice=2"])]
    with pytest.raises(ResolveError):
        resolve(pkgs, ["server-a", "server-b"])
    shared = [Package("x", "1", provides=["virt"]), Package("y", "1", provides=["virt"])]
    assert len(resolve(shared, ["x", "y"])) == 2  # unversioned provides may coexist


def test_ambiguous_virtual_needs_a_choice() -> None:
    pkgs = [Package("p1", "1", provides=["virt"]), Package("p2", "1", provides=["virt"]), Package("app", "1", depends=["virt"])]
    with pytest.raises(ResolveError, match="select it explicitly"):
        resolve(pkgs, ["app"])
    assert [p.name for p in resolve(pkgs, ["app", "p2"])] == ["p2", "app"]


def test_world_conflict() -> None:
    pkgs = [Package("a", "1", depends=["b"]), Package("b", "1")]
    with pytest.raises(ResolveError, match="conflicts with world"):
        resolve(pkgs, ["a", "!b"])


@pytest.mark.parametrize("world", [["ifupdown-any"], ["busybox", "ifupdown-any"], ["alpine-base", "ifupdown-any"]])
def test_virtual_takes_the_highest_provider_priority(alpine: Resolver, world) -> None:
    """apk-tools' rule on Alpine v3.16: ifupdown-any has three unversioned providers,
    ifupdown-ng (900), busybox-ifupdown (200) and ifupdown (100); the highest priority wins,
    also when busybox (busybox-ifupdown's origin) is already selected."""
    names = [p.name for p in alpine.resolve(world)]
    assert "ifupdown-ng" in names
    assert "busybox-ifupdown" not in names and "ifupdown" not in names


def test_versioned_provide_ranks_above_unversioned() -> None:
    pkgs = [Package("plain", "1", provides=["virt"], provider_priority=50), Package("ver", "1", provides=["virt=2"])]
    assert [p.name for p in resolve(pkgs, ["virt"])] == ["ver"]


@pytest.mark.parametrize("virtual", [False, True])
def test_dependency_chain_5000_deep(virtual: bool) -> None:
    n = 5000
    if virtual:  # each link through a provided name
        pkgs = [Package(f"p{i}", "1", depends=[f"v{i + 1}"] if i < n - 1 else [], provides=[f"v{i}=1"])
                for i in range(n)]
    else:
        pkgs = [Package(f"p{i}", "1", depends=[f"p{i + 1}"] if i < n - 1 else []) for i in range(n)]
    out = resolve(pkgs, ["v0" if virtual else "p0"])
    assert [p.name for p in out] == [f"p{i}" for i in reversed(range(n))]  # dependencies first
    broken = pkgs[:-1] + [Package(f"p{n - 1}", "1", depends=["missing"])]
    with pytest.raises(ResolveError, match="no candidate can be installed"):
        resolve(broken, ["v0" if virtual else "p0"])


def test_install_if_chain_5000_deep() -> None:
    """Each package joins through install_if on the one before: the install order is the chain."""
    n = 5000
    pkgs = [Package("p0", "1")] + [Package(f"p{i}", "1", install_if=[f"p{i - 1}"]) for i in range(1, n)]
    assert [p.name for p in resolve(pkgs, ["p0"])] == [f"p{i}" for i in range(n)]
