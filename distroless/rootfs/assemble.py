"""Assemble one architecture's root filesystem from expanded packages, in apko's exact order."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from distroless.config import ImageConfig, LoadedConfig, arch_to_apk, to_apko_json
from distroless.store.expand import Expanded
from distroless.rootfs import post
from distroless.rootfs.idb import IdbRecord
from distroless.rootfs.install import Installer, init_db
from distroless.rootfs.tree import Tree


@dataclass(frozen=True, slots=True)
class Rootfs:
    tree: Tree
    config: ImageConfig  # as the image sees it: pinned world, one arch, numeric run-as
    installer: Installer
    warnings: tuple[str, ...] = ()  # for the front door's events (this layer never prints)


def _lines(items: list[str] | tuple[str, ...]) -> bytes:
    return ("\n".join(items) + "\n").encode()


def assemble(
    loaded: LoadedConfig,
    arch: str,
    expanded: Iterable[Expanded],
    *,
    world: list[str],
    keys: dict[str, bytes],
    bde: int | Callable[[], int],
    keep_owners: bool = False,
    lock_world: bool = True,
    base_pins: Sequence[str] = (),
    base_records: Sequence[IdbRecord] | None = None,
    on_installed: Callable[[Expanded], None] = lambda _e: None,
) -> Rootfs:
    """`world` is what /etc/apk/world holds: the pinned closure for `image build` (apko locks
    first) or the user's list for `build-minirootfs` (`lock_world=False`). On a base image
    (`base_records` given, maybe empty), the tree is the layer on top of it: the world also holds
    `base_pins`, the installed database starts with `base_records`, and accounts are left to the
    base (apko). `expanded` may be a stream (each package is installed as it arrives); `bde`
    may be a function, called once every package is installed."""
    tree = Tree()
    init_db(tree, arch_to_apk(arch))
    for name in sorted(keys):
        tree.write_file(f"etc/apk/keys/{name}", keys[name])
    tree.write_file("etc/apk/repositories", _lines(loaded.build_repositories()))
    tree.write_file("etc/apk/world", _lines(sorted(set(list(world) + list(base_pins)))))

    # scripts.tar takes the build-date option itself, not the BDE (which also counts package dates)
    installer = Installer(tree, scripts_epoch=loaded.build_date_epoch, keep_owners=keep_owners,
                          base_records=list(base_records or ()))
    packages = []
    for exp in expanded:
        installer.install(exp)
        packages.append(exp.apk.package)
        on_installed(exp)  # progress for the front door
    installer.finish()
    if callable(bde):
        bde = bde()

    config = loaded.config
    if lock_world:
        config = replace(config, contents=replace(config.contents, packages=tuple(sorted(set(world)))), archs=(arch,))
    if base_records is None:
        config = post.accounts(tree, config)
    tree.write_file("etc/apko.json", to_apko_json(config).encode(), mode=0o444)
    post.paths(tree, config.paths)
    post.certificates(tree, config, bde, installer.owned_files())
    post.bundle_sidecars(tree, bde)
    post.runtime_keyring(tree, config, bde)
    post.services(tree, config)
    post.busybox_links(tree, packages)
    post.devices(tree)
    post.ld_so_cache(tree)
    tree.write_file("etc/apk/repositories", _lines(loaded.runtime_repositories()))
    return Rootfs(tree, config, installer, tuple(post.missing_files(tree, config)))
