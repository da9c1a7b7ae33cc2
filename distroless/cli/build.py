"""`image build` and `image build-minirootfs`."""

from __future__ import annotations

import argparse
from pathlib import Path

from distroless.cli.image import add_config_flags, fetcher_for, load, package_set
from distroless.config import host_architecture
from distroless.fsutil import atomic_output
from distroless.rootfs.build import build_rootfs
from distroless.rootfs.layer import write_rootfs_tar


def register(isub: argparse._SubParsersAction) -> None:
    mr = isub.add_parser("build-minirootfs", help="write the root filesystem as an uncompressed tar")
    mr.add_argument("config", type=Path)
    mr.add_argument("output", type=Path)
    mr.add_argument("--build-arch", default="", help="architecture (default: this machine's)")
    mr.add_argument("--keep-owners", action="store_true", help="keep package uid/gid instead of apko's 0:0")
    add_config_flags(mr)
    mr.set_defaults(func=cmd_minirootfs)


def cmd_minirootfs(args: argparse.Namespace) -> int:
    args.arch = [args.build_arch or host_architecture()]
    loaded = load(args)
    fetcher = fetcher_for(args)
    ps = package_set(args, loaded, fetcher)
    (arch_fs,) = build_rootfs(loaded, ps, fetcher, keep_owners=args.keep_owners, lock_world=False, jobs=args.jobs)
    with atomic_output(args.output) as out:
        diff_id = write_rootfs_tar(arch_fs.rootfs.tree, out)
    print(f"{args.output}: {len(arch_fs.expanded)} packages, diff_id {diff_id}")
    return 0
