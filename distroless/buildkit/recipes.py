"""The frontend's packages mode: a melange recipe (a YAML whose top level has `package:`) → an
LLB graph whose result is a signed APK repository (`<arch>/*.apk` + `<arch>/APKINDEX.tar.gz`).

Graph, per architecture:
  S_i   each pinned source: `fetch` with `expected-sha256` is an http source with that checksum
        (with `expected-sha512`, an http source the step verifies); it is mounted read-only where
        the fetch pipeline looks first (`/var/cache/melange/sha256:<hex>`), so the step's own
        script copies, verifies and extracts it with no network;
  E     the build environment: with `environment.contents.repositories`, the image mode's nodes
        (each package a pinned download and its expansion, the engine's metadata step over the
        recipe's environment, MergeOp where the daemon has it), resolved from the repositories'
        indexes or named build contexts; with none (the CLI's host toolchain) the frontend's own
        image (or DISTROLESS_TOOLCHAIN) with the recipe's accounts over its /etc/passwd and /etc/group;
  W_0   ExecOp in the frontend's image: the build context → the workspace, as `package build`
        copies it (`.melangeignore`, regular files, modes), owned by the build user;
  W_k   one ExecOp per step of the compiled pipeline (after `uses:` expansion and substitution,
        main package first, then each subpackage), on E with W_{k-1} at /home/build, as
        uid 1000, network none: editing step k re-runs steps k… and what follows, nothing before;
  P     the engine's pack stage (SCA, .PKGINFO, three-member APKs, signing, linters) in the
        frontend's image, the signing key a secret mount (never in a layer, a cache key or a log);
  I     the engine's index stage over P, also signed.
The architectures are merged into one tree, which `-o type=local,dest=DIR` writes out.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from distroless import epoch
from distroless.arch import parse as parse_arch, to_apk
from distroless.errors import ConfigError, DistrolessError
from distroless.melange import schema as s
from distroless.melange.build import container_environment, skeleton_tree
from distroless.melange.compile import ArchSkipped, CompiledRecipe
from distroless.melange.pipeline import RunnableStep
from distroless.melange.recipe import BUILD_UID
from distroless.melange.stages import RecipeInput

from . import llb, transport
from ._pb import gateway
from .sources import ALLOW_NETWORK, FETCH_CACHE, Source, pinned_sources, verify_git_sources  # noqa: F401

SIGNING_SECRET = "signing-key"  # `--secret id=signing-key,src=melange.rsa`
SECRET_PATH = "/run/secrets/signing-key"
WORKSPACE = "/home/build"
NAMESPACE = "DISTROLESS_NAMESPACE"  # build arg: the packages' maintainer (`--namespace`)
# build arg: the key's name in `.SIGN.RSA256.<name>.pub` (the CLI takes it from the key's file name;
# BuildKit shows a secret under its id only). melange's default name.
KEY_NAME = "DISTROLESS_SIGNING_KEY_NAME"
DEFAULT_KEY_NAME = "melange.rsa"
# build arg: build unsigned packages. Otherwise the secret is required: BuildKit keeps secrets out
# of cache keys, so an optional one would let an unsigned build's packages answer a signed one.
UNSIGNED = "DISTROLESS_UNSIGNED"
# build arg: the image a recipe without repositories builds on (the CLI's --host-toolchain); default:
# the frontend's own image (Debian + python3, no compiler). `frontend/build.py --toolchain` makes one.
TOOLCHAIN = "DISTROLESS_TOOLCHAIN"
# Every LLB cap the graph below uses (tests/test_buildkit_recipes.py derives them from a full graph);
# MergeOp is optional. `source.local.differ` (BuildKit 0.9) is what dockerd 20.10's BuildKit 0.8
# lacks: without it a context file with a cached copy's size and mtime would keep stale bytes.
REQUIRED_LLB_CAPS = ("constraints", "exec.meta.base", "exec.meta.network", "exec.mount.bind", "exec.mount.secret",
                     "exec.mount.selector", "exec.mount.tmpfs", "file.base", "meta.description", "meta.ignorecache",
                     "platform", "source.http", "source.http.checksum", "source.http.perm", "source.image",
                     "source.local", "source.local.differ", "source.local.sessionid", "source.local.sharedkeyhint")
GIT_LLB_CAPS = ("source.git", "source.git.fullurl", "source.git.keepgitdir")  # a recipe with git-checkout
# build args that are ours or BuildKit's; every other one is an `--env-file`-style variable
RESERVED_ARGS = frozenset({epoch.NAME, ALLOW_NETWORK, NAMESPACE, KEY_NAME, UNSIGNED, TOOLCHAIN})
HOST_SHELL = "/bin/bash"  # the CLI's host-toolchain shell (recipes use `set -o pipefail`)
ENV_SHELL = "/bin/sh"  # the CLI's shell in an environment built from packages
ENV_ETC = "/env/etc"  # the environment's /etc in the pack step: its passwd and group name the owners


@dataclass(frozen=True, slots=True)
class Request:
    filename: str
    archs: tuple[str, ...]  # apk spelling, from --platform; empty: the recipe's, else the daemon's
    sde: int
    env_file: Mapping[str, str]
    allow_network: bool
    namespace: str
    key_name: str  # "" when unsigned
    toolchain: str  # image reference; "" = the frontend's own image
    no_cache: bool


def parse_request(opts: Mapping[str, str]) -> Request:
    platforms = [p.strip() for p in opts.get("platform", "").split(",") if p.strip()]
    archs = tuple(dict.fromkeys(to_apk(parse_arch(p.split("/", 1)[1] if "/" in p else p)) for p in platforms))
    sde = epoch.parse_or(opts.get("build-arg:SOURCE_DATE_EPOCH"), 0, "build-arg:SOURCE_DATE_EPOCH")
    args = {k[len("build-arg:"):]: v for k, v in opts.items() if k.startswith("build-arg:")}
    env_file = {k: v for k, v in sorted(args.items()) if k not in RESERVED_ARGS and not k.startswith("BUILDKIT_")}
    allow, unsigned = _flag(args, ALLOW_NETWORK), _flag(args, UNSIGNED)
    return Request(filename=opts.get("filename", "Dockerfile"), archs=archs, sde=sde, env_file=env_file,
                   allow_network=allow, namespace=args.get(NAMESPACE, "unknown") or "unknown",
                   key_name="" if unsigned else (args.get(KEY_NAME) or DEFAULT_KEY_NAME),
                   toolchain=args.get(TOOLCHAIN, "").strip(), no_cache="no-cache" in opts)


def _flag(args: Mapping[str, str], name: str) -> bool:
    value = args.get(name, "").strip().lower()
    if value not in ("", "0", "1", "false", "true"):
        raise DistrolessError(f"build-arg:{name}={value!r}: expected true or false")
    return value in ("1", "true")


def target_archs(req: Request, recipe: s.Recipe, default: str) -> tuple[str, ...]:
    """--platform, else the recipe's target-architecture (unless `all`), else the daemon's."""
    if req.archs:
        return req.archs
    targets = [t for t in recipe.package.target_architecture if t != "all"]
    if targets:
        return tuple(dict.fromkeys(to_apk(parse_arch(t)) for t in targets))
    return (to_apk(parse_arch(default)),)


# --- the graph -------------------------------------------------------------------------------

def step_name(arch: str, pkg: str, step: RunnableStep) -> str:
    return f"[{arch}] {pkg}: {' > '.join(step.chain + (step.name,))}"


def host_environment(tool: llb.State, compiled: CompiledRecipe, toolchain: str = "") -> llb.State:
    """The host-toolchain environment: the toolchain image (else the frontend's) with the recipe's
    accounts (the CLI's sandbox root has only the skeleton's passwd/group over the host's dirs)."""
    if toolchain:
        tool = llb.image(toolchain, platform=tool.platform, name=f"[internal] toolchain {toolchain}")
    tree = skeleton_tree(compiled.environment)
    action = None
    for path in ("etc/passwd", "etc/group"):
        data = tree.get(path).data()
        action = (llb.mkfile if action is None else action.mkfile)(f"/{path}", 0o644, data)
    what = f"toolchain {toolchain}" if toolchain else "the frontend's image"
    return tool.file(action, name=f"[{compiled.arch}] build environment: {what} (host toolchain)")


@dataclass(frozen=True, slots=True)
class BuildEnvironment:
    root: llb.State
    shell: str
    packages: bool  # built from packages (its /etc names the packages' owners), not the host toolchain


def package_environment(gw, env: transport.FrontendEnv, tool: llb.State, recipe_in: RecipeInput, arch: str,
                        req: Request, mergeop: bool, events) -> llb.State:
    """The build environment from `environment.contents`: the image mode's own nodes over the
    recipe's environment (what `package build` installs), resolved here from the repositories'
    indexes (http sources, or named build contexts: a repository a bake target built)."""
    from distroless import lock as lockfile
    from distroless import packages as pkgset

    from .contexts import NamedContexts
    from .frontend import context_repositories, metadata_step, package_nodes, package_set, root_state, step_inputs

    loaded = recipe_in.environment(arch, req.sde)
    contexts = context_repositories(loaded, NamedContexts(env, gw.input))
    lock_name = f"{req.filename} (environment, {arch})"
    ps = package_set(gw, env, loaded, None, lock_name, req.filename, events, contexts)
    (oci_arch,) = loaded.config.archs
    lock = lockfile.dumps(pkgset.unfetched_lock(loaded, ps, req.filename)).encode()
    inputs = step_inputs(tool, {"recipe.yaml": recipe_in.text, "lock.json": lock,
                                "env.json": json.dumps(dict(req.env_file), sort_keys=True).encode()})
    nodes = package_nodes(ps.archs[oci_arch], req.no_cache, contexts)
    by_key = gw.bridge.caps.supports_llb("exec.mount.cache.content") if gw.bridge.caps else False
    meta = metadata_step(tool, tool.platform, nodes, inputs, config_name=req.filename, lock_name=lock_name,
                         archs=(), arch=arch, sde=req.sde, no_cache=req.no_cache, by_key_only=by_key, recipe=True)
    return root_state(nodes, meta, arch, mergeop)


def workspace_state(tool: llb.State, context: llb.State, compiled: CompiledRecipe, no_cache: bool) -> llb.State:
    args = [sys.executable, "-m", "distroless.steps", "melange-workspace", "--source", "/src", "--out", "/ws"]
    for pkg in compiled.packages:
        args += ["--package", pkg.name]
    run = tool.run(args, env=_python_env(), mounts=[llb.Mount("/src", context, readonly=True), llb.Mount("/ws"),
                                                     llb.Mount("/tmp", kind="tmpfs")],
                   network="none", ignore_cache=no_cache,
                   name=f"[{compiled.arch}] workspace from the build context")
    return run.mount("/ws")


def _python_env() -> dict[str, str]:
    return {"PYTHONPATH": os.environ.get("PYTHONPATH", ""), "PYTHONDONTWRITEBYTECODE": "1", "TMPDIR": "/tmp"}


def run_steps(environment: BuildEnvironment, ws: llb.State, compiled: CompiledRecipe, sources: list[Source], *,
              sde: int, network: bool, no_cache: bool) -> llb.State:
    """Each step one ExecOp on the previous step's workspace, as the bubblewrap runner runs it:
    uid/gid 1000, cwd /home/build, the container environment plus the step's, a fresh /tmp, the
    same shell. (The root is writable here — the LLB builder has no read-only root — where
    bubblewrap binds it read-only: a step writing outside the workspace fails only in the CLI.)"""
    container = container_environment(compiled.environment, sde)
    for pkg in compiled.packages:
        for step in pkg.steps:
            mounts = [llb.Mount(WORKSPACE, ws), llb.Mount("/tmp", kind="tmpfs")]
            mounts += [llb.Mount(f"{FETCH_CACHE}/{src.cache_name}", src.state, selector=src.selector, readonly=True)
                       for src in sources if src.digest in step.script]
            run = environment.root.run([environment.shell, "-c", step.script],
                                       env=sorted_env({**container, **step.environment}),
                               cwd=WORKSPACE, user=f"{BUILD_UID}:{BUILD_UID}", mounts=mounts,
                               network="sandbox" if network else "none",
                               ignore_cache=no_cache, name=step_name(compiled.arch, pkg.name, step))
            ws = run.mount(WORKSPACE)
    return ws


def sorted_env(env: Mapping[str, str]) -> list[str]:
    """In bubblewrap's order (the runner sets variables sorted by name)."""
    return [f"{k}={v}" for k, v in sorted(env.items())]


KEY_ID_STEP = "[internal] signing key: the sha256 of its public half"


def key_id_state(tool: llb.State) -> llb.State:
    """Runs on every build (a few milliseconds): its output, the public key's digest, is mounted
    read-only into the signing stages, and BuildKit keys read-only mounts by content — so a new key
    re-runs pack and index, the same key finds them cached."""
    args = [sys.executable, "-m", "distroless.steps", "key-id", "--key", SECRET_PATH, "--out", "/out/key.id"]
    run = tool.run(args, env=_python_env(), mounts=[llb.Mount("/out"), llb.Mount("/tmp", kind="tmpfs"),
                                                     llb.Mount(SECRET_PATH, kind="secret", secret_id=SIGNING_SECRET)],
                   network="none", ignore_cache=True, name=KEY_ID_STEP)
    return run.mount("/out")


def signing(req: Request, key_id: llb.State | None) -> tuple[list[str], list[llb.Mount]]:
    """The stage's key arguments and mounts: the secret and the key's id (none when unsigned)."""
    if not req.key_name or key_id is None:
        return [], []
    return (["--signing-key", SECRET_PATH, "--key-name", req.key_name],
            [llb.Mount(SECRET_PATH, kind="secret", secret_id=SIGNING_SECRET),
             llb.Mount("/key", key_id, readonly=True)])


def pack_state(tool: llb.State, inputs: llb.State, ws: llb.State, compiled: CompiledRecipe, req: Request,
               key_id: llb.State | None, environment: BuildEnvironment) -> llb.State:
    args = [sys.executable, "-m", "distroless.steps", f"--source-date-epoch={req.sde}", "melange-pack",
            "--recipe", "/in/recipe.yaml", "--recipe-name", req.filename, "--env-json", "/in/env.json",
            "--arch", compiled.arch, "--workspace", "/ws", "--out", "/out", "--namespace", req.namespace]
    key_args, secret = signing(req, key_id)
    env_etc = []
    if environment.packages:  # the owners' names come from the environment's accounts, as in the CLI
        args += ["--env-root", os.path.dirname(ENV_ETC)]
        env_etc = [llb.Mount(ENV_ETC, environment.root, selector="/etc", readonly=True)]
    run = tool.run(args + key_args, env=_python_env(), mounts=[
        llb.Mount("/in", inputs, readonly=True), llb.Mount("/ws", ws, readonly=True), llb.Mount("/out"),
        llb.Mount("/tmp", kind="tmpfs"), *env_etc, *secret], network="none", ignore_cache=req.no_cache,
        name=f"[{compiled.arch}] pack {', '.join(p.name for p in compiled.packages)}")
    return run.mount("/out")


def index_state(tool: llb.State, packed: llb.State, arch: str, req: Request, key_id: llb.State | None) -> llb.State:
    args = [sys.executable, "-m", "distroless.steps", "melange-index", "--dir", f"/out/{arch}", "--arch", arch]
    key_args, secret = signing(req, key_id)
    run = tool.run(args + key_args, env=_python_env(),
                   mounts=[llb.Mount("/out", packed), llb.Mount("/tmp", kind="tmpfs"), *secret],
                   network="none", ignore_cache=req.no_cache, name=f"[{arch}] index")
    return run.mount("/out")


def repository_state(per_arch: list[llb.State], mergeop: bool) -> llb.State:
    if len(per_arch) == 1:
        return per_arch[0]
    if mergeop:
        return llb.merge(per_arch, name=f"repository: {len(per_arch)} architectures")
    action = None
    for st in per_arch:
        action = (llb.copy if action is None else action.copy)(st, "/", "/", copy_dir_contents=True,
                                                                create_dest_path=True)
    return llb.scratch().file(action, name=f"repository: {len(per_arch)} architectures")


def context_source(key: str, session_id: str | None) -> llb.State:
    # differ=none: sources with the same size and mtime as a cached copy are sent anyway (fsutil's
    # metadata check would keep stale bytes, and then build packages from them)
    return llb.local(key, session_id=session_id, shared_key_hint=key, differ="none",
                     custom_name="[internal] load the recipe's sources from the build context")


def build(bridge: transport.LLBBridge, env: transport.FrontendEnv, gw, data: bytes,
          file: llb.SourceFile) -> gateway.Result:
    """The packages mode's whole build (the image mode's `Gateway` reads through the bridge)."""
    from distroless.melange.build import recipe_needs_network

    from .frontend import located, require_llb_caps, step_inputs, tool_image
    from .report import frontend_events

    require_llb_caps(bridge, REQUIRED_LLB_CAPS, f"{gw.req.filename}: the packages mode", "0.9",
                     "dockerd 23+ or a docker-container buildx builder; dockerd 20.10's BuildKit 0.8 builds images only")
    req = parse_request(env.opts)
    recipe_in = RecipeInput(data, req.filename, req.env_file)
    try:
        recipe = recipe_in.recipe()
    except ConfigError as e:
        raise located(e, file) from None
    default = env.default_platform()
    tool, _plat = tool_image(env)
    inputs = step_inputs(tool, {"recipe.yaml": data,
                                "env.json": json.dumps(dict(req.env_file), sort_keys=True).encode()})
    key = env.opts.get("contextkey", "context")
    context = (gw.from_inputs and gw.input(key)) or context_source(key, env.session_id)
    key_id = key_id_state(tool) if req.key_name else None
    mergeop = bridge.caps.supports_llb("mergeop") if bridge.caps else False
    events = frontend_events(bridge, file, gw.spec_digest, sys.stderr)
    per_arch = []
    for arch in target_archs(req, recipe, default.architecture if default else "amd64"):
        try:
            compiled = recipe_in.compile(arch)
        except ArchSkipped as e:
            print(f"distroless frontend: skipping {arch}: {e}", file=sys.stderr)
            continue
        except ConfigError as e:
            raise located(e, file) from None
        sources = pinned_sources(compiled, req.filename, req.allow_network, req.no_cache)
        if any(s.git for s in sources):
            require_llb_caps(bridge, GIT_LLB_CAPS, f"{gw.req.filename}: git-checkout", "0.9", "dockerd 23+")
        verify_git_sources(gw, sources, req.filename)
        if compiled.environment.contents.repositories:
            environment = BuildEnvironment(package_environment(gw, env, tool, recipe_in, compiled.arch, req, mergeop,
                                                               events), ENV_SHELL, packages=True)
        else:
            environment = BuildEnvironment(host_environment(tool, compiled, req.toolchain), HOST_SHELL, packages=False)
        ws = workspace_state(tool, context, compiled, req.no_cache)
        ws = run_steps(environment, ws, compiled, sources, sde=req.sde,
                       network=req.allow_network and recipe_needs_network(compiled), no_cache=req.no_cache)
        packed = pack_state(tool, inputs, ws, compiled, req, key_id, environment)
        per_arch.append(index_state(tool, packed, compiled.arch, req, key_id))
    if not per_arch:
        raise DistrolessError(f"{req.filename}: {recipe.package.name} builds for none of the requested architectures")
    result = gateway.Result()
    result.ref.id = gw.solve(repository_state(per_arch, mergeop))
    return result
