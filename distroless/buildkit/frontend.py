"""The BuildKit frontend: an apko image YAML → an LLB graph of the engine's steps.

Graph, per platform:
  A_p  http source of each .apk, pinned by its whole-file sha256 (stable `http.filename`);
  B_p  FileOp based on A_p: unpack the .apk onto scratch (Dockerfile ADD rules extract the
       concatenated gzip tars), then remove the control files (`/.PKGINFO`, `/.SIGN.*`,
       scripts) — one layer, keyed by A_p's pin rather than its bytes (see package_nodes);
  X    ExecOp running this frontend's own image (network none, the YAML + lock at /in, each
       A_p at /apk/NNNN, a tmpfs for scratch, output /out): the engine's `metadata` step
       (`python3 -m distroless.steps metadata`), which verifies and expands the packages and
       writes the metadata layer as a tar, the image settings, the engine's warnings and the SBOM;
  M    FileOp on scratch unpacking X's `metadata.tar`: what the engine's root filesystem has that
       stacking the B_p does not (installed database, world, passwd, apko.json, device nodes,
       ld.so.cache, directory metadata, …);
  root MergeOp(B_1 … B_n, M) when the daemon has `mergeop`, else one FileOp copying the B_p in
       order and unpacking `metadata.tar` last (an unpack makes device nodes; a copy would not).

The frontend reads the YAML, the lock (`<name>.lock.json` beside the YAML) and X's small
`image.json` — never a package: every step runs in BuildKit, cached and exported with
`--cache-to`, and a build found in a cache (local or imported) needs no package at all. Without a
lock it also reads the repositories' indexes (http sources) and resolves.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from distroless import epoch
from distroless import lock as lockfile
from distroless import packages as pkgset
from distroless.apk import index as apkindex
from distroless.apk.keys import Keyring
from distroless.apk.model import Package
from distroless import baseimage
from distroless.config import LoadedConfig, Overrides, load_image_config_bytes
from distroless.errors import ConfigError, DistrolessError
from distroless.events import NULL, Events, Location
from distroless.fetch.repository import Repository, is_remote
from distroless.oci.image import Platform as OciPlatform
from distroless.oci.image import arch_config
from distroless.oci.image import config_json

from . import llb, llbdef, transport
from .contexts import NamedContexts
from .report import frontend_events
from ._pb import gateway

# What the graph cannot do without (buildkit.md §9); MergeOp and attestations are optional.
REQUIRED_LLB_CAPS = ("source.local", "source.http", "source.http.checksum", "source.http.perm", "file.base",
                     "file.rm.wildcard")
READ_CHUNK = 8 << 20  # well under the 16 MiB message limit
CONTROL_FILES = "/.*"  # the signature/control members unpack as top-level dot files
NOTHING = "/.distroless-nothing"  # removed (allow_not_found) to start a FileOp on its base
SPDX_PREDICATE = "https://spdx.dev/Document"
_LOCATED = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): ")


@dataclass(frozen=True, slots=True)
class Request:
    filename: str
    source_key: str
    platforms: tuple[str, ...]  # OCI arch strings (amd64, arm64, arm/v7)
    overrides: Overrides
    no_cache: bool
    sbom: bool
    cache_imports: tuple[tuple[str, dict[str, str]], ...]
    sde: int | None


def parse_request(env: transport.FrontendEnv) -> Request:
    opts = env.opts
    platforms = tuple(p.strip() for p in opts.get("platform", "").split(",") if p.strip())
    archs = tuple(p.split("/", 1)[1] if p.count("/") else p for p in platforms)
    sde = epoch.parse(opts.get("build-arg:SOURCE_DATE_EPOCH"), "build-arg:SOURCE_DATE_EPOCH")
    imports: list[tuple[str, dict[str, str]]] = []
    if opts.get("cache-imports"):
        for entry in json.loads(opts["cache-imports"]):
            imports.append((entry.get("Type", ""), dict(entry.get("Attrs") or {})))
    return Request(
        filename=opts.get("filename", "Dockerfile"), source_key=opts.get("dockerfilekey", "dockerfile"),
        platforms=archs, overrides=Overrides(archs=archs, source_date_epoch=sde),
        no_cache="no-cache" in opts, sbom=sbom_requested(opts),
        cache_imports=tuple(imports), sde=sde,
    )


def sbom_requested(opts: dict[str, str]) -> bool:
    """`attest:sbom` is a CSV of key=value params (buildx sends `disabled=false`)."""
    if "attest:sbom" not in opts:
        return False
    params = dict(p.split("=", 1) for p in opts["attest:sbom"].split(",") if "=" in p)
    return params.get("disabled", "false").lower() != "true"


def located(err: ConfigError, file: llb.SourceFile) -> transport.SourceError:
    m = _LOCATED.match(str(err))
    line = int(m.group("line")) if m else 1
    return transport.SourceError(str(err), llb.SourceLocation.lines(file, line))


class Gateway:
    """Reads through the gateway: solve a state, read a file of the result."""

    def __init__(self, bridge: transport.LLBBridge, req: Request):
        self.bridge = bridge
        self.req = req
        self.spec_digest = ""  # the op that loaded the YAML: BuildKit attaches warnings to it
        self.reads: dict[str, int] = {}  # every file read through the gateway → bytes (the daemon log shows it)
        self._inputs: dict[str, llb.State] | None = None
        self.from_inputs = False  # the build file came as a frontend input (bake's shared session)

    def input(self, key: str) -> llb.State | None:
        """The frontend input `key`: when bake runs several builds in one session, the Dockerfile
        frontend hands the forwarded build its `dockerfile` and `context` this way, and the locals
        of those names may be another target's."""
        if self._inputs is None:
            caps = self.bridge.caps
            defs = self.bridge.inputs() if caps is not None and caps.supports("frontend.inputs") else {}
            self._inputs = {k: llbdef.from_definition(d) for k, d in defs.items()}
        return self._inputs.get(key)

    def solve(self, state: llb.State, *, evaluate: bool = False) -> str:
        return transport.ref_id(self.bridge.solve(state.marshal(), cache_imports=self.req.cache_imports,
                                                  evaluate=evaluate))

    def read_all(self, ref: str, path: str) -> bytes:
        chunks, offset = [], 0
        while True:
            data = self.bridge.read_file(ref, path, offset=offset, length=READ_CHUNK)
            chunks.append(data)
            offset += len(data)
            if len(data) < READ_CHUNK:
                self.reads[path] = self.reads.get(path, 0) + offset
                return b"".join(chunks)

    def fetch(self, url: str, filename: str, checksum: str | None = None) -> bytes:
        state = llb.http(url, checksum=checksum, filename=filename, perm=0o644, name=f"fetch {url}",
                         ignore_cache=self.req.no_cache)
        return self.read_all(self.solve(state), filename)


def read_spec(gw: Gateway, env: transport.FrontendEnv) -> tuple[bytes, bytes | None, llb.SourceFile]:
    req = gw.req
    lock_name = Path(req.filename).stem + ".lock.json"
    src = llb.local(req.source_key, session_id=env.session_id, follow_paths=[req.filename, lock_name],
                    shared_key_hint=req.source_key,
                    custom_name=f"[internal] load build definition from {req.filename}")
    ref = gw.solve(src)
    try:
        data = gw.read_all(ref, req.filename)
    except transport.BridgeError:
        # not in the local of that name: bake shares one session between targets and hands the
        # build file over as a frontend input instead
        alt = gw.input(req.source_key)
        if alt is None:
            raise
        src, gw.from_inputs = alt, True
        ref = gw.solve(src)
        data = gw.read_all(ref, req.filename)
    gw.spec_digest = llbdef.output_of(src.marshal()).digest
    try:
        lock_bytes: bytes | None = gw.read_all(ref, lock_name)
    except transport.BridgeError:
        lock_bytes = None
    return data, lock_bytes, llb.SourceFile(req.filename, data)


def read_context_files(gw: Gateway, env: transport.FrontendEnv, paths: list[str]) -> dict[str, bytes]:
    """Files from the build context (`docker build … CONTEXT`), e.g. keyring files."""
    if not paths:
        return {}
    key = env.opts.get("contextkey", "context")
    ref = gw.solve((gw.from_inputs and gw.input(key)) or llb.local(
        key, session_id=env.session_id, follow_paths=paths, shared_key_hint=key,
        custom_name=f"[internal] load {', '.join(paths)} from the build context"))
    return {p: gw.read_all(ref, p) for p in paths}


def context_repositories(loaded: LoadedConfig, named: NamedContexts) -> dict[str, llb.State]:
    """Repositories written as the name of a named build context (`packages` with
    `--build-context packages=…`): the repository is that context's tree (`<arch>/APKINDEX.tar.gz`)."""
    names = named.names()
    urls = [Repository.parse(r).url for r in loaded.build_repositories()]
    return {u: named.state(u) for u in urls if u in names}


def package_set(gw: Gateway, env: transport.FrontendEnv, loaded: LoadedConfig, lock_bytes: bytes | None,
                lock_name: str, config_name: str, events: Events = NULL,
                contexts: dict[str, llb.State] | None = None) -> pkgset.PackageSet:
    if lock_bytes is not None:
        return pkgset.from_lock(lockfile.loads(lock_bytes.decode(), lock_name), loaded, lock_path=lock_name,
                                config_name=config_name, events=events)
    local = [k for k in loaded.keyring() if not is_remote(k)]
    for k in local:
        if k.startswith("/") or k.startswith("file://"):
            raise DistrolessError(f"keyring {k}: the frontend reads keys from the build context, so give a path "
                                  f"relative to it, a URL, or a lock file ({lock_name})")
    files = read_context_files(gw, env, local)
    keys = []
    for loc in loaded.keyring():
        name = loc.rsplit("/", 1)[-1]
        keys.append((name, loc, files[loc] if loc in files else gw.fetch(loc, name)))

    context_refs: dict[str, str] = {}

    def load_index(repo: Repository, arch: str, ring: Keyring) -> list[Package]:
        url = repo.index_url(arch)
        if contexts and repo.url in contexts:
            if repo.url not in context_refs:
                context_refs[repo.url] = gw.solve(contexts[repo.url])
            data = gw.read_all(context_refs[repo.url], f"{arch}/APKINDEX.tar.gz")
            return apkindex.read(data, url, ring, repository=repo.url, pin=repo.pin).packages
        if not is_remote(url):
            raise DistrolessError(f"repository {repo.url}: the frontend reaches repositories over http(s) only")
        return apkindex.read(gw.fetch(url, "APKINDEX.tar.gz"), url, ring, repository=repo.url, pin=repo.pin).packages

    return pkgset.resolve_packages(loaded, keys, load_index)


@dataclass(frozen=True, slots=True)
class PackageNode:
    pin: pkgset.Pinned
    filename: str
    source: llb.State  # A_p: the download
    state: llb.State   # B_p: its expansion, one layer


def package_source(pin: pkgset.Pinned, filename: str, no_cache: bool,
                   contexts: dict[str, llb.State]) -> llb.State:
    """The download of a package: an http source, or a copy out of a named build context."""
    for name, state in contexts.items():
        if pin.url.startswith(name + "/"):
            return llb.scratch().file(
                llb.copy(state, pin.url[len(name):], f"/{filename}", create_dest_path=True),
                name=f"fetch {pin.url} from build context {name}", ignore_cache=no_cache)
    return llb.http(pin.url, checksum=f"sha256:{pin.sha256}" if pin.sha256 else None, filename=filename,
                    perm=0o644, name=f"fetch {pin.url}", ignore_cache=no_cache)


def package_nodes(pins: list[pkgset.Pinned], no_cache: bool,
                  contexts: dict[str, llb.State] | None = None) -> list[PackageNode]:
    """Each package: its http source (pinned by sha256 when the lock has one) or its copy out of a
    named build context, and its expansion node. Nothing is downloaded or read here."""
    out = []
    for pin in pins:
        p = pin.package
        filename = f"{p.name}-{p.version}.apk"
        source = package_source(pin, filename, no_cache, contexts or {})
        # the download is the FileOp's base, unpacked from there onto scratch: a copy *source*
        # would be keyed by its content, so BuildKit would need the download itself to find the
        # expansion in a cache; keyed by the download's (pinned) key, it never needs the bytes
        state = source.file(
            llb.rm(NOTHING, allow_not_found=True).unpack_previous(f"/{filename}")
            .rm(CONTROL_FILES, allow_wildcard=True, allow_not_found=True),
            name=f"expand {p.name}-{p.version}", ignore_cache=no_cache)
        out.append(PackageNode(pin, filename, source, state))
    return out


def tool_image(env: transport.FrontendEnv) -> tuple[llb.State, llb.Platform]:
    """This frontend's own image, on the daemon's platform: the engine's steps run in it."""
    source = env.opts.get("source", "")
    if not source:
        raise DistrolessError("the frontend was started without a `source` option naming its image")
    default = env.default_platform()
    plat = llb.Platform("linux", default.architecture if default else "amd64", default.variant if default else "")
    return llb.image(source, platform=plat, name="[internal] the distroless engine image"), plat


def step_inputs(tool: llb.State, files: dict[str, bytes]) -> llb.State:
    """Small input files for a step, written on scratch. The FileOp is based on the tool image
    only so that it has an input: BuildKit reports an input-less FileOp as re-run on every build
    even when its result comes from the cache."""
    action = llb.mkdir("/.distroless-inputs", 0o755)
    for name, data in sorted(files.items()):
        action = action.mkfile(f"/.distroless-inputs/{name}", 0o644, data)
    return tool.file(action.copy_previous("/.distroless-inputs", "/"), name="[internal] step inputs")


def metadata_step(tool: llb.State, plat: llb.Platform, nodes: list[PackageNode], inputs: llb.State, *,
                  config_name: str, lock_name: str, archs: tuple[str, ...], arch: str, sde: int | None,
                  no_cache: bool, by_key_only: bool = False, recipe: bool = False) -> llb.State:
    """The engine's `metadata` step as an ExecOp, cached by its inputs (the downloads by their
    pins), so a warm build (or one from `--cache-from`) neither downloads nor expands a package.
    The config is the image YAML at /in/config.yaml, or (`recipe`) the build environment of the
    melange recipe at /in/recipe.yaml with its variables in /in/env.json."""
    args = [sys.executable, "-m", "distroless.steps"]
    if sde is not None:
        args.append(f"--source-date-epoch={sde}")
    config = ["melange-metadata", "--recipe", "/in/recipe.yaml", "--recipe-name", config_name, "--env-json",
              "/in/env.json"] if recipe else ["metadata", "--config", "/in/config.yaml", "--config-name", config_name]
    args += [*config, "--lock", "/in/lock.json",
             "--lock-name", lock_name, "--arch", arch, "--work", "/tmp", "--out", f"/out{meta_dir(arch)}"]
    args += [f"--config-arch={a}" for a in archs]
    # The inputs must key the step by their nodes' own cache keys (the downloads' pins), never by
    # their content: BuildKit keys a read-only mount, and (0.13) a writable one of a whole tree,
    # by its content too, and when a step is not matched at once (two platforms' steps looked up
    # together in an imported cache) it downloads every input to hash it: `by_key_only` turns
    # that off (cap exec.mount.cache.content); older daemons key writable mounts by key anyway.
    off = False if by_key_only else None
    mounts = [llb.Mount("/in", inputs, content_cache=off), llb.Mount("/tmp", kind="tmpfs"), llb.Mount("/out")]
    for i, n in enumerate(nodes):
        mounts.append(llb.Mount(f"/apk/{i:04d}", n.source, content_cache=off))
    if nodes:
        args += ["--apk", *(f"/apk/{i:04d}/{n.filename}" for i, n in enumerate(nodes))]
    env = {"PYTHONPATH": os.environ.get("PYTHONPATH", ""), "PYTHONDONTWRITEBYTECODE": "1", "TMPDIR": "/tmp"}
    what = f"[{arch}] build environment: " if recipe else ""
    run = tool.with_platform(plat).run(args, env=env, mounts=mounts, network="none",
                                       name=f"{what}metadata step: {len(nodes)} packages ({arch})", ignore_cache=no_cache)
    return run.mount("/out")


def meta_dir(arch: str) -> str:
    """Where an arch's step writes (`metadata.tar`, `image.json`, `sbom.spdx.json`) in its output:
    one folder per arch, so that the outputs of all arches merge into one tree (`all_metadata`)."""
    return f"/{arch}"


def metadata_state(meta_out: llb.State, arch: str) -> llb.State:
    """The metadata layer: the step's tar unpacked onto an empty tree (device nodes included).
    The step's output is the FileOp's base, not a copy source: keyed by the step's cache key
    (not the tar's bytes), the layer leads an exported cache to the step's own record."""
    return meta_out.file(llb.rm(NOTHING, allow_not_found=True).unpack_previous(f"{meta_dir(arch)}/metadata.tar"),
                         name="metadata layer: installed database, accounts, generated files")


def all_metadata(meta_outs: dict[str, llb.State], mergeop: bool) -> llb.State:
    """Every arch's step output in one tree: one Solve and one ref from which the frontend reads
    each arch's `image.json` (and hands its SBOM over), instead of a Solve per arch."""
    states = list(meta_outs.values())
    if len(states) == 1:
        return states[0]
    if mergeop:
        return llb.merge(states, name=f"metadata of {len(states)} platforms")
    action = None
    for out in states:  # no MergeOp (dockerd 20.10): a copy of each output (one arch's folder)
        action = (llb.copy if action is None else action.copy)(out, "/", "/", copy_dir_contents=True,
                                                                create_dest_path=True)
    return llb.scratch().file(action, name=f"metadata of {len(states)} platforms")


def root_state(nodes: list[PackageNode], meta_out: llb.State, arch: str, mergeop: bool) -> llb.State:
    if mergeop:
        return llb.merge([n.state for n in nodes] + [metadata_state(meta_out, arch)],
                         name=f"merge {len(nodes)} packages and metadata")
    # dockerd 20.10 / graphdriver stores: no MergeOp, so one FileOp copies every package in order
    # and unpacks the metadata tar last (a copy of an unpacked layer turns device nodes into files)
    action = None
    for n in nodes:
        action = (llb.copy if action is None else action.copy)(n.state, "/", "/", copy_dir_contents=True,
                                                                create_dest_path=True)
    tail = dict(unpack=True, create_dest_path=True)
    tar = f"{meta_dir(arch)}/metadata.tar"
    action = llb.copy(meta_out, tar, "/", **tail) if action is None else action.copy(meta_out, tar, "/", **tail)
    return llb.scratch().file(action, name=f"copy {len(nodes)} packages and metadata into one layer")


def image_config(meta: dict, arch: str, layers: list[str]) -> bytes:
    """The image config from the step's settings, with one explicit history entry per layer:
    BuildKit would otherwise describe layers from its cache records (`imported sha256:…` after a
    `--cache-from`), and an image rebuilt elsewhere would not be byte-identical."""
    from distroless.oci.image import History

    base = arch_config(meta["image"], arch, [])
    created = meta["image"]["created"]
    history = tuple(History(created=created, author="distroless", created_by=f"distroless: {what}",
                            comment="distroless BuildKit frontend") for what in layers)
    return config_json(replace(base, history=history))


def is_recipe(data: bytes) -> bool:
    """A melange recipe has `package:` at the top level (an image YAML never does)."""
    import yaml

    # libyaml's scanner where PyYAML has it: every build file is parsed here and again by its mode's
    # loader, and the pure-Python scanner takes seconds per megabyte
    loader = getattr(yaml, "CBaseLoader", yaml.BaseLoader)
    try:
        doc = yaml.load(data, Loader=loader)  # noqa: S506 — BaseLoader builds only str/list/dict
    except yaml.YAMLError:
        return False  # the image mode reports the YAML error with its line
    return isinstance(doc, dict) and "package" in doc


def account(gw: Gateway, bridge: transport.LLBBridge) -> str:
    """What this run of the frontend cost: its CPU (start-up and imports included) and its
    gateway calls (count, seconds waited), for the daemon's log and bench/."""
    t = os.times()
    calls = {m: [n, round(s, 3)] for m, (n, s) in sorted(getattr(bridge, "calls", {}).items())}
    ages = [getattr(bridge, "started_after", None), transport.process_age()]
    wall = "/".join("?" if a is None else f"{a:.2f}" for a in ages)
    return (f"cpu {t.user + t.system:.2f} s, wall {wall} s (imports/all), "
            f"gateway {json.dumps(calls, separators=(',', ':'))}")


def require_llb_caps(bridge: transport.LLBBridge, caps: tuple[str, ...], what: str, version: str,
                     daemons: str) -> None:
    """Refuse, before anything is solved, a daemon whose BuildKit does not advertise the LLB caps a
    graph needs: BuildKit itself would only say `failed to load LLB: unknown API capability …`
    once the graph is sent. The gateway never tells the daemon's version; its caps are the answer."""
    missing = bridge.caps.missing_llb(caps)
    if missing:
        raise NotImplementedError(f"{what} needs the LLB cap{'s' if len(missing) > 1 else ''} {', '.join(missing)}, "
                                  f"which this daemon's BuildKit lacks: BuildKit {version} or newer ({daemons})")


def platform_id(arch: str) -> str:
    return f"linux/{arch}"


def build(bridge: transport.LLBBridge, env: transport.FrontendEnv) -> gateway.Result:
    if env.opts.get("requestid"):
        return subrequest(env.opts["requestid"])
    require_llb_caps(bridge, REQUIRED_LLB_CAPS, "the distroless frontend", "0.8", "dockerd 20.10+")
    req = parse_request(env)
    # the daemon's log is the only place a frontend can leave notes; option values may be secrets
    print(f"distroless frontend: options {sorted(env.opts)}; sbom={req.sbom}", file=sys.stderr)
    gw = Gateway(bridge, req)
    data, lock_bytes, file = read_spec(gw, env)
    if is_recipe(data):  # a melange recipe: the packages mode
        from . import recipes  # melange's engine is loaded only when it is asked for (~0.2 s of imports)

        return recipes.build(bridge, env, gw, data, file)
    try:
        overrides = req.overrides
        if not overrides.archs:
            default = env.default_platform()
            overrides = Overrides(archs=(default.architecture if default else "amd64",),
                                  source_date_epoch=req.sde)
        loaded = load_image_config_bytes(data, req.filename, overrides)
        baseimage.refuse(loaded, "the BuildKit frontend")
    except ConfigError as e:
        raise located(e, file) from None
    lock_name = Path(req.filename).stem + ".lock.json"
    events = frontend_events(bridge, file, gw.spec_digest, sys.stderr)
    contexts = context_repositories(loaded, NamedContexts(env, gw.input))
    ps = package_set(gw, env, loaded, lock_bytes, lock_name, req.filename, events, contexts)
    mergeop = bridge.caps.supports_llb("mergeop") if bridge.caps else False
    if lock_bytes is None:  # the resolution made here, handed to the step as a lock
        lock_bytes = lockfile.dumps(pkgset.unfetched_lock(loaded, ps, req.filename)).encode()
    tool, plat = tool_image(env)
    inputs = step_inputs(tool, {"config.yaml": data, "lock.json": lock_bytes})

    result = gateway.Result()
    platforms = []
    archs = tuple(loaded.config.archs)
    nodes = {arch: package_nodes(ps.archs[arch], req.no_cache, contexts) for arch in archs}
    by_key = bridge.caps.supports_llb("exec.mount.cache.content") if bridge.caps else False
    meta_outs = {arch: metadata_step(tool, plat, nodes[arch], inputs, config_name=req.filename, lock_name=lock_name,
                                     archs=archs, arch=arch, sde=req.sde, no_cache=req.no_cache, by_key_only=by_key)
                 for arch in archs}
    meta_ref = gw.solve(all_metadata(meta_outs, mergeop))
    for arch in archs:
        pid = platform_id(arch)
        meta = json.loads(gw.read_all(meta_ref, f"{meta_dir(arch)}/image.json"))
        result.refs.refs[pid].id = gw.solve(root_state(nodes[arch], meta_outs[arch], arch, mergeop))
        for w in meta.get("warnings", []):  # the step's, with the YAML lines they point at
            events.warning(w["text"], location=Location(w["file"], w["line"]) if w.get("file") else None)
        layers = [f"{n.pin.package.name}-{n.pin.package.version}" for n in nodes[arch]] if mergeop else \
            [f"{len(nodes[arch])} packages"]
        result.metadata[f"containerimage.config/{pid}"] = image_config(meta, arch, layers + ["metadata layer"])
        if meta["source_date_epoch_pinned"]:
            result.metadata[f"source.date.epoch/{pid}"] = str(meta["image"]["created"]).encode()
        platforms.append({"ID": pid, "Platform": OciPlatform.from_arch(arch).to_json()})
        if req.sbom and bridge.caps and bridge.caps.supports("reference.attestations"):
            att = gateway.Attestation(kind=gateway.InToto, path=f"{meta_dir(arch)}/sbom.spdx.json",
                                      inTotoPredicateType=SPDX_PREDICATE, metadata={"reason": b"sbom"})
            att.ref.id = meta_ref
            result.attestations[pid].attestation.append(att)
    # to the daemon's log: what the frontend read (never a package; tests and bench/ check it)
    events.note(f"session {env.session_id} spec sha256:{hashlib.sha256(data).hexdigest()}: "
                f"read {sum(gw.reads.values())} bytes from "
                f"{json.dumps(gw.reads, sort_keys=True)}")
    events.note(f"session {env.session_id} spec sha256:{hashlib.sha256(data).hexdigest()}: {account(gw, bridge)}")
    result.metadata["refs.platforms"] = json.dumps({"Platforms": platforms}, separators=(",", ":")).encode()
    if len(platforms) == 1:
        # a single platform goes back as a plain ref, which every exporter (dockerd 20.10's too) takes
        pid = platforms[0]["ID"]
        single = gateway.Result(metadata=dict(result.metadata), attestations=dict(result.attestations))
        single.ref.id = result.refs.refs[pid].id
        single.metadata["containerimage.config"] = result.metadata[f"containerimage.config/{pid}"]
        return single
    return result


def subrequest(request_id: str) -> gateway.Result:
    if request_id == "frontend.subrequests.describe":
        desc = [{"name": "frontend.subrequests.describe", "version": "1.0.0", "type": "rpc",
                 "description": "List available subrequest types"}]
        return gateway.Result(metadata={"result.json": json.dumps(desc).encode(), "version": b"1.0.0"})
    raise NotImplementedError(f"unsupported request {request_id!r}")


def main() -> None:
    sys.exit(transport.run(build))


if __name__ == "__main__":
    main()
