"""Layers → per-arch images → index → SBOMs: the image half of `image build`.

Each architecture's layers are written and compressed in its own worker; the index and SBOMs
follow. Nothing is placed at the output path until everything succeeded.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from distroless import layers as layering
from distroless.events import NULL, Events
from distroless.apk.model import Package
from distroless.config import ImageConfig, LoadedConfig, image_environment
from distroless import baseimage
from distroless.oci.gojson import marshal
from distroless.oci.image import (OCI_CONFIG, arch_config, Descriptor, Image, Index, Platform, apko_config, build_image,
                                  build_index, history_comment, image_annotations, manifest_json, sha256_digest,
                                  write_layer)
from distroless.assembly import ArchRootfs
from distroless.rootfs.layer import iter_tar_pieces, owner_names
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


def layer_groups(loaded: LoadedConfig, arch_fs: ArchRootfs) -> list[Iterable]:
    tree, installer = arch_fs.rootfs.tree, arch_fs.rootfs.installer
    lay = loaded.config.layering
    if lay is None or lay.is_empty():
        return [tree.walk()]  # walked while it is compressed
    pkgs = [r.package for r in installer.installed]
    groups = layering.package_groups(pkgs) if lay.strategy == "package" else layering.origin_groups(pkgs, lay.budget)
    return [l for l in layering.split(tree, installer, groups) if l]


def image_settings(cfg: ImageConfig, bde: int) -> dict[str, Any]:
    """Everything apko's image config takes from the (per-arch, locked) configuration, as plain
    JSON-able values; `arch_config` adds the platform and the layers."""
    return {
        "created": bde, "annotations": dict(cfg.annotations), "vcs_url": cfg.vcs_url,
        "entrypoint_command": cfg.entrypoint.command, "shell_fragment": cfg.entrypoint.shell_fragment,
        "cmd": cfg.cmd, "env": dict(image_environment(cfg)), "user": cfg.accounts.run_as,
        "working_dir": cfg.work_dir, "stop_signal": cfg.stop_signal, "volumes": list(cfg.volumes),
    }


def manifest_annotations(settings: dict[str, Any]) -> dict[str, str]:
    return image_annotations(settings["annotations"], settings["created"], settings["vcs_url"])


def build_arch_image(loaded: LoadedConfig, arch_fs: ArchRootfs, blobs: Path, opts: Options,
                     events: Events = NULL) -> Image:
    tree = arch_fs.rootfs.tree
    users, groups = owner_names(tree)
    built_layers = []
    groups_ = layer_groups(loaded, arch_fs)
    with events.phase(f"compressing layers ({arch_fs.arch})", total=len(groups_)) as phase:
        for entries in groups_:
            # streamed: the tar is generated while earlier blocks are being compressed
            built_layers.append(write_layer(iter_tar_pieces(entries, users, groups), blobs,
                                            compression=opts.compression, level=opts.level))  # type: ignore[arg-type]
            phase.advance(1, built_layers[-1].size)
    settings = image_settings(arch_fs.rootfs.config, arch_fs.bde)
    if arch_fs.base is not None:
        return image_on_base(arch_fs, settings, built_layers)
    config = arch_config(settings, arch_fs.arch, [l.diff_id for l in built_layers])
    return build_image(config, built_layers, manifest_annotations(settings), Platform.from_arch(arch_fs.arch))


def image_on_base(arch_fs: ArchRootfs, settings: dict[str, Any], built_layers: list) -> Image:
    """The base's layers first, unchanged, then the new ones; the config grown from the base's."""
    base = arch_fs.base
    assert base is not None
    platform = Platform.from_arch(arch_fs.arch)
    labels = manifest_annotations(settings)
    fresh = apko_config(platform=platform, diff_ids=[l.diff_id for l in built_layers], **settings)
    c = fresh.config
    overrides = {"Entrypoint": list(c.entrypoint), "Cmd": list(c.cmd), "WorkingDir": c.working_dir,
                 "Volumes": {v: {} for v in sorted(set(c.volumes))}, "User": c.user, "StopSignal": c.stop_signal}
    cfg = baseimage.config_on_base(base, platform=platform, created=settings["created"], labels=labels,
                                   env=list(c.env), new_diff_ids=[l.diff_id for l in built_layers],
                                   comment=history_comment(settings["annotations"], len(built_layers)),
                                   overrides=overrides)
    raw = marshal(cfg)
    layers = tuple(base.image.layers) + tuple(built_layers)
    desc = Descriptor(OCI_CONFIG, len(raw), sha256_digest(raw))
    manifest = manifest_json(desc, [l.descriptor() for l in layers], baseimage.manifest_annotations(base, labels))
    return Image(raw, manifest, layers, platform)


@dataclass(frozen=True, slots=True)
class ArchSbom:
    """What an arch's SBOM needs: its image, installed packages, os-release and build date."""

    arch: str
    image: Image
    packages: list[Package]
    os: OSInfo
    created: int
    vcs_url: str = ""


def sbom_documents(archs: Sequence[ArchSbom], index: Index, *, name: str, vcs_url: str,
                   formats: Sequence[str]) -> dict[str, bytes]:
    """`sbom-<apkarch>.spdx.json` per arch and `sbom-index.spdx.json` (plus CycloneDX on request)."""
    docs: dict[str, bytes] = {}
    for a in archs:
        info = image_info(a.image, created=a.created, name=name, vcs_url=a.vcs_url)
        if "spdx" in formats:
            docs[spdx.sbom_filename(a.arch)] = spdx.spdx_image(a.packages, a.os, info)
        if "cyclonedx" in formats:
            docs[spdx.sbom_filename(a.arch).replace(".spdx.json", ".cdx.json")] = \
                cyclonedx.cyclonedx_image(a.packages, a.os, info)
    if archs:
        idx = index_info(index, created=max(a.created for a in archs), name=name, vcs_url=vcs_url)
        if "spdx" in formats:
            docs[spdx.sbom_filename(None)] = spdx.spdx_index(idx, archs[0].os)
        if "cyclonedx" in formats:
            docs["sbom-index.cdx.json"] = cyclonedx.cyclonedx_index(idx)
    return docs


def build(loaded: LoadedConfig, rootfs: list[ArchRootfs], blobs: Path, opts: Options,
          events: Events = NULL) -> Built:
    blobs.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=max(1, len(rootfs))) as pool:
        images = list(pool.map(lambda a: build_arch_image(loaded, a, blobs, opts, events), rootfs))
    created = max(a.bde for a in rootfs)
    cfg = loaded.config
    index = build_index(images, image_annotations(dict(cfg.annotations), created, cfg.vcs_url))
    by_arch = {im.platform.arch: im for im in images}
    archs = [ArchSbom(a.arch, by_arch[Platform.from_arch(a.arch).arch],
                      (a.base.packages if a.base else []) + [r.package for r in a.rootfs.installer.installed],
                      os_info(a.rootfs.tree), a.bde, cfg.vcs_url)
             for a in rootfs]
    sboms = sbom_documents(archs, index, name=opts.name, vcs_url=cfg.vcs_url, formats=opts.sbom_formats)
    return Built(index, images, sboms, created)
