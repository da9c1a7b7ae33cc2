"""`package build RECIPE.yaml`: run a melange recipe in a sandbox and emit .apk files (melange.md §3).

Per architecture: compile the recipe; assemble the build environment with the image engine
(or, with `--host-toolchain` or when the recipe names no repository, a minimal root plus the
host's system directories); copy the sources into a workspace; run the main pipeline, then
each subpackage's; per package run SCA and `pack()` into `<out>/<arch>/`; then merge the new
packages into `<out>/<arch>/APKINDEX.tar.gz`. Every mtime comes from SOURCE_DATE_EPOCH, so the
same inputs give byte-identical packages.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

from distroless import lock as lockfile
from distroless.apk import index as apkindex
from distroless.apk import keys as apkkeys
from distroless.apk.model import Package
from distroless.apk.pack import Ownership, pack
from distroless.config import ImageConfig, arch_to_apk, host_architecture, parse_architecture
from distroless.errors import ConfigError, DistrolessError, FormatError
from distroless.store.cache import Cache
from distroless.events import NULL, Events
from distroless.fetch.fetcher import Fetcher
from distroless.fetch.transport import BasicAuth, Transport
from distroless.fsutil import CONFIG_CAP, atomic_write, read_regular
from distroless.config.yaml12 import load as load_yaml
from distroless.melange import lint
from distroless.melange import schema as s
from distroless.melange.compile import ArchSkipped, CompiledRecipe, CompileOptions, PackageOutput, compile_recipe
from distroless.melange.recipe import load_recipe, with_env_file
from distroless.melange.duration import parse_duration
from distroless.melange import envlock, sandboxnet
from distroless.melange.envlock import LockedEnvironment, loaded_from
from distroless.melange.runner import (CACHE_MOUNT, Mount, SandboxSpec, check_runner, host_shell, make_runner,
                                       run_steps)
from distroless.melange.sca import analyze, merge_metadata
from distroless.packages import resolve_config
from distroless.rootfs import post
from distroless.assembly import build_rootfs
from distroless.rootfs.export import export_tree, remove_tree
from distroless.rootfs.layer import id_names
from distroless.rootfs.tree import Tree

OUT_REL = "melange-out"
NETWORK_PIPELINES = frozenset({"fetch", "git-checkout"})


@dataclass(frozen=True, slots=True)
class BuildOptions:
    """melange's `build` flags (§5). Paths may be relative to the working directory."""

    out_dir: Path = Path("packages")
    archs: tuple[str, ...] = ()  # default: the host's (foreign archs need binfmt emulation)
    signing_key: Path | None = None
    source_dir: Path | None = None  # default: the recipe's directory
    pipeline_dirs: tuple[Path, ...] = ()
    runner: str = "bubblewrap"
    cache_dir: Path | None = None  # bound at /var/cache/melange; default ./melange-cache if present
    apk_cache_dir: Path | None = None  # the engine's package cache
    generate_index: bool = True
    keyring_append: tuple[str, ...] = ()
    repository_append: tuple[str, ...] = ()
    env_files: tuple[Path, ...] = ()
    vars_file: Path | None = None
    build_options: tuple[str, ...] = ()
    host_toolchain: bool = False
    network: bool | None = None  # None: on only when the recipe fetches (fetch, git-checkout)
    source_date_epoch: int = 0  # the front door's SOURCE_DATE_EPOCH (see distroless.epoch)
    namespace: str = "unknown"  # the `maintainer` field
    git_commit: str = ""
    workspace_dir: Path | None = None
    empty_workspace: bool = False
    debug: bool = False
    docker: str = "docker"
    docker_host: str = ""
    offline: bool = False
    ignore_signatures: bool = False
    log: TextIO | None = None  # where build steps' output goes (the front door's stderr); None: dropped
    events: Events = NULL  # notes on progress ("building …", "wrote …")
    http_auth: tuple[BasicAuth, ...] = ()  # HTTP_AUTH, as the front door read it
    package_append: tuple[str, ...] = ()  # --package-append: extra environment packages
    cleanup: bool = True  # --cleanup/--rm: remove the scratch directory (and docker image) afterwards
    timeout: str = ""  # --timeout (Go duration); overrides package.timeout when non-zero
    lint_require: tuple[str, ...] | None = None  # None: melange's defaults
    lint_warn: tuple[str, ...] | None = None
    build_log: Path | None = None  # --create-build-log: append `arch|origin|name|version` lines here
    persist_lint_results: bool = False  # write <out>/<arch>/lint-<name>-<version>.json
    environment: LockedEnvironment | None = None  # install the environment from a lock's .apk files only


@dataclass(frozen=True, slots=True)
class BuiltPackage:
    name: str
    path: Path
    package: Package  # as written: SCA depends/provides, checksum, sizes
    sha256: str


@dataclass(frozen=True, slots=True)
class ArchBuild:
    arch: str  # apk spelling
    packages: tuple[BuiltPackage, ...]
    index: Path | None


# --- small pure helpers ------------------------------------------------------------------

def parse_dotenv(text: str, source: str) -> dict[str, str]:
    """`KEY=value` lines (`export` prefix, `#` comments, single or double quotes)."""
    out: dict[str, str] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.replace("_", "a").isalnum():
            raise ConfigError(f"{source}:{n}: expected KEY=value, got {raw!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key] = value
    return out


def recipe_needs_network(compiled: CompiledRecipe) -> bool:
    return any(st.uses in NETWORK_PIPELINES for st in compiled.steps())


def container_environment(env: ImageConfig, sde: int) -> dict[str, str]:
    return {**env.environment, "SOURCE_DATE_EPOCH": str(sde)}


def _ignore_patterns(source: Path) -> list[str]:
    f = source / ".melangeignore"
    if not f.is_file():
        return []
    text = read_regular(f, CONFIG_CAP, ".melangeignore").decode("utf-8", "replace")
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def _ignored(rel: str, patterns: Sequence[str]) -> bool:
    parts = rel.split("/")
    for pat in patterns:
        p = pat.rstrip("/")
        if "/" in p.lstrip("/"):
            if fnmatch.fnmatchcase(rel, p.lstrip("/")) or rel.startswith(p.lstrip("/") + "/"):
                return True
        elif any(fnmatch.fnmatchcase(part, p) for part in parts):
            return True
    return False


def populate_workspace(source: Path, workspace: Path, skip: Sequence[Path] = ()) -> int:
    """Copy the regular files of `source` (permission bits kept, `.melangeignore` honoured);
    `skip` holds directories never copied (the output and workspace dirs). Returns the count."""
    patterns = _ignore_patterns(source)
    skipped = {p.resolve() for p in skip}
    count = 0
    for dirpath, dirnames, filenames in os.walk(source):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if (here / d).resolve() not in skipped
                             and not _ignored(str((here / d).relative_to(source)), patterns))
        for name in sorted(filenames):
            src = here / name
            rel = src.relative_to(source)
            if src.is_symlink() or not src.is_file() or _ignored(str(rel), patterns):
                continue
            dst = workspace / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            os.chmod(dst, src.stat().st_mode & 0o7777)
            count += 1
    return count


# --- the environment ------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Environment:
    root: Path
    tree: Tree
    host_toolchain: bool
    users: dict[int, str]


def skeleton_tree(config: ImageConfig) -> Tree:
    """A minimal root for host-toolchain sandboxes: accounts and the usual top dirs."""
    tree = Tree()
    for d in ("etc", "home", "root", "tmp", "var/cache", "proc", "dev", "sys", "run"):
        tree.mkdir_all(d, 0o755)
    tree.write_file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
    tree.write_file("etc/group", b"root:x:0:\n")
    post.accounts(tree, config)
    return tree


def assemble_environment(config: ImageConfig, arch: str, sde: int, dest: Path, *,
                         host_toolchain: bool, keyring: Sequence[str] = (), repositories: Sequence[str] = (),
                         cache_dir: Path | None = None, offline: bool = False,
                         ignore_signatures: bool = False, http_auth: Sequence[BasicAuth] = (),
                         locked: tuple[lockfile.Lock, LockedEnvironment] | None = None) -> Environment:
    """Install the environment's packages with the engine (when there are any; from `locked`'s
    .apk files alone when given) and export the tree to `dest`; otherwise a skeleton. With the
    host toolchain the runner adds the host."""
    loaded = loaded_from(config, arch, sde, keyring=keyring, repositories=repositories)
    if locked is not None:
        lk, env = locked
        # the tree reads file contents from the expansions: they live beside dest, as long as it
        tree = envlock.install(config, arch, sde, env, lk, dest.parent / "env-packages")
    elif loaded.build_repositories() and loaded.world():
        if cache_dir is None:
            raise ConfigError("the build environment needs packages, but no package cache was given (--apk-cache-dir)")
        fetcher = Fetcher(Cache(cache_dir), Transport(auth=list(http_auth)), offline=offline)
        ps = resolve_config(loaded, fetcher, ignore_signatures=ignore_signatures)
        (built,) = build_rootfs(loaded, ps, fetcher, lock_world=False)
        tree = built.rootfs.tree
    else:
        tree = skeleton_tree(config)
    # nested root cannot chown to the packages' ids: the tree is its own (the build user's, read-only)
    export_tree(tree, dest, chown=sandboxnet.privileged())
    users, _groups = _owners(tree)
    return Environment(dest, tree, host_toolchain, users)


def _owners(tree: Tree) -> tuple[dict[int, str], dict[int, str]]:
    def read(path: str) -> str:
        node = tree.get(path, follow=True)
        return node.data().decode("utf-8", "replace") if node is not None and node.type == "reg" else ""
    return id_names(read("etc/passwd")), id_names(read("etc/group"))


# --- the build ------------------------------------------------------------------------

def _log(options: BuildOptions, text: str) -> None:
    options.events.note(text)


def load_for_build(recipe_path: Path, options: BuildOptions) -> s.Recipe:
    vars_overrides = None
    if options.vars_file is not None:
        try:  # the same bounded YAML loader as recipes (alias bombs, size caps)
            data, _ = load_yaml(read_regular(options.vars_file, CONFIG_CAP, "vars file"),
                                str(options.vars_file), scalars="text")
            data = data or {}
        except OSError as exc:
            raise ConfigError(f"{options.vars_file}: {exc.strerror or exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{options.vars_file}: expected a mapping of vars")
        vars_overrides = {str(k): str(v) for k, v in data.items()}
    recipe = load_recipe(recipe_path, commit=options.git_commit, vars_overrides=vars_overrides)
    if options.env_files:
        dotenv: dict[str, str] = {}
        for f in options.env_files:
            try:
                text = read_regular(f, CONFIG_CAP, "env file").decode("utf-8", "replace")
                dotenv.update(parse_dotenv(text, str(f)))
            except OSError as exc:
                raise ConfigError(f"{f}: {exc.strerror or exc}") from None
        recipe = with_env_file(recipe, dotenv)
    return recipe


def build_archs(options: BuildOptions) -> tuple[str, ...]:
    archs = options.archs or (host_architecture(),)
    return tuple(dict.fromkeys(arch_to_apk(parse_architecture(a)) for a in archs))


def deadline_of(options: BuildOptions, compiled: CompiledRecipe) -> float | None:
    """--timeout when non-zero, else the recipe's package.timeout; None when neither is set."""
    seconds = parse_duration(options.timeout or "0", "--timeout")
    if seconds <= 0:
        seconds = parse_duration(compiled.recipe.package.timeout or "0", "package.timeout")
    return time.monotonic() + seconds if seconds > 0 else None


@contextmanager
def _scratch(options: BuildOptions, arch: str) -> Iterator[Path]:
    if not options.cleanup and options.workspace_dir is None:
        kept = Path(tempfile.mkdtemp(prefix="distroless-melange-"))
        _log(options, f"--cleanup=false: keeping the build directory {kept}")
        yield kept
        return
    if options.workspace_dir is not None:
        base = Path(options.workspace_dir) / arch
        if base.exists():
            remove_tree(base)
        base.mkdir(parents=True)
        yield base
        return
    with tempfile.TemporaryDirectory(prefix="distroless-melange-") as tmp:
        try:
            yield Path(tmp)
        finally:
            remove_tree(Path(tmp) / "root")  # modes in the exported tree may deny deletion


def build(recipe_path: str | os.PathLike[str], options: BuildOptions = BuildOptions()) -> list[ArchBuild]:
    """Build every package of the recipe for each requested architecture."""
    recipe_path = Path(recipe_path)
    check_runner(options.runner)
    lint_names(options)  # unknown linter names fail before any work
    recipe = load_for_build(recipe_path, options)
    sde = options.source_date_epoch
    key = apkkeys.load_private(options.signing_key) if options.signing_key else None
    env = options.environment
    locked = (locked_environment(recipe, recipe_path, env, options), env) if env is not None else None
    out: list[ArchBuild] = []
    for arch in build_archs(options):
        try:
            compiled = compile_recipe(recipe, CompileOptions(
                arch=arch, build_options=options.build_options, pipeline_dirs=options.pipeline_dirs,
                include_tests=False, debug=options.debug))
        except ArchSkipped as exc:
            _log(options, f"skipping: {exc}")
            continue
        out.append(build_compiled(compiled, recipe_path, options, sde, key, locked=locked))
    return out


def environment_config(compiled: CompiledRecipe, options: BuildOptions) -> ImageConfig:
    """The compiled `environment` (pipelines' `needs` included) plus --package-append."""
    env_config = compiled.environment
    if options.package_append:
        contents = env_config.contents
        env_config = replace(env_config, contents=replace(
            contents, packages=tuple(dict.fromkeys(contents.packages + tuple(options.package_append)))))
    return env_config


def environment_configs(recipe: s.Recipe, options: BuildOptions, archs: Sequence[str]) -> dict[str, ImageConfig]:
    """Each architecture's environment (apk spelling; archs the recipe skips are left out)."""
    out: dict[str, ImageConfig] = {}
    for arch in archs:
        try:
            compiled = compile_recipe(recipe, CompileOptions(
                arch=arch, build_options=options.build_options, pipeline_dirs=options.pipeline_dirs,
                include_tests=False))
        except ArchSkipped:
            continue
        out[compiled.arch] = environment_config(compiled, options)
    return out


def lock_recipe(recipe_path: str | os.PathLike[str], options: BuildOptions = BuildOptions()) -> lockfile.Lock:
    """`package lock`: resolve the recipe's build environment for each requested architecture
    and pin every package (what a hermetic build installs from, see envlock)."""
    recipe_path = Path(recipe_path)
    recipe = load_for_build(recipe_path, options)
    configs = environment_configs(recipe, options, build_archs(options))
    if not configs:
        raise ConfigError(f"{recipe_path}: the recipe builds for none of {', '.join(build_archs(options))}")
    if options.apk_cache_dir is None:
        raise ConfigError("locking the build environment needs a package cache (--apk-cache-dir)")
    fetcher = Fetcher(Cache(options.apk_cache_dir), Transport(auth=list(options.http_auth)), offline=options.offline)
    return envlock.lock_environment(configs, str(recipe_path), fetcher, sde=options.source_date_epoch,
                                    keyring=options.keyring_append, repositories=options.repository_append,
                                    ignore_signatures=options.ignore_signatures)


def locked_environment(recipe: s.Recipe, recipe_path: Path, env: LockedEnvironment,
                       options: BuildOptions) -> lockfile.Lock:
    """The lock of a hermetic build, checked against the recipe: one architecture, no host
    toolchain, and the environment the lock was resolved from."""
    if options.host_toolchain:
        raise ConfigError(f"{recipe_path}: a locked build environment and the host toolchain exclude each other")
    archs = build_archs(options)
    if len(archs) != 1:
        raise ConfigError(f"{recipe_path}: a build from a locked environment is for one architecture, "
                          f"not {', '.join(archs)}")
    lk = lockfile.load(env.lock)
    configs = environment_configs(recipe, options, lk.archs())
    envlock.check_current(lk, str(env.lock), envlock.environment_checksum(
        configs, options.keyring_append, options.repository_append), str(recipe_path))
    if archs[0] not in lk.archs():
        raise ConfigError(f"{env.lock}: no packages locked for {archs[0]} (locked: {', '.join(lk.archs())})")
    return lk


def build_compiled(compiled: CompiledRecipe, recipe_path: Path, options: BuildOptions, sde: int,
                   key: apkkeys.SigningKey | None, *,
                   locked: tuple[lockfile.Lock, LockedEnvironment] | None = None) -> ArchBuild:
    arch = compiled.arch
    out_dir = Path(options.out_dir) / arch
    out_dir.mkdir(parents=True, exist_ok=True)
    env_config = environment_config(compiled, options)
    host = locked is None and (options.host_toolchain or not env_config.contents.repositories)
    network = recipe_needs_network(compiled) if options.network is None else options.network
    if locked is not None and network:
        raise ConfigError(f"{recipe_path}: the recipe fetches (fetch, git-checkout) or asks for the network, "
                          "but a build from a locked environment has none: fetch its sources ahead of time")
    source = Path(options.source_dir) if options.source_dir else recipe_path.parent
    with _scratch(options, arch) as scratch:
        env = assemble_environment(
            env_config, arch, sde, scratch / "root", host_toolchain=host,
            keyring=options.keyring_append, repositories=options.repository_append,
            cache_dir=options.apk_cache_dir, offline=options.offline,
            ignore_signatures=options.ignore_signatures, http_auth=options.http_auth, locked=locked)
        workspace = scratch / "workspace"
        workspace.mkdir()
        if not options.empty_workspace:
            populate_workspace(source, workspace, skip=(Path(options.out_dir), scratch))
        for pkg in compiled.packages:
            (workspace / OUT_REL / pkg.name).mkdir(parents=True, exist_ok=True)
        mounts = _cache_mount(options)
        spec = SandboxSpec(root=env.root, workspace=workspace,
                           environment=container_environment(env_config, sde), mounts=mounts,
                           host_toolchain=host, network=network, tree=env.tree,
                           shell=host_shell() if host else "/bin/sh", deadline=deadline_of(options, compiled))
        runner = make_runner(options.runner, sink=options.log, docker=options.docker,
                             docker_host=options.docker_host, remove=options.cleanup)
        _log(options, f"building {compiled.main.apk.name}-{compiled.main.apk.version} for {arch} "
                      f"({runner.name}{', host toolchain' if host else ''}{', network' if network else ''})")
        with runner.session(spec) as session:
            run_steps(session, compiled.main.steps, sink=options.log)
            for pkg in compiled.packages[1:]:
                run_steps(session, pkg.steps, sink=options.log)
        trees = [workspace / OUT_REL / p.name for p in compiled.packages]
        recipe_text = compiled.melange_yaml().encode()
        built = [emit(pkg, tree, [t for t in trees if t != tree], out_dir, options, sde, key, env.users, recipe_text)
                 for pkg, tree in zip(compiled.packages, trees)]
    run_linters(options, compiled, built)
    if options.build_log is not None:
        append_build_log(options.build_log, arch, compiled.main.apk.name, built)
    index = write_index(out_dir, [b.package for b in built], key, arch) if options.generate_index else None
    return ArchBuild(arch, tuple(built), index)


def _cache_mount(options: BuildOptions) -> tuple[Mount, ...]:
    cache = options.cache_dir
    if cache is None:
        default = Path("melange-cache")
        cache = default if default.is_dir() else None
    if cache is None:
        return ()
    if not Path(cache).is_dir():
        raise ConfigError(f"--cache-dir {cache}: not a directory")
    return (Mount(Path(cache).resolve(), CACHE_MOUNT, writable=True),)


def emit(pkg: PackageOutput, tree: Path, relatives: Sequence[Path], out_dir: Path, options: BuildOptions,
         sde: int, key: apkkeys.SigningKey | None, users: dict[int, str], recipe_text: bytes) -> BuiltPackage:
    """SCA, then pack one (sub)package with the compiled recipe as `.melange.yaml`, as melange
    does (the same text in every subpackage)."""
    meta = pkg.apk
    sca = analyze(tree, meta.version, relatives=relatives, options=pkg.options, runtime=meta.depends)
    depends, provides = merge_metadata(meta.depends, meta.provides, sca)
    meta = replace(meta, depends=depends, provides=provides, maintainer=options.namespace,
                   replaces=list(meta.replaces), triggers=list(meta.triggers))
    path = out_dir / meta.filename
    built = pack(tree, meta, path, signing_key=key, scripts=dict(pkg.scriptlets), source_date_epoch=sde,
                 ownership=Ownership("keep", users, frozenset({1000, *sandboxnet.host_ids()})), melange_yaml=recipe_text, licenses=pkg.licenses)
    _log(options, f"wrote {path} ({built.size} bytes)")
    return BuiltPackage(pkg.name, path, built.package, built.sha256)


def lint_names(options: BuildOptions) -> tuple[tuple[str, ...], tuple[str, ...]]:
    require = lint.check_names(options.lint_require, "--lint-require") if options.lint_require is not None \
        else lint.default_require()
    warn = lint.check_names(options.lint_warn, "--lint-warn") if options.lint_warn is not None else lint.default_warn()
    return require, tuple(n for n in warn if n not in require)


def run_linters(options: BuildOptions, compiled: CompiledRecipe, built: Sequence[BuiltPackage]) -> None:
    """melange's linters over each written package: warnings are printed; a failed required
    linter removes the packages of this build and fails it."""
    require, warn = lint_names(options)
    failed: list[str] = []
    skipped: set[str] = set()
    for pkg, b in zip(compiled.packages, built):
        target = lint.target_of_apk(b.path)
        result = lint.lint(target, require, warn, disabled=pkg.checks.disabled)
        skipped.update(result.skipped)
        if options.persist_lint_results:
            doc = json.dumps(lint.results_document(target.name, result), indent=2) + "\n"
            atomic_write(b.path.parent / lint.results_filename(target.name, target.version), doc.encode())
        for line in lint.render(str(b.path), result):
            _log(options, line)
        failed += [f"{b.name}: [{f.linter}] {f.message}" for f in result.errors]
    if skipped:
        _log(options, f"lint: not implemented here, skipped: {', '.join(sorted(skipped))}")
    if failed:
        for b in built:
            b.path.unlink(missing_ok=True)
        raise DistrolessError("required linters failed (see --lint-require/--lint-warn, or the package's "
                              "checks.disabled):\n  " + "\n  ".join(failed))


def append_build_log(path: Path, arch: str, origin: str, built: Sequence[BuiltPackage]) -> None:
    """melange's packages.log: one `arch|origin|name|version-rN` line per package, appended."""
    old = path.read_bytes() if path.exists() else b""
    lines = "".join(f"{arch}|{origin}|{b.package.name}|{b.package.version}\n" for b in built)
    atomic_write(path, old + lines.encode())


def write_index(out_dir: Path, new: list[Package], key: apkkeys.SigningKey | None, arch: str) -> Path:
    """Merge into `<out>/<arch>/APKINDEX.tar.gz` (same name and version replaced), signed if keyed."""
    path = out_dir / "APKINDEX.tar.gz"
    old: list[Package] = []
    if path.exists():
        try:
            old = apkindex.read_file(path, verify=False).packages
        except FormatError as exc:
            raise DistrolessError(f"{path}: cannot merge into the existing index: {exc}") from None
    packages = [p for p in apkindex.merge(old, new) if not p.arch or p.arch == arch]
    atomic_write(path, apkindex.build(packages, signing_key=key))
    return path
