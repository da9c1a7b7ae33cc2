"""From a package set to assembled root filesystems: fetch, expand, install, post-install."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sized
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from itertools import islice
from typing import TYPE_CHECKING

from distroless.config import LoadedConfig, arch_to_apk
from distroless.events import NULL, Events
from distroless.store.expand import Expanded, cached
from distroless.store.expandpool import ExpandPool, cores
from distroless.fetch.fetcher import Fetcher
from distroless.packages import PackageSet, Pinned

if TYPE_CHECKING:  # loaded by `assemble_arch`: while the first packages expand, not before
    from distroless.baseimage import Base
    from distroless.rootfs.assemble import Rootfs


@dataclass(frozen=True, slots=True)
class ArchRootfs:
    arch: str
    rootfs: Rootfs
    expanded: list[Expanded]
    bde: int  # the build date epoch for this arch
    base: Base | None = None  # contents.baseimage: the image this one is built on


def build_date_epoch(loaded: LoadedConfig, expanded: list[Expanded], base: Base | None = None) -> int:
    """SOURCE_DATE_EPOCH when set; else the latest of --build-date and the build dates of the
    installed packages (a base's included: they are in the installed database, as in apko)."""
    if loaded.source_date_epoch_pinned:
        return loaded.build_date_epoch
    return max([loaded.build_date_epoch] + [e.apk.package.build_time for e in expanded]
               + ([p.build_time for p in base.packages] if base else []))


def assemble_arch(loaded: LoadedConfig, ps: PackageSet, arch: str, expanded: Iterable[Expanded], *,
                  keep_owners: bool = False, lock_world: bool = True, lean: bool = False,
                  events: Events = NULL) -> ArchRootfs:
    """One architecture's tree from its expanded packages (in `ps` order, installed as the
    iterable yields them): the build date, the world (pinned for builds, the user's list for
    minirootfs) and the keys come from here, for every front door. `lean` drops each package's
    entries once it is installed (the tree holds what the image needs; memory stays flat)."""
    from distroless import baseimage
    from distroless.rootfs.assemble import assemble

    base = baseimage.for_config(loaded, arch)
    world = ps.pinned_world(arch) if lock_world else list(loaded.world())
    keys = {name: pem for name, (_, pem) in ps.key_sources.items()}
    installed: list[Expanded] = []
    total = len(expanded) if isinstance(expanded, Sized) else len(ps.archs[arch])
    with events.phase(f"installing packages ({arch})", total=total) as phase:
        def done(exp: Expanded) -> None:
            installed.append(_without_entries(exp) if lean else exp)
            phase.advance(1, exp.apk.package.installed_size)

        # the build date counts every package, so it is taken once all are installed (it only
        # stamps what the post-install steps generate)
        rootfs = assemble(loaded, arch, expanded, world=world, keys=keys,
                          bde=lambda: build_date_epoch(loaded, installed, base),
                          keep_owners=keep_owners, lock_world=lock_world,
                          base_pins=base.pins() if base else (),
                          base_records=[r.record for r in base.records] if base else None,
                          on_installed=done)
    for text in (base.warnings if base else ()) + rootfs.warnings:
        events.warning(f"{arch}: {text}")
    return ArchRootfs(arch, rootfs, installed, build_date_epoch(loaded, installed, base), base)


def _without_entries(exp: Expanded) -> Expanded:
    """What an installed package keeps: its metadata (the tree holds its files)."""
    return Expanded(replace(exp.apk, entries=[], scripts=[], pkginfo_text="", signatures=[]), exp.tar)


def build_rootfs(loaded: LoadedConfig, ps: PackageSet, fetcher: Fetcher, *, keep_owners: bool = False,
                 lock_world: bool = True, jobs: int = 4, events: Events = NULL,
                 meanwhile: Callable[[], object] = lambda: None) -> list[ArchRootfs]:
    """One assembled tree per architecture, in `ps` order: a pipeline in which `jobs` threads
    fetch, verify and expand packages (a few ahead) while this thread installs each one, in
    resolved order, as soon as it and those before it are ready. `meanwhile` runs on this thread
    once the first packages are under way (the front door loads the modules it needs next)."""
    out: list[ArchRootfs] = []
    # processes first: they fork while this is the only thread
    with ExpandPool(min(max(1, jobs), cores())) as expander, ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for i, arch in enumerate(ps.archs):
            # four per thread ahead: the workers stay busy while this thread loads modules or installs
            expanded = _expansions(pool, expander, fetcher, ps, arch, 4 * max(1, jobs), events)
            next(expanded)  # the first packages are under way while `assemble_arch` loads its modules
            if i == 0:
                meanwhile()
            out.append(assemble_arch(loaded, ps, arch, expanded,  # type: ignore[arg-type]
                                     keep_owners=keep_owners, lock_world=lock_world, lean=True, events=events))
    return out


def _expansions(pool: ThreadPoolExecutor, expander: ExpandPool, fetcher: Fetcher, ps: PackageSet, arch: str,
                window: int, events: Events) -> Iterator[Expanded | None]:
    """`arch`'s packages fetched (or found in the cache) on `pool` and expanded by `expander`, in
    order, at most `window` ahead of the consumer (so at most that many packages' entries are held).
    The first item is None, once the first `window` packages are submitted."""
    pins = ps.archs[arch]
    apk_arch = arch_to_apk(arch)
    with fetcher.events.phase("fetching packages", total=len(pins)) as fetching, \
            events.phase(f"expanding packages ({arch})", total=len(pins)) as expanding:
        def one(pin: Pinned) -> Expanded:
            f = fetcher.package(pin.package, apk_arch, url=pin.url or None, sha256=pin.sha256 or None,
                                progress=fetching, expander=expander, in_place=True)
            fetching.advance(1)
            # a download was expanded while it was verified: that expansion is used as it is; a
            # cached one is read here (a worker would read it too, then send it back pickled)
            exp = (f.expanded or cached(fetcher.cache, f.sha256, pin.package.checksum)
                   or expander(f.path, fetcher.cache, expected_checksum=pin.package.checksum,
                               expected_sha256=f.sha256, limits=fetcher.limits))
            expanding.advance(1, exp.tar.stat().st_size)
            return exp

        todo = iter(pins)
        pending: deque[Future[Expanded]] = deque(pool.submit(one, pin) for pin in islice(todo, window))
        try:
            yield None
            while pending:
                exp = pending.popleft().result()
                for pin in islice(todo, 1):
                    pending.append(pool.submit(one, pin))
                yield exp
        finally:
            for f in pending:  # a failure (or a consumer that stopped): start nothing more
                f.cancel()
