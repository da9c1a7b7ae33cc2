"""From a loaded image config to a pinned, verified package set per architecture.

`resolve_config` reads every build repository's index for every arch and resolves the world
with apko's multi-arch rule (a step with a content-addressed cache: `resolvecache`); `lock_of`
turns that into a lock (fetching each package once to record its byte ranges and whole-file
sha256); `from_lock` installs exactly what a lock says.

The lock format, the package reader, the crypto behind keys and the resolver are imported where
they are used: a warm `image show-packages` answers from the step cache without any of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from distroless.apk.model import Package
from distroless.config import LoadedConfig, arch_to_apk
from distroless.errors import DistrolessError, FormatError
from distroless.events import NULL, Events, Location
from distroless.fetch.fetcher import Fetched, Fetcher, IndexData
from distroless.fetch.repository import Repository, strip_scheme

if TYPE_CHECKING:
    from distroless import lock as lockfile
    from distroless.apk.keys import Keyring
    from distroless.store.cache import Cache


class LockMismatchError(DistrolessError):
    pass


@dataclass(frozen=True, slots=True)
class Pinned:
    """One package of a resolved or locked set: metadata, where to get it, what it must hash to."""

    package: Package
    url: str
    sha256: str = ""  # known when it comes from a lock written by us


@dataclass(slots=True)
class PackageSet:
    """Per architecture (OCI spelling, e.g. `amd64`): the packages in install order."""

    archs: dict[str, list[Pinned]] = field(default_factory=dict)
    key_sources: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # name → (location, PEM)

    def pinned_world(self, arch: str) -> list[str]:
        """apko's per-arch world after locking: every package `name=version[@pin]`, sorted."""
        out = []
        for p in self.archs[arch]:
            pin = f"@{p.package.pin}" if p.package.pin else ""
            out.append(f"{p.package.name}={p.package.version}{pin}")
        return sorted(out)


IndexLoader = Callable[[Repository, str, "Keyring"], list[Package]]  # (repo, apk arch, keys)


def resolve_config(loaded: LoadedConfig, fetcher: Fetcher, *, ignore_signatures: bool = False,
                   world: tuple[str, ...] | None = None) -> PackageSet:
    """Resolve with indexes and keys fetched (and cached) by `fetcher`; the result is taken from
    the step cache when every input is the same as in a run that resolved them (see
    `distroless.resolvecache`)."""
    from distroless import resolvecache

    keys = fetcher.keys(list(loaded.keyring()))
    verify = not ignore_signatures
    if loaded.config.contents.baseimage is not None:  # the base's packages are an input the key lacks
        return resolve_packages(loaded, keys, lambda repo, arch, ring: fetcher.index(repo, arch, ring, verify=verify),
                                world=world)
    wanted = list(world if world is not None else loaded.world())
    repos = [Repository.parse(r) for r in loaded.build_repositories()]
    found: dict[tuple[str, int], IndexData] = {
        (arch, i): fetcher.index_data(repo, arch_to_apk(arch)) for arch in loaded.config.archs
        for i, repo in enumerate(repos)}
    root = fetcher.cache.root
    key = resolvecache.key(wanted, list(loaded.config.archs), keys, list(found.values()), verify=verify,
                           cap=fetcher.limits.index_decompressed)
    hit = resolvecache.load(root, key)
    if hit is not None:
        for f in found.values():
            fetcher.remember(f)  # the same bytes were verified with the same keys when the entry was made
        return PackageSet({arch: [Pinned(p, url) for p, url in pins] for arch, pins in hit.items()},
                          {name: (loc, pem) for name, loc, pem in keys})
    by_repo = {(arch_to_apk(arch), repos[i].url, repos[i].pin): f for (arch, i), f in found.items()}
    ps = resolve_packages(
        loaded, keys,
        lambda repo, arch, ring: fetcher.index_packages(by_repo[(arch, repo.url, repo.pin)], ring, verify=verify),
        world=world)
    resolvecache.store(root, key, {arch: [(p.package, p.url) for p in pins] for arch, pins in ps.archs.items()})
    return ps


def resolve_packages(loaded: LoadedConfig, keys: list[tuple[str, str, bytes]], load_index: IndexLoader, *,
                     world: tuple[str, ...] | None = None) -> PackageSet:
    """Read every build repository's index for every arch (through `load_index`, which verifies)
    and resolve the world with apko's multi-arch rule. Keys are (file name, location, PEM)."""
    from distroless.apk.keys import Keyring
    from distroless.resolve import resolve

    ring = Keyring()
    for name, loc, pem in keys:
        ring.add(name, pem, loc)
    sources = {name: (loc, pem) for name, loc, pem in keys}
    repos = [Repository.parse(r) for r in loaded.build_repositories()]
    archs = list(loaded.config.archs)
    indexes: dict[str, list[Package]] = {}
    bases = {arch: _base(loaded, arch) for arch in archs}
    for arch in archs:
        pkgs: list[Package] = []
        for repo in repos:
            pkgs.extend(load_index(repo, arch_to_apk(arch), ring))
        base = bases[arch]
        indexes[arch] = pkgs + (base.packages if base else [])  # apko: the base as one more repository
    wanted = list(world if world is not None else loaded.world())
    out = PackageSet(key_sources=sources)
    for arch in archs:
        siblings = [indexes[a] for a in archs if a != arch]
        base = bases[arch]
        # with a base, its packages are pinned in the world and never reinstalled (apko's
        # ResolveWithBase): only what is not in the base is locked and installed
        resolved = resolve(indexes[arch], wanted + (base.pins() if base else []), arch=arch_to_apk(arch),
                           siblings=siblings)
        in_base = {p.name for p in base.packages} if base else set()
        out.archs[arch] = [Pinned(p, Repository(p.repository).package_url(arch_to_apk(arch), p.name, p.version))
                           for p in resolved if p.name not in in_base]
    _check_consistent(out, wanted)
    return out


def _base(loaded: LoadedConfig, arch: str):  # -> baseimage.Base | None
    if loaded.config.contents.baseimage is None:
        return None
    from distroless import baseimage  # the OCI reader: only loaded when there is a base

    return baseimage.for_config(loaded, arch)


def require_lock_for_base(loaded: LoadedConfig, lock_path: object) -> None:
    """apko builds on a base image only from a lock file (`apko lock` first)."""
    if loaded.config.contents.baseimage is not None and not lock_path:
        raise LockMismatchError("building with base image is supported only with a lockfile "
                                "(write one with `distroless image lock`, then pass --lockfile)")


def _check_consistent(ps: PackageSet, world: list[str]) -> None:
    """Every requested package must lock to one version across archs (apko's unify step)."""
    requested = {w.split("=")[0].split(">")[0].split("<")[0].split("~")[0].split("@")[0] for w in world}
    versions: dict[str, set[str]] = {}
    for pins in ps.archs.values():
        for p in pins:
            if p.package.name in requested:
                versions.setdefault(p.package.name, set()).add(p.package.version)
    bad = {n: v for n, v in versions.items() if len(v) > 1}
    if bad:
        detail = "; ".join(f"{n}: {', '.join(sorted(v))}" for n, v in sorted(bad.items()))
        raise DistrolessError(f"unable to lock packages to a consistent version across architectures: {detail}")


def fetch_all(ps: PackageSet, fetcher: Fetcher) -> dict[str, list[Fetched]]:
    """Download (or take from the cache) every package of every arch, verified."""
    out: dict[str, list[Fetched]] = {}
    for arch, pins in ps.archs.items():
        apk_arch = arch_to_apk(arch)
        out[arch] = fetcher.packages([p.package for p in pins], apk_arch,
                                     urls={p.package.name: p.url for p in pins},
                                     sha256s={p.package.name: p.sha256 for p in pins if p.sha256})
    return out


def _lock_head(loaded: LoadedConfig, ps: PackageSet, config_name: str) -> lockfile.Lock:
    """A lock's config, keyring and repositories (everything but the packages)."""
    from distroless import lock as lockfile

    lk = lockfile.Lock(config_name=config_name, config_checksum=loaded.checksum)
    # named by the location as written, sorted by that name (apko's lock)
    for loc, pem in sorted(ps.key_sources.values(), key=lambda lp: strip_scheme(lp[0])):
        lk.keyring.append(lockfile.LockedKey(strip_scheme(loc), loc, pem.decode()))
    c = loaded.config.contents
    for attr, repos in (("build_repositories", c.build_repositories + loaded.extra_build_repositories),
                        ("runtime_repositories", c.runtime_repositories),
                        ("repositories", c.repositories + loaded.extra_repositories)):
        target = getattr(lk, attr)
        for arch in loaded.config.archs:
            for r in repos:
                repo = Repository.parse(r)
                target.append(lockfile.LockedRepository(repo.lock_name(arch_to_apk(arch)),
                                                        repo.index_url(arch_to_apk(arch)), arch_to_apk(arch)))
    return lk


def lock_of(loaded: LoadedConfig, ps: PackageSet, fetched: dict[str, list[Fetched]], config_name: str,
            cache: Cache) -> lockfile.Lock:
    from distroless import lock as lockfile
    from distroless.store.expand import expand

    lk = _lock_head(loaded, ps, config_name)
    for arch, items in fetched.items():
        for pin, f in zip(ps.archs[arch], items):
            # byte ranges come from the expansion made when the package was verified (a cache hit)
            apk = f.apk or expand(f.path, cache, expected_checksum=pin.package.checksum, expected_sha256=f.sha256).apk
            lk.packages.append(lockfile.locked_package(apk, pin.url, arch_to_apk(arch)))
    return lk


def unfetched_lock(loaded: LoadedConfig, ps: PackageSet, config_name: str) -> lockfile.Lock:
    """A resolved set as a lock without fetching anything: no byte ranges, and a sha256 only
    where the set has one. How a resolution made without package bytes (the BuildKit frontend's)
    is handed to a step that installs from a lock."""
    from distroless import lock as lockfile

    lk = _lock_head(loaded, ps, config_name)
    for arch, pins in ps.archs.items():
        for pin in pins:
            p = pin.package
            empty = lockfile.LockedRange()
            lk.packages.append(lockfile.LockedPackage(p.name, pin.url, p.version, arch_to_apk(arch), empty, empty,
                                                      empty, p.checksum, pin.sha256))
    return lk


def from_lock(lk: lockfile.Lock, loaded: LoadedConfig, *, lock_path: str, config_name: str = "",
              events: Events = NULL) -> PackageSet:
    """The package set a lock pins. A changed config checksum is an error telling how to re-lock.
    `config_name` names the config in that message when it was not read from a file."""
    if lk.config_checksum and lk.config_checksum != loaded.checksum:
        name = config_name or (str(loaded.files[0]) if loaded.files else lk.config_name or "CONFIG")
        raise LockMismatchError(
            f"{lock_path}: the configuration changed since it was locked (lock has {lk.config_checksum}, "
            f"config is {loaded.checksum}); re-lock with `distroless image lock {name}`"
        )
    if not lk.config_checksum:
        events.warning("no config checksum; cannot tell whether the lock is current", location=Location(lock_path))
    from distroless.apk.keys import Keyring

    out = PackageSet()
    ring = Keyring()  # a key in the lock that is not one is an error here, not at some later use
    for k in lk.keyring:
        if k.content:
            ring.add(Path(k.name).name, k.content.encode(), f"{lock_path}: keyring {k.name}")
            out.key_sources[Path(k.name).name] = (k.url, k.content.encode())
    apk_to_oci = {arch_to_apk(a): a for a in loaded.config.archs}
    for p in lk.packages:
        arch = apk_to_oci.get(p.architecture)
        if arch is None:
            continue
        pkg = Package(name=p.name, version=p.version, arch=p.architecture, checksum=p.checksum,
                      repository=p.url.rsplit("/", 2)[0] if "/" in p.url else "")
        out.archs.setdefault(arch, []).append(Pinned(pkg, p.url, p.sha256))
    missing = [a for a in loaded.config.archs if a not in out.archs]
    if missing:
        raise FormatError(f"{lock_path}: no packages locked for {', '.join(missing)}; re-lock with --arch")
    return out
