"""From a package set to assembled root filesystems: fetch, expand, install, post-install."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from distroless import baseimage
from distroless.baseimage import Base
from distroless.config import LoadedConfig
from distroless.events import NULL, Events
from distroless.store.expand import Expanded, expand
from distroless.fetch.fetcher import Fetcher
from distroless.packages import PackageSet, fetch_all
from distroless.rootfs.assemble import Rootfs, assemble


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


def assemble_arch(loaded: LoadedConfig, ps: PackageSet, arch: str, expanded: list[Expanded], *,
                  keep_owners: bool = False, lock_world: bool = True, events: Events = NULL) -> ArchRootfs:
    """One architecture's tree from its expanded packages (in `ps` order): the build date, the
    world (pinned for builds, the user's list for minirootfs) and the keys come from here, for
    every front door."""
    base = baseimage.for_config(loaded, arch)
    bde = build_date_epoch(loaded, expanded, base)
    world = ps.pinned_world(arch) if lock_world else list(loaded.world())
    keys = {name: pem for name, (_, pem) in ps.key_sources.items()}
    with events.phase(f"installing packages ({arch})", total=len(expanded)) as phase:
        rootfs = assemble(loaded, arch, expanded, world=world, keys=keys, bde=bde,
                          keep_owners=keep_owners, lock_world=lock_world,
                          base_pins=base.pins() if base else (),
                          base_records=[r.record for r in base.records] if base else None,
                          on_installed=lambda exp: phase.advance(1, exp.apk.package.installed_size))
    for text in (base.warnings if base else ()) + rootfs.warnings:
        events.warning(f"{arch}: {text}")
    return ArchRootfs(arch, rootfs, expanded, bde, base)


def build_rootfs(loaded: LoadedConfig, ps: PackageSet, fetcher: Fetcher, *, keep_owners: bool = False,
                 lock_world: bool = True, jobs: int = 4, events: Events = NULL) -> list[ArchRootfs]:
    """One assembled tree per architecture, in `ps` order. Packages are fetched and expanded in
    parallel, then installed strictly in resolved order."""
    fetched = fetch_all(ps, fetcher)
    out: list[ArchRootfs] = []
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for arch, items in fetched.items():
            pins = ps.archs[arch]
            with events.phase(f"expanding packages ({arch})", total=len(pins)) as phase:
                def one(pf):  # noqa: ANN001, ANN202
                    # a download was expanded while it was verified: that expansion is used as it is
                    exp = pf[1].expanded or expand(pf[1].path, fetcher.cache,
                                                   expected_checksum=pf[0].package.checksum,
                                                   expected_sha256=pf[1].sha256, limits=fetcher.limits)
                    phase.advance(1, exp.tar.stat().st_size)
                    return exp

                expanded = list(pool.map(one, zip(pins, items)))
            out.append(assemble_arch(loaded, ps, arch, expanded, keep_owners=keep_owners, lock_world=lock_world,
                                     events=events))
    return out
