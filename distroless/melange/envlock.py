"""A recipe's build environment as a lock: resolved ahead of time by the engine's resolve and
lock step (per architecture, exactly as `package build` resolves it), then installed from the
locked .apk files alone — no index, no key download, no network. What the Bazel rules'
hermetic package builds run: their environment packages are declared inputs, pinned by sha256.

The lock is apko's `apko.lock.json` (with our per-package `sha256`); its config checksum covers
the compiled environment's `contents` of every locked architecture, so a recipe whose
environment changed (a package added, a repository moved) is refused until it is re-locked.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from distroless import lock as lockfile
from distroless.config import ImageConfig, LoadedConfig, arch_to_apk, parse_architecture
from distroless.errors import ConfigError
from distroless.events import NULL, Events
from distroless.fetch.fetcher import Fetcher
from distroless.packages import fetch_all, from_lock, lock_of, resolve_config
from distroless.rootfs.tree import Tree
from distroless.store.cache import Cache
from distroless.store.expandpool import expand_pinned


@dataclass(frozen=True, slots=True)
class LockedEnvironment:
    """A lock and the .apk files of the architecture being built, in lock order."""

    lock: Path
    apks: tuple[Path, ...]


def loaded_from(config: ImageConfig, arch: str, sde: int, *, keyring: Sequence[str] = (),
                repositories: Sequence[str] = (), checksum: str = "") -> LoadedConfig:
    """A LoadedConfig for the engine from a recipe's (compiled) environment."""
    return LoadedConfig(config=replace(config, archs=(parse_architecture(arch),)), files=(), checksum=checksum,
                        build_date_epoch=sde, source_date_epoch_pinned=True,
                        extra_keyring=tuple(keyring), extra_repositories=tuple(repositories))


def environment_checksum(configs: Mapping[str, ImageConfig], keyring: Sequence[str] = (),
                         repositories: Sequence[str] = ()) -> str:
    """apko's "sha256-<base64>" over what a lock depends on: each arch's environment contents
    (and the -k/-r additions), as canonical JSON."""
    doc = {"archs": {arch_to_apk(a): asdict(c.contents) for a, c in sorted(configs.items())},
           "keyring_append": list(keyring), "repository_append": list(repositories)}
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return "sha256-" + base64.b64encode(hashlib.sha256(raw).digest()).decode()


def lock_environment(configs: Mapping[str, ImageConfig], recipe_name: str, fetcher: Fetcher, *, sde: int = 0,
                     keyring: Sequence[str] = (), repositories: Sequence[str] = (),
                     ignore_signatures: bool = False) -> lockfile.Lock:
    """Resolve each arch's environment (the index and keys from its repositories), fetch every
    package once (verified) and pin it: one lock over every arch."""
    checksum = environment_checksum(configs, keyring, repositories)
    out = lockfile.Lock(config_name=recipe_name, config_checksum=checksum)
    keys: dict[str, lockfile.LockedKey] = {}
    for arch, config in configs.items():
        loaded = loaded_from(config, arch, sde, keyring=keyring, repositories=repositories, checksum=checksum)
        if not (loaded.build_repositories() and loaded.world()):
            raise ConfigError(f"{recipe_name}: the build environment names no repository or no package for "
                              f"{arch_to_apk(arch)}: nothing to lock (build it with the host toolchain)")
        ps = resolve_config(loaded, fetcher, ignore_signatures=ignore_signatures)
        lk = lock_of(loaded, ps, fetch_all(ps, fetcher), recipe_name, fetcher.cache)
        for k in lk.keyring:
            keys.setdefault(k.name, k)
        out.build_repositories += lk.build_repositories
        out.runtime_repositories += lk.runtime_repositories
        out.repositories += lk.repositories
        out.packages += lk.packages
    out.keyring = [keys[n] for n in sorted(keys)]
    return out


def check_current(lk: lockfile.Lock, lock_name: str, checksum: str, recipe_name: str) -> None:
    if lk.config_checksum != checksum:
        raise ConfigError(f"{lock_name}: the build environment of {recipe_name} changed since it was locked "
                          f"(lock has {lk.config_checksum or 'no checksum'}, the recipe gives {checksum}); "
                          f"re-lock with `distroless package lock {recipe_name}`")


def install(config: ImageConfig, arch: str, sde: int, env: LockedEnvironment, lk: lockfile.Lock, work: Path, *,
            events: Events = NULL) -> Tree:
    """The environment's tree from the locked packages: each .apk verified against its pin
    (control checksum and whole-file sha256) and expanded under `work`, then installed in lock
    order by the engine — the tree `package build` resolves and installs, with no index."""
    from distroless.assembly import assemble_arch

    loaded = loaded_from(config, arch, sde, checksum=lk.config_checksum)
    ps = from_lock(lk, loaded, lock_path=str(env.lock), events=events)
    pins = ps.archs[loaded.config.archs[0]]
    if len(env.apks) != len(pins):
        raise ConfigError(f"{env.lock}: {len(pins)} {arch_to_apk(arch)} packages locked, {len(env.apks)} .apk files given")
    expanded = expand_pinned(pins, env.apks, Cache(work))
    return assemble_arch(loaded, ps, loaded.config.archs[0], expanded, lock_world=False, events=events).rootfs.tree
