"""`image build` and `image build-minirootfs`."""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from distroless.cli.image import VERBS, add_config_flags, fetcher_for, load, package_set, print_json
from distroless.config import host_architecture, parse_architecture
from distroless.errors import ConfigError, DistrolessError
from distroless.fsutil import atomic_output, atomic_write, held_dir

# The engine is imported inside the commands: registering them (for `image show-packages` or
# `--help`) must not load it (see distroless/cli/__init__.py).

OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"  # the minirootfs is an uncompressed layer


def register(isub: argparse._SubParsersAction) -> None:
    b = isub.add_parser("build", help=VERBS["build"][1])
    b.add_argument("config", type=Path, help="the apko image configuration (YAML)")
    b.add_argument("tag", help="image reference recorded in the archive and the SBOM")
    b.add_argument("output", type=Path, help="an existing directory gets an OCI layout; otherwise a docker-archive tar")
    add_sbom_flags(b)
    b.add_argument("--compression", choices=("gzip", "zstd"), default="gzip", help="layer compression (default gzip)")
    b.add_argument("--keep-owners", action="bool", help="keep package uid/gid instead of apko's 0:0")
    add_vcs_flag(b)
    b.add_argument("--json", action="bool",
                   help="print the result as JSON: index and image digests, reference, files written")
    add_config_flags(b)
    b.set_defaults(func=cmd_build)

    mr = isub.add_parser("build-minirootfs", help=VERBS["build-minirootfs"][1])
    mr.add_argument("config", type=Path, help="the apko image configuration (YAML)")
    mr.add_argument("output", type=Path, help="the root filesystem tar to write")
    mr.add_argument("--build-arch", default="", help="architecture (default: this machine's)")
    mr.add_argument("--keep-owners", action="bool", help="keep package uid/gid instead of apko's 0:0")
    mr.add_argument("--sbom-path", type=Path, default=None,
                    help="also write sbom-<arch>.spdx.json for the root filesystem here "
                         "(apko accepts this flag but writes nothing)")
    add_config_flags(mr)
    mr.set_defaults(func=cmd_minirootfs)


def add_sbom_flags(p: argparse.ArgumentParser, *, sbom_path_default: Path | None = Path(".")) -> None:
    p.add_argument("--sbom", action="bool", default=True, help="generate SBOMs")
    p.add_argument("--sbom-path", type=Path, default=sbom_path_default,
                   help="directory for the SBOM files" + (" (default .)" if sbom_path_default else ""))
    p.add_argument("--sbom-formats", action="list", help="spdx (default), cyclonedx")


def add_vcs_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--vcs", action="bool", default=True,
                   help="accepted for apko compatibility; the git remote is not probed (it would make the "
                        "output depend on the checkout): set vcs-url in the YAML")


def sbom_formats_of(args: argparse.Namespace) -> tuple[str, ...]:
    """--sbom-formats, checked; empty when --sbom=false."""
    formats = tuple(f for v in args.sbom_formats for f in v.split(",") if f) or ("spdx",)
    bad = [f for f in formats if f not in ("spdx", "cyclonedx")]
    if bad:
        raise DistrolessError(f"--sbom-formats: unknown format {bad[0]!r} (spdx, cyclonedx)")
    return formats if args.sbom else ()


def write_sboms(directory: Path, sboms: dict[str, bytes]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, doc in sboms.items():
        atomic_write(directory / name, doc)


@contextmanager
def built_images(args: argparse.Namespace, *, name: str, sbom_formats: tuple[str, ...]) -> Iterator:
    """The whole build for `image build` and `image publish`: config, packages, root
    filesystems, then images and index (an `imagebuild.Built`) whose blobs live in a staging
    directory for the block."""
    from distroless.assembly import build_rootfs
    from distroless.packages import require_lock_for_base

    loaded = load(args)
    require_lock_for_base(loaded, getattr(args, "lockfile", None))
    fetcher = fetcher_for(args)
    ps = package_set(args, loaded, fetcher)
    rootfs = build_rootfs(loaded, ps, fetcher, keep_owners=args.keep_owners, jobs=args.jobs, events=fetcher.events,
                          meanwhile=_load_image_half)
    from distroless import imagebuild

    staging = Path(tempfile.mkdtemp(dir=fetcher.cache.root / "tmp", prefix="build-"))
    try:
        with held_dir(staging):  # a live build: the next run's cleanup leaves it alone
            yield imagebuild.build(loaded, rootfs, staging, imagebuild.Options(
                compression=args.compression, sbom_formats=sbom_formats, name=name), events=fetcher.events)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _load_image_half() -> None:
    """The modules that make the image from the root filesystem, loaded while packages expand."""
    import distroless.imagebuild  # noqa: F401
    import distroless.oci.dockerarchive  # noqa: F401
    import distroless.oci.layout  # noqa: F401


def cmd_build(args: argparse.Namespace) -> int:
    formats = sbom_formats_of(args)
    check_output_parent(args.output)
    with built_images(args, name=args.tag, sbom_formats=formats) as built:
        from distroless.oci.dockerarchive import write_docker_archive
        from distroless.oci.layout import write_layout

        if args.output.is_dir():
            write_layout(args.output, built.index)
            kind = "OCI layout"
        else:
            write_docker_archive(args.output, built.index, [args.tag])
            kind = "docker archive"
    files = [str(args.output)]
    if formats:
        write_sboms(args.sbom_path, built.sboms)
        files += [str(args.sbom_path / name) for name in built.sboms]
    if args.json:
        print_json({"reference": args.tag, "output": str(args.output), "kind": kind,
                    "index": built.index.digest,
                    "images": [{"platform": i.platform.arch, "digest": i.digest} for i in built.images],
                    "files": files})
        return 0
    for image in built.images:
        print(f"{image.platform.arch}: {image.digest}")
    print(f"{args.output}: {kind}, index {built.index.digest}")
    return 0


def check_output_parent(output: Path) -> None:
    """Fail before the build, not after it: the output's directory must exist."""
    parent = output if output.is_dir() else output.parent
    if not parent.is_dir():
        raise DistrolessError(f"{output}: output directory {parent} does not exist")


def minirootfs_arch(build_arch: str, archs: list[str]) -> str:
    """One arch: --build-arch, else a single --arch, else this machine's."""
    given = [a for v in archs for a in v.split(",") if a]
    if build_arch:
        if given and {parse_architecture(a) for a in given} != {parse_architecture(build_arch)}:
            raise ConfigError(f"--arch {','.join(given)} and --build-arch {build_arch} disagree; "
                              "build-minirootfs builds one architecture")
        return build_arch
    if len(given) > 1 or given == ["all"]:
        raise ConfigError(f"--arch {','.join(given)}: build-minirootfs builds one architecture")
    return given[0] if given else host_architecture()


def cmd_minirootfs(args: argparse.Namespace) -> int:
    from distroless.assembly import build_rootfs
    from distroless.rootfs.layer import write_rootfs_tar
    from distroless.sbom import spdx

    check_output_parent(args.output)
    args.arch = [minirootfs_arch(args.build_arch, args.arch)]
    loaded = load(args)
    if loaded.config.contents.baseimage is not None:
        raise ConfigError(f"{args.config}: contents.baseimage is not supported by build-minirootfs "
                          "(a base is a set of image layers; use `image build`)")
    fetcher = fetcher_for(args)
    ps = package_set(args, loaded, fetcher)
    (arch_fs,) = build_rootfs(loaded, ps, fetcher, keep_owners=args.keep_owners, lock_world=False, jobs=args.jobs,
                              events=fetcher.events)
    with atomic_output(args.output) as out:
        diff_id = write_rootfs_tar(arch_fs.rootfs.tree, out)
    if args.sbom_path is not None:
        write_sboms(args.sbom_path, {spdx.sbom_filename(arch_fs.arch): rootfs_sbom(arch_fs, diff_id, str(args.output))})
    print(f"{args.output}: {len(arch_fs.expanded)} packages, diff_id {diff_id}")
    return 0


def rootfs_sbom(arch_fs, diff_id: str, name: str) -> bytes:  # arch_fs: assembly.ArchRootfs
    """An SPDX document for a root filesystem tar: the "image" is the tar, named by its diff_id."""
    from distroless import imagebuild
    from distroless.oci.image import Platform
    from distroless.sbom import spdx
    from distroless.sbom.common import ImageInfo, LayerInfo

    info = ImageInfo(digest=diff_id, arch=Platform.from_arch(arch_fs.arch).arch,
                     layers=(LayerInfo(diff_id, OCI_LAYER_TAR),), created=arch_fs.bde, name=name)
    packages = [r.package for r in arch_fs.rootfs.installer.installed]
    return spdx.spdx_image(packages, imagebuild.os_info(arch_fs.rootfs.tree), info)
