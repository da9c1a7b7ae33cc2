"""The engine's steps over plain files, one process per step: what Bazel actions (and any other
build system that passes files between steps) run.

    python3 -m distroless.steps resolve  --config C [--arch A...] --out LOCK [--cache-dir D] [--offline]
    python3 -m distroless.steps expand   --apk F [--checksum Q1..] [--sha256 HEX] --out DIR
    python3 -m distroless.steps metadata --config C [--config-name N] [--config-arch A...] --lock L --arch A \
                                         (--apk F... | --expanded DIR...) --out DIR
    python3 -m distroless.steps assemble --config C --lock L --arch A --expanded DIR... \
                                         --out-layer F... --out-meta F [--layering single|package|origin]
    python3 -m distroless.steps layer    --tar F --out-blob F --out-desc F [--compression gzip|zstd]
    python3 -m distroless.steps image    --meta F --layer BLOB DESC... --out-layout DIR [--out-digest F]
    python3 -m distroless.steps index    --image DIR META... --out-layout DIR [--out-digest F]
    python3 -m distroless.steps sbom     --layout DIR --meta F... --out-dir DIR [--name REF] [--format spdx]
    python3 -m distroless.steps sign     --key K [--password-file F] --layout DIR --out DIR [--attest F]
    python3 -m distroless.steps verify   --key PUB --layout DIR
    python3 -m distroless.steps push     --layout DIR --ref REF [--insecure]
    python3 -m distroless.steps load     --layout DIR --tag T [--docker CLI | --out F]
    python3 -m distroless.steps pack     --file PATH=SRC... -- --name N --version V ... -o OUT.apk
    python3 -m distroless.steps melange  --recipe R --file PATH=SRC... --out APK... [--env-lock L --env-apk F...] -- ...
    python3 -m distroless.steps melange-lock --recipe R --out LOCK -- [--arch A] [--cache-dir D] ...
    python3 -m distroless.steps apk-index --apk F... -o APKINDEX.tar.gz [--arch A] [--signing-key K]

Why this split (see bazel/README.md): expansion is per package (keyed by the .apk alone), the
root filesystem is assembled once per architecture and cut into uncompressed layer tars, each
tar is compressed by its own step (unchanged packages give byte-identical tars, so their
compression is a cache hit), and image/index/SBOM steps only write small JSON. `metadata` is
the layer-per-package front doors' last layer (BuildKit runs it as an ExecOp over the packages'
http sources). Every function called is the engine's own — the CLI calls the same ones in-process,
and no step calls the CLI — so the digest equals `distroless image build`'s for the same inputs.
Outputs never contain the paths they were written from; every output is written atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from distroless import epoch
from distroless.errors import DistrolessError, StepError
from distroless.fsutil import atomic_output, atomic_write
from distroless.stepio import fresh_dir, publish_dir, staging, stderr_events, write_json

META_VERSION = 1
# Layering strategies as the config names them; "single" is apko's default (no `layering:`).
LAYERINGS = ("single", "package", "origin")


# --------------------------------------------------------------------------- small helpers


def _oci_arch(arch: str) -> str:
    from distroless.config import parse_architecture

    return parse_architecture(arch)


# --------------------------------------------------------------------------- expand


def cmd_expand(args: argparse.Namespace) -> int:
    from distroless.store.expand import expand
    from distroless.store.cache import Cache

    out = Path(args.out)
    work = staging(out)
    try:
        # The engine's own expansion into a private cache; its entry is exactly data.tar + meta.json.
        exp = expand(Path(args.apk), Cache(work / "cache"), expected_checksum=args.checksum or None,
                     expected_sha256=args.sha256 or None)
        entry = exp.tar.parent
        fresh_dir(out)
        for name in ("data.tar", "meta.json"):
            os.replace(entry / name, out / name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.apk}: {exp.apk.package.name}-{exp.apk.package.version} expanded")
    return 0


def load_expanded(directory: str | os.PathLike[str]):
    """An `expand` output (or an engine cache entry) as the engine's `Expanded`."""
    from distroless.store.expand import load

    exp = load(Path(directory))
    if exp is None:
        raise StepError(f"{directory}: not an expanded package (data.tar + meta.json)")
    return exp


# --------------------------------------------------------------------------- resolve


def resolve(loaded, fetcher, config_name: str, *, ignore_signatures: bool = False):
    """config + indexes → lock: resolve, then fetch each package once (verified) to pin its whole-
    file sha256 and byte ranges. `distroless image lock` is this step in-process."""
    from distroless import packages as pkgset

    ps = pkgset.resolve_config(loaded, fetcher, ignore_signatures=ignore_signatures)
    fetched = pkgset.fetch_all(ps, fetcher)
    return ps, pkgset.lock_of(loaded, ps, fetched, config_name, fetcher.cache)


def cmd_resolve(args: argparse.Namespace) -> int:
    from distroless import hostenv
    from distroless import lock as lockfile
    from distroless.config import Overrides, load_image_config
    from distroless.fetch.fetcher import Fetcher
    from distroless.store.cache import Cache

    loaded = load_image_config(args.config, Overrides(
        archs=tuple(args.arch), include_paths=tuple(args.include_path),
        source_date_epoch=epoch.parse(args.source_date_epoch, "--source-date-epoch")))
    # `bazel run :lock` is the front door here: the cache location comes from its environment
    fetcher = Fetcher(Cache(args.cache_dir or hostenv.cache_root()), offline=args.offline, events=stderr_events())
    ps, lk = resolve(loaded, fetcher, args.config, ignore_signatures=args.ignore_signatures)
    lockfile.write(lk, args.out)
    counts = ", ".join(f"{a}: {len(p)}" for a, p in ps.archs.items())
    print(f"{args.out}: {len(lk.packages)} packages locked ({counts})")
    return 0


# --------------------------------------------------------------------------- metadata


def _step_config(args: argparse.Namespace):
    """The config as the calling front door loaded it: from the file (with includes), or — with
    `--config-name` — from its bytes under that name, as the BuildKit frontend reads it."""
    from distroless.config import Overrides, load_image_config, load_image_config_bytes

    ov = Overrides(archs=tuple(args.config_arch), include_paths=tuple(args.include_path),
                   source_date_epoch=epoch.parse(args.source_date_epoch, "--source-date-epoch"))
    if args.config_name:
        return load_image_config_bytes(Path(args.config).read_bytes(), args.config_name, ov)
    return load_image_config(args.config, ov)


def _locked_pins(loaded, lock_path: str, lock_name: str, arch: str, config_name: str = ""):
    from distroless import lock as lockfile
    from distroless import packages as pkgset

    ps = pkgset.from_lock(lockfile.load(lock_path), loaded, lock_path=lock_name, config_name=config_name,
                          events=stderr_events())
    if arch not in ps.archs:
        raise StepError(f"{lock_name}: no packages for {arch} (config archs: {', '.join(ps.archs)})")
    return ps, ps.archs[arch]


def metadata_layer(loaded, ps, arch: str, expanded, out: Path, *, lock_world: bool = True) -> None:
    """config + expansions → the metadata layer of a layer-per-package image (everything the
    engine's root filesystem has that stacking the packages' data tars does not: installed
    database, world, accounts, /etc/apko.json, certificates, ld.so.cache, device nodes, directory
    metadata), as `metadata.tar`, plus `image.json` (the image config's settings, build date and
    the engine's warnings) and `sbom.spdx.json` (the installed packages, for an attestation)."""
    from distroless import imagebuild, overlay
    from distroless.assembly import assemble_arch
    from distroless.rootfs.layer import iter_tar, owner_names
    from distroless.sbom import spdx

    from distroless.events import Events, TextSink, Warning

    warnings: list[dict] = []
    log = TextSink(sys.stderr)

    def sink(event) -> None:  # on stderr, and kept for the front door to pass on (BuildKit's Warn)
        log(event)
        if isinstance(event, Warning):
            loc = event.location
            warnings.append({"text": event.text, "file": loc.file if loc else "", "line": loc.line if loc else 0})

    arch_fs = assemble_arch(loaded, ps, arch, expanded, lock_world=lock_world, events=Events(sink))
    tree = arch_fs.rootfs.tree
    users, groups = owner_names(tree)
    with atomic_output(out / "metadata.tar") as f:
        for chunk in iter_tar(overlay.metadata_entries(tree, arch_fs.expanded), users, groups):
            f.write(chunk)
    write_json(out / "image.json", {
        "version": META_VERSION, "arch": arch, "image": imagebuild.image_settings(arch_fs.rootfs.config, arch_fs.bde),
        "source_date_epoch_pinned": loaded.source_date_epoch_pinned, "warnings": warnings,
    })
    pkgs = [r.package for r in arch_fs.rootfs.installer.installed]
    doc = spdx.packages_document(pkgs, imagebuild.os_info(tree), arch, arch_fs.bde)
    atomic_write(out / "sbom.spdx.json", json.dumps(doc, indent=2).encode())


def cmd_metadata(args: argparse.Namespace) -> int:
    return metadata_step(_step_config(args), args, config_name=args.config_name)


def metadata_step(loaded, args: argparse.Namespace, *, config_name: str = "", lock_world: bool = True) -> int:
    """The metadata layer of `loaded` over the locked packages (`--apk` or `--expanded`)."""
    arch = _oci_arch(args.arch)
    ps, pins = _locked_pins(loaded, args.lock, args.lock_name or args.lock, arch, config_name)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.expanded:
        expanded = [load_expanded(d) for d in args.expanded]
        _check_wiring(pins, expanded)
        metadata_layer(loaded, ps, arch, expanded, out, lock_world=lock_world)
    else:
        from distroless.store.cache import Cache
        from distroless.store.expandpool import expand_pinned

        if len(args.apk) != len(pins):
            raise StepError(f"{len(args.apk)} packages given, the lock has {len(pins)}")
        work = Path(tempfile.mkdtemp(prefix="metadata-", dir=args.work or None))
        try:
            metadata_layer(loaded, ps, arch, expand_pinned(pins, args.apk, Cache(work)), out, lock_world=lock_world)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{arch}: metadata layer over {len(pins)} packages", file=sys.stderr)
    return 0


def cmd_melange_metadata(args: argparse.Namespace) -> int:
    """`metadata` over a melange recipe's build environment, its world as written (as `package
    build` installs it): the frontend's environment from packages."""
    from distroless.packagesteps import recipe_environment

    return metadata_step(recipe_environment(args), args, lock_world=False)


def _check_wiring(pins, expanded) -> None:
    """Expanded packages must follow lock order exactly."""
    if len(expanded) != len(pins):
        raise StepError(f"{len(expanded)} expanded packages given, the lock has {len(pins)}")
    for pin, exp in zip(pins, expanded):
        if exp.apk.checksum != pin.package.checksum or (pin.sha256 and exp.apk.sha256 != pin.sha256):
            raise StepError(f"expanded package {exp.apk.package.name}-{exp.apk.package.version} given where "
                            f"the lock has {pin.package.name}-{pin.package.version}")


# --------------------------------------------------------------------------- assemble


def _loaded_config(config: str, sde: str | None, include_paths: Sequence[str]):
    from distroless import baseimage, epoch
    from distroless.config import Overrides, load_image_config

    loaded = load_image_config(config, Overrides(include_paths=tuple(include_paths),
                                                 source_date_epoch=epoch.parse(sde, "--source-date-epoch")))
    baseimage.refuse(loaded, "the Bazel rules")
    return loaded


def _config_layering(loaded) -> str:
    lay = loaded.config.layering
    return "single" if lay is None or lay.is_empty() else lay.strategy


def cmd_assemble(args: argparse.Namespace) -> int:
    from distroless import imagebuild
    from distroless import lock as lockfile
    from distroless import packages as pkgset
    from distroless.assembly import assemble_arch
    from distroless.rootfs.layer import iter_tar, owner_names

    loaded = _loaded_config(args.config, args.source_date_epoch, args.include_path)
    layering = _config_layering(loaded)
    if args.layering and args.layering != layering:
        raise StepError(f"{args.config} says layering {layering!r} but the build rule says {args.layering!r}")
    ps = pkgset.from_lock(lockfile.load(args.lock), loaded, lock_path=args.lock, events=stderr_events())
    arch = _oci_arch(args.arch)
    if arch not in ps.archs:
        raise StepError(f"{args.lock}: no packages for {arch} (config archs: {', '.join(ps.archs)})")
    pins = ps.archs[arch]
    expanded = [load_expanded(d) for d in args.expanded]
    _check_wiring(pins, expanded)
    arch_fs = assemble_arch(loaded, ps, arch, expanded, events=stderr_events())
    rootfs, bde = arch_fs.rootfs, arch_fs.bde

    groups = imagebuild.layer_groups(loaded, arch_fs)
    if len(groups) > len(args.out_layer):
        raise StepError(f"{len(groups)} layers but only {len(args.out_layer)} layer outputs were declared")
    users, owners = owner_names(rootfs.tree)
    for path, entries in zip(args.out_layer, groups):
        with atomic_output(path) as f:
            for chunk in iter_tar(entries, users, owners):
                f.write(chunk)
    for path in args.out_layer[len(groups):]:
        atomic_write(path, b"")  # an unused slot: no layer
    osi = imagebuild.os_info(rootfs.tree)
    write_json(Path(args.out_meta), {
        "version": META_VERSION, "arch": arch, "image": imagebuild.image_settings(rootfs.config, bde),
        "index_annotations": dict(loaded.config.annotations), "index_vcs_url": loaded.config.vcs_url,
        "os": asdict(osi), "packages": [asdict(r.package) for r in rootfs.installer.installed],
    })
    print(f"{arch}: {len(expanded)} packages, {len(groups)} layer(s)")
    return 0


def _read_meta(path: str) -> dict:
    meta = json.loads(Path(path).read_text())
    if meta.get("version") != META_VERSION:
        raise StepError(f"{path}: not an assemble metadata file of version {META_VERSION}")
    return meta


# --------------------------------------------------------------------------- layer


def cmd_layer(args: argparse.Namespace) -> int:
    from distroless.oci.image import write_layer

    out_blob, out_desc = Path(args.out_blob), Path(args.out_desc)
    if os.path.getsize(args.tar) == 0:  # an unused slot stays empty all the way
        atomic_write(out_blob, b"")
        write_json(out_desc, {})
        return 0
    work = staging(out_blob)
    try:
        with open(args.tar, "rb") as src:
            layer = write_layer(src, work, compression=args.compression)
        os.replace(layer.path, out_blob)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_json(out_desc, {"digest": layer.digest, "size": layer.size, "diff_id": layer.diff_id,
                           "media_type": layer.media_type})
    print(f"{args.tar}: {layer.digest}")
    return 0


# --------------------------------------------------------------------------- image, index


def _write_index_layout(out: Path, index) -> None:
    from distroless.oci.layout import write_layout

    work = staging(out)
    try:
        write_layout(work, index)
        publish_dir(work, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _index_annotations(metas: list[dict]) -> dict[str, str]:
    from distroless.oci.image import image_annotations

    created = max(m["image"]["created"] for m in metas)
    return image_annotations(metas[0]["index_annotations"], created, metas[0]["index_vcs_url"])


def cmd_image(args: argparse.Namespace) -> int:
    from distroless import imagebuild
    from distroless.oci.image import Layer, Platform, build_image, build_index

    meta = _read_meta(args.meta)
    layers = []
    for blob, desc_path in args.layer:
        desc = json.loads(Path(desc_path).read_text())
        if desc:
            layers.append(Layer(desc["digest"], desc["size"], desc["diff_id"], Path(blob), desc["media_type"]))
    settings = meta["image"]
    config = imagebuild.arch_config(settings, meta["arch"], [l.diff_id for l in layers])
    image = build_image(config, layers, imagebuild.manifest_annotations(settings), Platform.from_arch(meta["arch"]))
    # a one-arch layout is what `image build` writes for a one-arch config: an index of one
    index = build_index([image], _index_annotations([meta]))
    _write_index_layout(Path(args.out_layout), index)
    if args.out_digest:
        atomic_write(args.out_digest, (index.digest + "\n").encode())
    print(f"{meta['arch']}: {image.digest}; index {index.digest}")
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    from distroless.oci.image import build_index
    from distroless.oci.layout import read_layout

    images, metas = [], []
    for layout, meta in args.image:
        images.extend(read_layout(layout).as_index().images)
        metas.append(_read_meta(meta))
    index = build_index(images, _index_annotations(metas))
    _write_index_layout(Path(args.out_layout), index)
    if args.out_digest:
        atomic_write(args.out_digest, (index.digest + "\n").encode())
    print(f"index {index.digest}: {', '.join(im.platform.arch for im in index.images)}")
    return 0


# --------------------------------------------------------------------------- sbom


def cmd_sbom(args: argparse.Namespace) -> int:
    """The documents `image build` writes next to a layout: one per arch and one for the index."""
    from distroless import imagebuild
    from distroless.apk.model import Package
    from distroless.oci.layout import read_layout
    from distroless.sbom.common import OSInfo

    formats = tuple(f for v in args.format for f in v.split(",") if f) or ("spdx",)
    index = read_layout(args.layout).as_index()
    by_arch = {im.platform.arch: im for im in index.images}
    metas = [_read_meta(m) for m in args.meta]
    archs = [imagebuild.ArchSbom(m["arch"], by_arch[m["arch"]], [Package(**p) for p in m["packages"]],
                                 OSInfo(**m["os"]), m["image"]["created"], m["image"]["vcs_url"]) for m in metas]
    docs = imagebuild.sbom_documents(archs, index, name=args.name, vcs_url=metas[0]["index_vcs_url"], formats=formats)
    out = Path(args.out_dir)
    fresh_dir(out)
    for name, doc in docs.items():
        atomic_write(out / name, doc)
    print(f"{args.layout}: {', '.join(sorted(docs))}")
    return 0


# --------------------------------------------------------------------------- sign, verify, push, load


# --------------------------------------------------------------------------- parser


def _metadata_args(s: argparse.ArgumentParser) -> None:
    s.add_argument("--lock", required=True)
    s.add_argument("--lock-name", default="", help="the lock's name in messages")
    s.add_argument("--arch", required=True)
    g = s.add_mutually_exclusive_group()
    g.add_argument("--apk", nargs="*", default=[], metavar="APK", help="verified and expanded here, in lock order")
    g.add_argument("--expanded", nargs="*", default=[], metavar="DIR", help="`expand` outputs, in lock order")
    s.add_argument("--work", default="", help="scratch directory for expansions (default: $TMPDIR)")
    s.add_argument("--out", required=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python3 -m distroless.steps", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source-date-epoch", default=None,
                   help="SOURCE_DATE_EPOCH for this step (actions get no environment)")
    sub = p.add_subparsers(dest="step", required=True, metavar="STEP")

    s = sub.add_parser("resolve", help="config + indexes → lock (every package pinned by sha256)")
    s.add_argument("--config", required=True)
    s.add_argument("--include-path", action="append", default=[])
    s.add_argument("--arch", action="append", default=[], help="default: the config's archs")
    s.add_argument("--cache-dir", default="")
    s.add_argument("--offline", action="store_true")
    s.add_argument("--ignore-signatures", action="store_true")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_resolve)

    s = sub.add_parser("expand", help="verify an .apk and write data.tar + meta.json")
    s.add_argument("--apk", required=True)
    s.add_argument("--checksum", default="", help="the lock's Q1 control checksum")
    s.add_argument("--sha256", default="", help="the lock's whole-file sha256")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_expand)

    s = sub.add_parser("metadata", help="config + packages → the metadata layer of a layer-per-package image")
    s.add_argument("--config", required=True)
    s.add_argument("--config-name", default="", help="load the file's bytes under this name (no includes)")
    s.add_argument("--config-arch", action="append", default=[], help="the archs the front door loaded")
    s.add_argument("--include-path", action="append", default=[])
    _metadata_args(s)
    s.set_defaults(func=cmd_metadata)

    s = sub.add_parser("assemble", help="install expanded packages in lock order; write layer tars")
    s.add_argument("--config", required=True)
    s.add_argument("--include-path", action="append", default=[])
    s.add_argument("--lock", required=True)
    s.add_argument("--arch", required=True)
    s.add_argument("--layering", choices=LAYERINGS, default=None, help="fail unless the config says so")
    s.add_argument("--expanded", nargs="+", required=True, metavar="DIR", help="in lock order")
    s.add_argument("--out-layer", nargs="+", required=True, metavar="TAR", help="layer slots, in order")
    s.add_argument("--out-meta", required=True)
    s.set_defaults(func=cmd_assemble)

    s = sub.add_parser("layer", help="compress one layer tar")
    s.add_argument("--tar", required=True)
    s.add_argument("--compression", choices=("gzip", "zstd"), default="gzip")
    s.add_argument("--out-blob", required=True)
    s.add_argument("--out-desc", required=True)
    s.set_defaults(func=cmd_layer)

    s = sub.add_parser("image", help="config + manifest over compressed layers → OCI layout")
    s.add_argument("--meta", required=True)
    s.add_argument("--layer", nargs=2, action="append", default=[], metavar=("BLOB", "DESC"))
    s.add_argument("--out-layout", required=True)
    s.add_argument("--out-digest", default="")
    s.set_defaults(func=cmd_image)

    s = sub.add_parser("index", help="one index over per-arch image layouts")
    s.add_argument("--image", nargs=2, action="append", required=True, metavar=("LAYOUT", "META"))
    s.add_argument("--out-layout", required=True)
    s.add_argument("--out-digest", default="")
    s.set_defaults(func=cmd_index)

    s = sub.add_parser("sbom", help="SPDX / CycloneDX documents for a built layout")
    s.add_argument("--layout", required=True)
    s.add_argument("--meta", nargs="+", required=True)
    s.add_argument("--name", default="", help="image reference recorded in purls")
    s.add_argument("--format", action="append", default=[])
    s.add_argument("--out-dir", required=True)
    s.set_defaults(func=cmd_sbom)

    from distroless.publishsteps import cmd_load, cmd_push, cmd_sign, cmd_verify

    s = sub.add_parser("sign", help="copy a layout and sign (and attest) it")
    s.add_argument("--key", required=True)
    s.add_argument("--password-file", default="")
    s.add_argument("--identity", default="")
    s.add_argument("--layout", required=True)
    s.add_argument("--attest", action="append", default=[], metavar="PREDICATE")
    s.add_argument("--attest-type", default="spdxjson")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_sign)

    s = sub.add_parser("verify", help="verify a layout's signatures (exit 1 if none is valid)")
    s.add_argument("--key", required=True)
    s.add_argument("--layout", required=True)
    s.add_argument("--attestations", action="store_true")
    s.set_defaults(func=cmd_verify)

    s = sub.add_parser("push", help="push a layout (with its signatures) to a registry")
    s.add_argument("--layout", required=True)
    s.add_argument("--ref", required=True)
    s.add_argument("--insecure", action="store_true")
    s.set_defaults(func=cmd_push)

    s = sub.add_parser("load", help="docker-archive of a layout, piped to `docker load` or written")
    s.add_argument("--layout", required=True)
    s.add_argument("--tag", action="append", required=True)
    s.add_argument("--docker", default="docker")
    s.add_argument("--out", default="")
    s.set_defaults(func=cmd_load)

    from distroless.packagesteps import (cmd_apk_index, cmd_key_id, cmd_melange, cmd_melange_index,
                                         cmd_melange_lock, cmd_melange_pack, cmd_melange_workspace, cmd_pack)

    s = sub.add_parser("pack", help="pack staged files into an .apk (`package create`'s flags after --)")
    s.add_argument("--file", action="append", default=[], metavar="PATH=SRC")
    s.add_argument("rest", nargs=argparse.REMAINDER)
    s.set_defaults(func=cmd_pack)

    s = sub.add_parser("melange", help="build a melange recipe over staged sources")
    s.add_argument("--recipe", required=True)
    s.add_argument("--file", action="append", default=[], metavar="PATH=SRC")
    s.add_argument("--out", action="append", required=True, metavar="APK", help="declared outputs, by file name")
    s.add_argument("--host-identity", default="", metavar="FILE",
                   help="the host toolchain identity in the action key; refuse to build if this host differs")
    s.add_argument("--env-lock", default="", metavar="LOCK", help="install the build environment from this lock…")
    s.add_argument("--env-apk", action="append", default=[], metavar="APK", help="…and these .apk files (lock order)")
    s.add_argument("rest", nargs=argparse.REMAINDER)
    s.set_defaults(func=cmd_melange)

    s = sub.add_parser("melange-lock", help="a recipe's build environment → its lock (`package lock`)")
    s.add_argument("--recipe", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("rest", nargs=argparse.REMAINDER)
    s.set_defaults(func=cmd_melange_lock)

    s = sub.add_parser("apk-index", help="a signed APKINDEX.tar.gz over packages")
    s.add_argument("--apk", nargs="+", required=True)
    s.add_argument("-o", "--output", required=True)
    s.add_argument("--arch", default="")
    s.add_argument("--description", default="")
    s.add_argument("--signing-key", default="")
    s.set_defaults(func=cmd_apk_index)

    s = sub.add_parser("key-id", help="a signing key → the sha256 of its public half (never the key)")
    s.add_argument("--key", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_key_id)

    s = sub.add_parser("melange-workspace", help="sources → a recipe's workspace (owned by the build user)")
    s.add_argument("--source", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--package", action="append", default=[], help="a package whose melange-out/ dir to make")
    s.set_defaults(func=cmd_melange_workspace)

    s = sub.add_parser("melange-pack", help="a workspace the pipeline ran in → the recipe's signed .apk files")
    s.add_argument("--recipe", required=True)
    s.add_argument("--recipe-name", default="", help="the recipe's name in messages (default: its file name)")
    s.add_argument("--env-json", default="", help="a JSON object of --env-file variables")
    s.add_argument("--arch", required=True)
    s.add_argument("--workspace", required=True)
    s.add_argument("--out", required=True, help="packages go to OUT/<arch>/")
    s.add_argument("--signing-key", default="", help="the private key (a secret mount)")
    s.add_argument("--key-name", default="", help="the key's name in signatures (default: the file's)")
    s.add_argument("--namespace", default="unknown")
    s.add_argument("--env-root", default="", help="the build environment's root (its /etc/passwd names owners)")
    s.set_defaults(func=cmd_melange_pack)

    s = sub.add_parser("melange-metadata", help="a recipe's build environment + packages → its metadata layer")
    s.add_argument("--recipe", required=True)
    s.add_argument("--recipe-name", default="", help="the recipe's name in messages (default: its file name)")
    s.add_argument("--env-json", default="", help="a JSON object of --env-file variables")
    _metadata_args(s)
    s.set_defaults(func=cmd_melange_metadata)

    s = sub.add_parser("melange-index", help="the .apk files of a directory → its signed APKINDEX.tar.gz")
    s.add_argument("--dir", required=True)
    s.add_argument("--arch", required=True)
    s.add_argument("--signing-key", default="", help="the private key (a secret mount)")
    s.add_argument("--key-name", default="", help="the key's name in signatures (default: the file's)")
    s.set_defaults(func=cmd_melange_index)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "rest", None) and args.rest[0] == "--":
        args.rest = args.rest[1:]
    if args.source_date_epoch is not None:
        # given explicitly (actions get no environment); kept in it for the engine code that reads it
        epoch.parse(args.source_date_epoch, "--source-date-epoch")  # fail early, by the one rule
        os.environ[epoch.NAME] = args.source_date_epoch
    else:
        args.source_date_epoch = os.environ.get(epoch.NAME)
    try:
        return int(args.func(args) or 0)
    except DistrolessError as e:  # bad input: one line naming what is wrong, exit 1
        print(f"distroless.steps {args.step}: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        print(f"distroless.steps {args.step}: error: {where}{e.strerror or e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
