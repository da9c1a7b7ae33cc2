"""The package steps over plain files (`python3 -m distroless.steps pack|melange|apk-index`):
each calls the engine's own function — the one `distroless package create|build|index` calls
in-process — never the CLI. Build systems pass the CLI's flags after `--`."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from distroless import epoch
from distroless.errors import StepError
from distroless.fsutil import atomic_output, atomic_write
from distroless.stepio import stderr_events


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


def _epoch(value: str | None) -> int:
    return epoch.parse_or(value, 0, "--source-date-epoch")


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _flat(values: list[list[str]]) -> list[str]:
    return [v for vs in values for v in vs]


def _pack_parser() -> argparse.ArgumentParser:
    """`distroless package create`'s flags (Bazel's apk_package passes them after `--`)."""
    p = argparse.ArgumentParser(prog="distroless.steps pack --")
    p.add_argument("--name", required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--arch", default="x86_64")
    p.add_argument("--description", default="")
    p.add_argument("--url", default="")
    p.add_argument("--license", default="")
    p.add_argument("--origin", default="")
    # one value per occurrence, comma-separated values split (as `package create`'s flags): the
    # Bazel rule repeats the flag once per dependency
    p.add_argument("--depends", action="append", type=_csv, default=[])
    p.add_argument("--provides", action="append", type=_csv, default=[])
    p.add_argument("--replaces", action="append", type=_csv, default=[])
    p.add_argument("--provider-priority", type=int, default=0)
    p.add_argument("--script", action="append", default=[], metavar=".post-install=FILE")
    p.add_argument("--signing-key")
    p.add_argument("-o", "--output", required=True)
    return p


def pack_tree(tree: Path, meta, output: Path, *, signing_key: str | None, scripts: dict[str, bytes],
              source_date_epoch: int):
    """A directory tree → a signed .apk (melange's layout). `package create` is this in-process."""
    from distroless.apk import keys, pack

    key = keys.load_private(signing_key) if signing_key else None
    return pack.pack(tree, meta, output, signing_key=key, scripts=scripts, source_date_epoch=source_date_epoch)


def cmd_pack(args: argparse.Namespace) -> int:
    from distroless.apk.model import Package

    opts = _pack_parser().parse_args(args.rest)
    scripts = {}
    for spec in opts.script:
        name, sep, file = spec.partition("=")
        if not sep:
            raise StepError(f"--script {spec!r}: expected NAME=FILE")
        scripts[name] = Path(file).read_bytes()
    meta = Package(name=opts.name, version=opts.version, arch=opts.arch, description=opts.description, url=opts.url,
                   license=opts.license, origin=opts.origin or opts.name, depends=_flat(opts.depends),
                   provides=_flat(opts.provides), replaces=_flat(opts.replaces), provider_priority=opts.provider_priority)
    work = Path(tempfile.mkdtemp(prefix="pack-"))
    try:
        tree = work / "tree"
        tree.mkdir()
        _stage_tree(args.file, tree)
        built = pack_tree(tree, meta, Path(opts.output), signing_key=opts.signing_key, scripts=scripts,
                          source_date_epoch=_epoch(args.source_date_epoch))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{opts.output}: {built.package.name}-{built.package.version} {built.checksum}")
    return 0


def _melange_parser() -> argparse.ArgumentParser:
    """The subset of `distroless package build`'s flags a build system passes (after `--`)."""
    p = argparse.ArgumentParser(prog="distroless.steps melange --")
    p.add_argument("--arch", action="append", default=[])
    p.add_argument("--runner", default="bubblewrap", choices=("bubblewrap", "docker"))
    p.add_argument("--host-toolchain", action="store_true")
    p.add_argument("--signing-key")
    p.add_argument("--pipeline-dir", action="append", default=[])
    p.add_argument("-k", "--keyring-append", action="append", default=[])
    p.add_argument("-r", "--repository-append", action="append", default=[])
    p.add_argument("--build-option", action="append", default=[])
    p.add_argument("--namespace", default="unknown")
    p.add_argument("--offline", action="store_true")
    return p


def check_host_identity(recorded: Path) -> None:
    """A host-toolchain build's action key holds the toolchain identity recorded at fetch time;
    building with another toolchain under that key would poison the cache."""
    from distroless.melange.hostid import host_identity

    want, have = recorded.read_text(), host_identity()
    if want != have:
        diff = "; ".join(f"{w.strip()} -> {h.strip()}" for w, h in zip(want.splitlines(), have.splitlines()) if w != h)
        raise StepError(f"{recorded}: the host toolchain changed since it was recorded ({diff or 'differs'}); "
                        "re-record it with `bazel sync --configure`")


def cmd_melange(args: argparse.Namespace) -> int:
    """The engine's melange build over a source tree staged from `--file` pairs; the packages it
    writes are copied to the declared `--out APK` files (by file name)."""
    from distroless import hostenv
    from distroless.melange.build import BuildOptions, build
    from distroless.melange.envlock import LockedEnvironment

    if args.host_identity:
        check_host_identity(Path(args.host_identity))
    opts = _melange_parser().parse_args(args.rest)
    # a build system's action must say where its environment comes from: the host (a declared,
    # local-only toolchain) or a lock's packages (declared inputs); never a download at build time
    if not (opts.host_toolchain or args.env_lock):
        raise StepError(f"{args.recipe}: give the build environment as a lock (--env-lock, --env-apk; Bazel: "
                        "melange_package's environment) or build with the host toolchain (host_toolchain = True)")
    env = LockedEnvironment(Path(args.env_lock), tuple(Path(a) for a in args.env_apk)) if args.env_lock else None
    csv = lambda vs: tuple(v.strip() for item in vs for v in item.split(",") if v.strip())  # noqa: E731
    work = Path(tempfile.mkdtemp(prefix="melange-"))
    try:
        src, out = work / "src", work / "out"
        src.mkdir()
        _stage_tree(args.file, src)
        build(args.recipe, BuildOptions(
            out_dir=out, archs=csv(opts.arch), signing_key=Path(opts.signing_key) if opts.signing_key else None,
            source_dir=src, pipeline_dirs=tuple(Path(d) for d in opts.pipeline_dir), runner=opts.runner,
            generate_index=False, keyring_append=csv(opts.keyring_append),
            repository_append=csv(opts.repository_append), build_options=csv(opts.build_option),
            host_toolchain=opts.host_toolchain, source_date_epoch=_epoch(args.source_date_epoch),
            namespace=opts.namespace, offline=opts.offline, log=sys.stderr, events=stderr_events(), environment=env,
            # a build action is the front door here: the package cache location comes from its environment
            apk_cache_dir=hostenv.cache_root()))
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


def cmd_melange_lock(args: argparse.Namespace) -> int:
    """`bazel run :<name>` of melange_lock: `package lock` in the workspace."""
    from distroless import hostenv
    from distroless import lock as lockfile
    from distroless.melange.build import BuildOptions, lock_recipe

    parser = _melange_parser()
    parser.add_argument("--cache-dir", default="", help="the package cache (default: the engine's)")
    opts = parser.parse_args(args.rest)
    csv = lambda vs: tuple(v.strip() for item in vs for v in item.split(",") if v.strip())  # noqa: E731
    lk = lock_recipe(args.recipe, BuildOptions(
        archs=csv(opts.arch), keyring_append=csv(opts.keyring_append), repository_append=csv(opts.repository_append),
        build_options=csv(opts.build_option), offline=opts.offline, source_date_epoch=_epoch(args.source_date_epoch),
        apk_cache_dir=Path(opts.cache_dir) if opts.cache_dir else hostenv.cache_root(), events=stderr_events()))
    lockfile.write(lk, args.out)
    print(f"{args.out}: {len(lk.packages)} environment packages locked ({', '.join(lk.archs())})")
    return 0


def apk_index(packages: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str], *, arch: str = "",
              description: str = "", signing_key: str | os.PathLike[str] | None = None,
              source: str | os.PathLike[str] | None = None, merge: bool = False) -> int:
    """Packages → a signed APKINDEX.tar.gz (`package index` is this in-process). Returns the count."""
    from distroless.apk import index, keys, package

    new = [apk.package for apk in (package.read(p) for p in packages) if not arch or apk.package.arch == arch]
    old = index.read_file(source, verify=False).packages if source else []
    if merge and os.path.exists(output):
        old = index.merge(old, index.read_file(output, verify=False).packages)
    merged = index.merge(old, new)
    key = keys.load_private(signing_key) if signing_key else None
    atomic_write(output, index.build(merged, description, key))
    return len(merged)


def cmd_apk_index(args: argparse.Namespace) -> int:
    n = apk_index(args.apk, args.output, arch=args.arch, description=args.description,
                  signing_key=args.signing_key or None)
    print(f"{args.output}: {n} packages")
    return 0


def _dotenv(path: str | None) -> dict[str, str]:
    """The frontend hands `--env-file`-style variables over as a JSON object."""
    if not path:
        return {}
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise StepError(f"--env-json {path}: expected a JSON object of strings")
    return data


def _recipe_input(args: argparse.Namespace):
    from distroless.melange.stages import RecipeInput

    return RecipeInput(Path(args.recipe).read_bytes(), args.recipe_name or Path(args.recipe).name,
                       _dotenv(args.env_json))


def recipe_environment(args: argparse.Namespace):
    """A recipe's build environment for `--arch` as the engine's config (`melange-metadata`)."""
    from distroless.arch import parse, to_apk

    return _recipe_input(args).environment(to_apk(parse(args.arch)), _epoch(args.source_date_epoch))


def _key(path: str | None) -> Path | None:
    return Path(path) if path else None


def cmd_key_id(args: argparse.Namespace) -> int:
    """The public half of the signing key → a file: mounted read-only into the pack and index steps,
    it makes their cache keys follow the key (BuildKit keeps secrets out of cache keys)."""
    import hashlib

    from distroless.apk import keys

    public = keys.load_private(Path(args.key)).public_pem()
    atomic_write(args.out, f"sha256:{hashlib.sha256(public).hexdigest()}\n".encode())
    return 0


def cmd_melange_workspace(args: argparse.Namespace) -> int:
    from distroless.melange.stages import prepare_workspace

    n = prepare_workspace(Path(args.source), Path(args.out), args.package)
    print(f"{args.out}: {n} source files, {len(args.package)} output directories")
    return 0


def cmd_melange_pack(args: argparse.Namespace) -> int:
    from distroless.melange.stages import pack_workspace

    built = pack_workspace(_recipe_input(args), args.arch, Path(args.workspace), Path(args.out),
                           sde=_epoch(args.source_date_epoch), signing_key=_key(args.signing_key),
                           key_name=args.key_name,
                           namespace=args.namespace, env_root=Path(args.env_root) if args.env_root else None,
                           events=stderr_events())
    for b in built:
        print(f"{b.path.name}: sha256 {b.sha256}")
    return 0


def cmd_melange_index(args: argparse.Namespace) -> int:
    from distroless.melange.stages import index_directory

    path = index_directory(Path(args.dir), args.arch, signing_key=_key(args.signing_key),
                           key_name=args.key_name)
    print(f"{path}: written")
    return 0
