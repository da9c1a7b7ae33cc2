"""Layers → per-arch images → index → SBOMs: the image half of `image build`.

Each architecture's layers are written and compressed in its own worker; the index and SBOMs
follow. Nothing is placed at the output path until everything succeeded.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from distroless import layers as layering
from distroless.config import LoadedConfig, image_environment
from distroless.oci.image import Image, Index, Platform, apko_config, build_image, build_index, image_annotations, write_layer
from distroless.rootfs.build import ArchRootfs
from distroless.rootfs.layer import iter_tar, owner_names
from distroless.rootfs.tree import Tree
from distroless.sbom import cyclonedx, spdx
from distroless.sbom.common import OSInfo, image_info, index_info


@dataclass(frozen=True, slots=True)
class Options:
    compression: str = "gzip"
    level: int | None = None
    sbom_formats: tuple[str, ...] = ("spdx",)
    name: str = ""  # the image reference, for SBOM purls


@dataclass(slots=True)
class Built:
    index: Index
    images: list[Image]
    sboms: dict[str, bytes] = field(default_factory=dict)  # file name → document
    created: int = 0


def os_info(tree: Tree) -> OSInfo:
    """ID, NAME and VERSION_ID from the image's /etc/os-release (apko only reads it for the SBOM)."""
    node = tree.get("etc/os-release", follow=True)
    values: dict[str, str] = {}
    if node is not None and node.type == "reg":
        for line in node.data().decode("utf-8", "replace").splitlines():
            key, sep, value = line.partition("=")
            if sep:
                values[key.strip()] = value.strip().strip('"').strip("'")
    return OSInfo(values.get("ID", ""), values.get("NAME", ""), values.get("VERSION_ID", ""))


def layer_groups(loaded: LoadedConfig, arch_fs: ArchRootfs) -> list[list]:
    tree, installer = arch_fs.rootfs.tree, arch_fs.rootfs.installer
    lay = loaded.config.layering
    if lay is None or lay.is_empty():
        return [tree.walk()]
    pkgs = [r.package for r in installer.installed]
    groups = layering.package_groups(pkgs) if lay.strategy == "package" else layering.origin_groups(pkgs, lay.budget)
    return [l for l in layering.split(tree, installer, groups) if l]


def build_arch_image(loaded: LoadedConfig, arch_fs: ArchRootfs, blobs: Path, opts: Options) -> Image:
    tree = arch_fs.rootfs.tree
    users, groups = owner_names(tree)
    built_layers = []
    for entries in layer_groups(loaded, arch_fs):
        # streamed: the tar is generated while earlier blocks are being compressed
        built_layers.append(write_layer(iter_tar(entries, users, groups), blobs,
                                        compression=opts.compression, level=opts.level))  # type: ignore[arg-type]
    cfg = arch_fs.rootfs.config
    platform = Platform.from_arch(arch_fs.arch)
    annotations = dict(cfg.annotations)
    config = apko_config(
        platform=platform, diff_ids=[l.diff_id for l in built_layers], created=arch_fs.bde,
        annotations=annotations, vcs_url=cfg.vcs_url, entrypoint_command=cfg.entrypoint.command,
        shell_fragment=cfg.entrypoint.shell_fragment, cmd=cfg.cmd, env=image_environment(cfg),
        user=cfg.accounts.run_as, working_dir=cfg.work_dir, stop_signal=cfg.stop_signal, volumes=cfg.volumes,
    )
    return build_image(config, built_layers, image_annotations(annotations, arch_fs.bde, cfg.vcs_url), platform)


def build(loaded: LoadedConfig, rootfs: list[ArchRootfs], blobs: Path, opts: Options) -> Built:
    blobs.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=max(1, len(rootfs))) as pool:
        images = list(pool.map(lambda a: build_arch_image(loaded, a, blobs, opts), rootfs))
    created = max(a.bde for a in rootfs)
    cfg = loaded.config
    index = build_index(images, image_annotations(dict(cfg.annotations), created, cfg.vcs_url))
    out = Built(index, images, created=created)
    by_arch = {im.platform.arch: im for im in images}
    for arch_fs in rootfs:
        image = by_arch[Platform.from_arch(arch_fs.arch).arch]
        pkgs = [r.package for r in arch_fs.rootfs.installer.installed]
        info = image_info(image, created=arch_fs.bde, name=opts.name, vcs_url=cfg.vcs_url)
        osi = os_info(arch_fs.rootfs.tree)
        if "spdx" in opts.sbom_formats:
            out.sboms[spdx.sbom_filename(arch_fs.arch)] = spdx.spdx_image(pkgs, osi, info)
        if "cyclonedx" in opts.sbom_formats:
            out.sboms[spdx.sbom_filename(arch_fs.arch).replace(".spdx.json", ".cdx.json")] = \
                cyclonedx.cyclonedx_image(pkgs, osi, info)
    idx_info = index_info(index, created=created, name=opts.name, vcs_url=cfg.vcs_url)
    if "spdx" in opts.sbom_formats:
        out.sboms[spdx.sbom_filename(None)] = spdx.spdx_index(idx_info, os_info(rootfs[0].rootfs.tree))
    if "cyclonedx" in opts.sbom_formats:
        out.sboms["sbom-index.cdx.json"] = cyclonedx.cyclonedx_index(idx_info)
    return out
