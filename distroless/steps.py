"""The engine's steps over plain files, one process per step: what Bazel actions (and any other
build system that passes files between steps) run.

    python3 -m distroless.steps expand   --apk F [--checksum Q1..] [--sha256 HEX] --out DIR
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
    python3 -m distroless.steps pack     --file PATH=SRC... -- <`distroless package create` flags>
    python3 -m distroless.steps melange  --recipe R --file PATH=SRC... --out APK... -- <`package build` flags>
    python3 -m distroless.steps cli      -- <any `distroless` command line>

Why this split (see bazel/README.md): expansion is per package (keyed by the .apk alone), the
root filesystem is assembled once per architecture and cut into uncompressed layer tars, each
tar is compressed by its own step (unchanged packages give byte-identical tars, so their
compression is a cache hit), and image/index/SBOM steps only write small JSON. Every function
called is the engine's own, so the digest equals `distroless image build`'s for the same inputs.
Outputs never contain the paths they were written from; every output is written atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from distroless import epoch
from distroless.errors import DistrolessError
from distroless.events import Events, TextSink
from distroless.fsutil import atomic_output, atomic_write

META_VERSION = 1
# Layering strategies as the config names them; "single" is apko's default (no `layering:`).
LAYERINGS = ("single", "package", "origin")


# --------------------------------------------------------------------------- small helpers


class StepError(DistrolessError):
    """A step's inputs do not fit together (wrong order, wrong arch, too few layer outputs)."""


def _write_json(path: Path, doc: object) -> None:
    atomic_write(path, (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode())


def _fresh_dir(path: Path) -> None:
    """Bazel pre-creates tree-artifact outputs; other callers may not. Either way: empty."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)


def _publish_dir(staging: Path, out: Path) -> None:
    """Move a finished staging directory's contents into `out` (the atomic part is the staging)."""
    _fresh_dir(out)
    for child in staging.iterdir():
        os.replace(child, out / child.name)


def _staging(near: Path) -> Path:
    near.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{near.name}.", dir=near.parent))


def _oci_arch(arch: str) -> str:
    from distroless.config import parse_architecture

    return parse_architecture(arch)


# --------------------------------------------------------------------------- expand


def cmd_expand(args: argparse.Namespace) -> int:
    from distroless.store.expand import expand
    from distroless.store.cache import Cache

    out = Path(args.out)
    work = _staging(out)
    try:
        # The engine's own expansion into a private cache; its entry is exactly data.tar + meta.json.
        exp = expand(Path(args.apk), Cache(work / "cache"), expected_checksum=args.checksum or None,
                     expected_sha256=args.sha256 or None)
        entry = exp.tar.parent
        _fresh_dir(out)
        for name in ("data.tar", "meta.json"):
            os.replace(entry / name, out / name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.apk}: {exp.apk.package.name}-{exp.apk.package.version} expanded")
    return 0


def stderr_events() -> Events:
    """A step's warnings and notes, as lines on stderr (Bazel shows them with the action)."""
    return Events(TextSink(sys.stderr))


def load_expanded(directory: str | os.PathLike[str]):
    """An `expand` output (or an engine cache entry) as the engine's `Expanded`."""
    from distroless.store.expand import load

    exp = load(Path(directory))
    if exp is None:
        raise StepError(f"{directory}: not an expanded package (data.tar + meta.json)")
    return exp


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
    if len(expanded) != len(pins):
        raise StepError(f"{len(expanded)} expanded packages given, the lock has {len(pins)} for {arch}")
    for pin, exp in zip(pins, expanded):  # the wiring must follow lock order exactly
        if exp.apk.checksum != pin.package.checksum or (pin.sha256 and exp.apk.sha256 != pin.sha256):
            raise StepError(f"expanded package {exp.apk.package.name}-{exp.apk.package.version} given where "
                            f"the lock has {pin.package.name}-{pin.package.version}")
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
    _write_json(Path(args.out_meta), {
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
        _write_json(out_desc, {})
        return 0
    work = _staging(out_blob)
    try:
        with open(args.tar, "rb") as src:
            layer = write_layer(src, work, compression=args.compression)
        os.replace(layer.path, out_blob)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _write_json(out_desc, {"digest": layer.digest, "size": layer.size, "diff_id": layer.diff_id,
                           "media_type": layer.media_type})
    print(f"{args.tar}: {layer.digest}")
    return 0


# --------------------------------------------------------------------------- image, index


def _write_index_layout(out: Path, index) -> None:
    from distroless.oci.layout import write_layout

    work = _staging(out)
    try:
        write_layout(work, index)
        _publish_dir(work, out)
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
    _fresh_dir(out)
    for name, doc in docs.items():
        atomic_write(out / name, doc)
    print(f"{args.layout}: {', '.join(sorted(docs))}")
    return 0


# --------------------------------------------------------------------------- sign, verify, push, load


def _password(args: argparse.Namespace) -> bytes | None:
    if not args.password_file:
        return None
    data = Path(args.password_file).read_bytes()
    return data[:-1] if data.endswith(b"\n") else data  # a file written by `echo` ends in a newline


def cmd_sign(args: argparse.Namespace) -> int:
    from distroless import epoch, hostenv
    from distroless.sign import dsse, keys, layout

    key = keys.read_private_key(args.key, _password(args) if args.password_file else hostenv.key_password)
    out = Path(args.out)
    work = _staging(out)
    try:
        signed = work / "layout"
        shutil.copytree(args.layout, signed, symlinks=False)
        for p in signed.rglob("*"):  # inputs are read-only; the copy is ours to extend
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        os.chmod(signed, 0o755)
        subject, _ = layout.sign_layout(signed, key, identity=args.identity or None)
        for predicate in args.attest:
            ptype = dsse.predicate_type_uri(args.attest_type)
            pred = dsse.predicate_for(args.attest_type, Path(predicate).read_bytes(), Path(predicate).name,
                                      timestamp=hostenv.predicate_timestamp(epoch.parse(args.source_date_epoch,
                                                                                         "--source-date-epoch")))
            layout.attest_layout(signed, key, ptype, pred)
        _publish_dir(signed, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"signed {subject.digest}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from distroless.sign import keys, layout

    pub = keys.read_public_key(args.key)
    subject, ok = layout.verify_layout(args.layout, pub)
    print(f"{args.layout}: {len(ok)} valid signature(s) for {subject.digest}")
    if args.attestations:
        _, atts = layout.verify_layout_attestations(args.layout, pub)
        print(f"{args.layout}: {len(atts)} valid attestation(s)")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from distroless import hostenv
    from distroless.registry.client import RegistryClient
    from distroless.registry.reference import parse_reference
    from distroless.sign.push import push_layout

    ref = parse_reference(args.ref)
    client = RegistryClient(ref.registry, insecure=True if args.insecure else None,
                            docker_config=hostenv.docker_config())
    result = push_layout(args.layout, ref, client=client,
                         log=lambda m: print(m, file=sys.stderr))
    print(f"{ref.name}@{result.digest}")
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    from distroless.oci.dockerarchive import write_docker_archive, write_docker_archive_to
    from distroless.sign.layout import find_subject
    from distroless.oci.layout import load_image, load_index
    from distroless.oci.image import Index, OCI_INDEX

    ls = find_subject(args.layout)
    if ls.subject.media_type == OCI_INDEX or "index" in ls.subject.media_type:
        index = load_index(args.layout, ls.subject)
    else:
        im = load_image(args.layout, ls.subject)
        index = Index(b"", (im,))
    if args.out:
        write_docker_archive(args.out, index, args.tag)
        print(f"{args.out}: docker archive of {', '.join(args.tag)}")
        return 0
    proc = subprocess.Popen([args.docker, "load"], stdin=subprocess.PIPE)
    assert proc.stdin is not None
    try:
        write_docker_archive_to(proc.stdin, index, args.tag)
    finally:
        proc.stdin.close()
    return proc.wait()


# --------------------------------------------------------------------------- CLI verbs over staged files


def _stage_tree(specs: Sequence[str], root: Path) -> None:
    """`PATH=SRC` pairs → a real directory tree (sandboxes give inputs as symlinks, read-only)."""
    for spec in specs:
        rel, sep, src = spec.partition("=")
        if not sep or rel.startswith("/") or ".." in Path(rel).parts:
            raise StepError(f"--file {spec!r}: expected RELATIVE/PATH=SOURCE")
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        os.chmod(dest, 0o755 if os.stat(src).st_mode & 0o111 else 0o644)
    for d in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        os.chmod(d, 0o755)


def _run_cli(argv: Sequence[str]) -> int:
    from distroless.cli import main as cli_main

    return cli_main(list(argv))


def cmd_pack(args: argparse.Namespace) -> int:
    """`distroless package create` over a tree staged from `--file` pairs."""
    work = Path(tempfile.mkdtemp(prefix="pack-"))
    try:
        tree = work / "tree"
        tree.mkdir()
        _stage_tree(args.file, tree)
        return _run_cli(["package", "create", str(tree), *args.rest])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def cmd_melange(args: argparse.Namespace) -> int:
    """`distroless package build` over a source tree staged from `--file` pairs; the packages it
    writes are copied to the declared `--out APK` files (by file name)."""
    work = Path(tempfile.mkdtemp(prefix="melange-"))
    try:
        src, out = work / "src", work / "out"
        src.mkdir()
        _stage_tree(args.file, src)
        rc = _run_cli(["package", "build", args.recipe, "--source-dir", str(src), "--out-dir", str(out),
                       "--generate-index=false", *args.rest])
        if rc:
            return rc
        built = {p.name: p for p in out.glob("*/*.apk")}
        for dest in args.out:
            name = Path(dest).name
            if name not in built:
                raise StepError(f"{args.recipe} built {', '.join(sorted(built)) or 'nothing'}, not {name}")
            with atomic_output(dest) as f, open(built[name], "rb") as g:
                shutil.copyfileobj(g, f)
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def cmd_cli(args: argparse.Namespace) -> int:
    return _run_cli(args.rest)


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python3 -m distroless.steps", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source-date-epoch", default=None,
                   help="SOURCE_DATE_EPOCH for this step (actions get no environment)")
    sub = p.add_subparsers(dest="step", required=True, metavar="STEP")

    s = sub.add_parser("expand", help="verify an .apk and write data.tar + meta.json")
    s.add_argument("--apk", required=True)
    s.add_argument("--checksum", default="", help="the lock's Q1 control checksum")
    s.add_argument("--sha256", default="", help="the lock's whole-file sha256")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_expand)

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

    s = sub.add_parser("pack", help="`distroless package create` over staged files")
    s.add_argument("--file", action="append", default=[], metavar="PATH=SRC")
    s.add_argument("rest", nargs=argparse.REMAINDER)
    s.set_defaults(func=cmd_pack)

    s = sub.add_parser("melange", help="`distroless package build` over staged sources")
    s.add_argument("--recipe", required=True)
    s.add_argument("--file", action="append", default=[], metavar="PATH=SRC")
    s.add_argument("--out", action="append", required=True, metavar="APK", help="declared outputs, by file name")
    s.add_argument("rest", nargs=argparse.REMAINDER)
    s.set_defaults(func=cmd_melange)

    s = sub.add_parser("cli", help="run a `distroless` command line (for wrappers)")
    s.add_argument("rest", nargs=argparse.REMAINDER)
    s.set_defaults(func=cmd_cli)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "rest", None) and args.rest[0] == "--":
        args.rest = args.rest[1:]
    if args.source_date_epoch is not None:
        # the `cli` step's verbs read it from the environment, as `image build` does
        epoch.parse(args.source_date_epoch, "--source-date-epoch")  # fail early, by the one rule
        os.environ[epoch.NAME] = args.source_date_epoch
    else:
        args.source_date_epoch = os.environ.get(epoch.NAME)
    from distroless.cli import run_command

    return run_command(args)


if __name__ == "__main__":
    sys.exit(main())
