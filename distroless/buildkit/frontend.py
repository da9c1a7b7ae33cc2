"""The BuildKit frontend: an apko image YAML → an LLB graph with one cached node per package.

Graph, per platform:
  A_p  http source of each .apk, pinned by its whole-file sha256 (stable `http.filename`);
  B_p  FileOp on scratch: copy A_p with unpack (Dockerfile ADD rules extract the concatenated
       gzip tars), then remove the control files (`/.PKGINFO`, `/.SIGN.*`, scripts) — one layer;
  M    the metadata layer: what the engine's root filesystem has that stacking the B_p does not
       (installed database, world, passwd, apko.json, device nodes, directory metadata, …),
       written as a tar by MkFile and unpacked onto scratch;
  root MergeOp(B_1 … B_n, M) when the daemon has `mergeop`, else one FileOp copying them in order.

The metadata is computed here, in the frontend, with the engine's own install code. That needs
each package's file list, so the frontend reads every .apk once per build through ReadFile (from
BuildKit's cache — no network) and verifies it exactly as the CLI does. This was chosen over a
tool ExecOp running this image because it needs no exec sandbox, no self-image resolution and no
`frontend.bin` (absent on dockerd 20.10's BuildKit), and keeps all cached vertices identical.
With `<name>.lock.json` beside the YAML, every package is pinned from it and nothing is resolved;
otherwise indexes are fetched as http sources and resolved here.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from distroless import epoch
from distroless import lock as lockfile
from distroless import overlay
from distroless import packages as pkgset
from distroless.apk import index as apkindex
from distroless.apk.keys import Keyring
from distroless.apk.model import Package
from distroless import baseimage
from distroless.config import LoadedConfig, Overrides, load_image_config_bytes
from distroless.errors import ConfigError, DistrolessError
from distroless.events import NULL, Events
from distroless.store.expand import Expanded, expand
from distroless.store.cache import Cache
from distroless.fetch.repository import Repository, is_remote
from distroless.oci.image import Platform as OciPlatform
from distroless.oci.image import config_json
from distroless.imagebuild import arch_config, image_settings, os_info
from distroless.rootfs.assemble import Rootfs
from distroless.assembly import assemble_arch
from distroless.rootfs.layer import iter_tar, owner_names
from distroless.sbom import spdx

from . import llb, transport
from .report import frontend_events
from ._pb import gateway

# What the graph cannot do without (buildkit.md §9); MergeOp and attestations are optional.
REQUIRED_LLB_CAPS = ("source.local", "source.http", "source.http.checksum", "source.http.perm", "file.base",
                     "file.rm.wildcard")
READ_CHUNK = 8 << 20  # well under the 16 MiB message limit
CONTROL_FILES = "/.*"  # the signature/control members unpack as top-level dot files
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

    def solve(self, state: llb.State) -> str:
        return transport.ref_id(self.bridge.solve(state.marshal(), cache_imports=self.req.cache_imports))

    def read_all(self, ref: str, path: str) -> bytes:
        chunks, offset = [], 0
        while True:
            data = self.bridge.read_file(ref, path, offset=offset, length=READ_CHUNK)
            chunks.append(data)
            offset += len(data)
            if len(data) < READ_CHUNK:
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
    gw.spec_digest = llb.output_of(src.marshal()).digest
    data = gw.read_all(ref, req.filename)
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
    ref = gw.solve(llb.local(key, session_id=env.session_id, follow_paths=paths, shared_key_hint=key,
                             custom_name=f"[internal] load {', '.join(paths)} from the build context"))
    return {p: gw.read_all(ref, p) for p in paths}


def package_set(gw: Gateway, env: transport.FrontendEnv, loaded: LoadedConfig, lock_bytes: bytes | None,
                lock_name: str, events: Events = NULL) -> pkgset.PackageSet:
    if lock_bytes is not None:
        return pkgset.from_lock(lockfile.loads(lock_bytes.decode(), lock_name), loaded, lock_path=lock_name,
                                events=events)
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

    def load_index(repo: Repository, arch: str, ring: Keyring) -> list[Package]:
        url = repo.index_url(arch)
        if not is_remote(url):
            raise DistrolessError(f"repository {repo.url}: the frontend reaches repositories over http(s) only")
        return apkindex.read(gw.fetch(url, "APKINDEX.tar.gz"), url, ring, repository=repo.url, pin=repo.pin).packages

    return pkgset.resolve_packages(loaded, keys, load_index)


@dataclass(slots=True)
class PackageNode:
    pin: pkgset.Pinned
    sha256: str
    expanded: Expanded
    state: llb.State


def package_nodes(gw: Gateway, pins: list[pkgset.Pinned], cache: Cache) -> list[PackageNode]:
    nc = gw.req.no_cache
    """Each package: the pinned http source, its expansion node, and its verified metadata."""
    out = []
    for pin in pins:
        p = pin.package
        filename = f"{p.name}-{p.version}.apk"
        data = gw.fetch(pin.url, filename, f"sha256:{pin.sha256}" if pin.sha256 else None)
        sha256 = hashlib.sha256(data).hexdigest()
        with tempfile.NamedTemporaryFile(dir=cache.root / "tmp", suffix=".apk") as f:
            f.write(data)
            f.flush()
            exp = expand(Path(f.name), cache, expected_checksum=p.checksum or None,
                         expected_sha256=pin.sha256 or None)
        source = llb.http(pin.url, checksum=f"sha256:{sha256}", filename=filename, perm=0o644,
                          name=f"fetch {pin.url}", ignore_cache=nc)
        state = llb.scratch().file(
            llb.copy(source, f"/{filename}", "/", unpack=True, create_dest_path=True)
            .rm(CONTROL_FILES, allow_wildcard=True, allow_not_found=True),
            name=f"expand {p.name}-{p.version}", ignore_cache=nc)
        out.append(PackageNode(pin, sha256, exp, state))
    return out


def metadata_state(tar: bytes, anchor: llb.State) -> llb.State:
    """The metadata tar written and unpacked onto an empty tree in one FileOp. The op is based
    on `anchor` (a package node) only so that it has an input: BuildKit reports an input-less
    FileOp as re-run on every build even when its result comes from the cache."""
    return anchor.file(llb.mkfile("/.distroless-metadata.tar", 0o644, tar).unpack_previous("/.distroless-metadata.tar"),
                       name="metadata layer: installed database, accounts, generated files")


def root_state(nodes: list[PackageNode], meta: llb.State, mergeop: bool) -> llb.State:
    layers = [n.state for n in nodes] + [meta]
    if mergeop:
        return llb.merge(layers, name=f"merge {len(nodes)} packages and metadata")
    # dockerd 20.10 / graphdriver stores: no MergeOp, so one FileOp copies every layer in order
    action = None
    for layer in layers:
        step = llb.copy(layer, "/", "/", copy_dir_contents=True, create_dest_path=True)
        action = step if action is None else action.copy(layer, "/", "/", copy_dir_contents=True,
                                                         create_dest_path=True)
    assert action is not None
    return llb.scratch().file(action, name=f"copy {len(nodes)} packages and metadata into one layer")


def platform_id(arch: str) -> str:
    return f"linux/{arch}"


def build(bridge: transport.LLBBridge, env: transport.FrontendEnv) -> gateway.Result:
    if env.opts.get("requestid"):
        return subrequest(env.opts["requestid"])
    missing = bridge.caps.missing_llb(REQUIRED_LLB_CAPS)
    if missing:
        raise NotImplementedError(f"this BuildKit lacks {', '.join(missing)}; the distroless frontend needs "
                                  f"BuildKit 0.8 or newer (dockerd 20.10+)")
    req = parse_request(env)
    # the daemon's log is the only place a frontend can leave notes; option values may be secrets
    print(f"distroless frontend: options {sorted(env.opts)}; sbom={req.sbom}", file=sys.stderr)
    gw = Gateway(bridge, req)
    data, lock_bytes, file = read_spec(gw, env)
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
    ps = package_set(gw, env, loaded, lock_bytes, lock_name, events)
    mergeop = bridge.caps.supports_llb("mergeop") if bridge.caps else False
    cache = Cache(tempfile.mkdtemp(prefix="distroless-frontend-"))

    result = gateway.Result()
    platforms = []
    for arch in loaded.config.archs:
        nodes = package_nodes(gw, ps.archs[arch], cache)
        arch_fs = assemble_arch(loaded, ps, arch, [n.expanded for n in nodes], events=events)
        tree = arch_fs.rootfs.tree
        users, groups = owner_names(tree)
        tar = b"".join(iter_tar(overlay.metadata_entries(tree, arch_fs.expanded), users, groups))
        root = root_state(nodes, metadata_state(tar, nodes[0].state if nodes else llb.scratch()), mergeop)
        pid = platform_id(arch)
        result.refs.refs[pid].id = gw.solve(root)
        # BuildKit's exporter fills in rootfs and history: the config carries no diff_ids
        config = arch_config(image_settings(arch_fs.rootfs.config, arch_fs.bde), arch, [])
        result.metadata[f"containerimage.config/{pid}"] = config_json(config)
        if loaded.source_date_epoch_pinned:
            result.metadata[f"source.date.epoch/{pid}"] = str(arch_fs.bde).encode()
        platforms.append({"ID": pid, "Platform": OciPlatform.from_arch(arch).to_json()})
        if req.sbom and bridge.caps and bridge.caps.supports("reference.attestations"):
            attach_sbom(gw, result, pid, arch, arch_fs.rootfs, arch_fs.bde)
    result.metadata["refs.platforms"] = json.dumps({"Platforms": platforms}, separators=(",", ":")).encode()
    if len(platforms) == 1:
        # a single platform goes back as a plain ref, which every exporter (dockerd 20.10's too) takes
        pid = platforms[0]["ID"]
        single = gateway.Result(metadata=dict(result.metadata), attestations=dict(result.attestations))
        single.ref.id = result.refs.refs[pid].id
        single.metadata["containerimage.config"] = result.metadata[f"containerimage.config/{pid}"]
        return single
    return result


def attach_sbom(gw: Gateway, result: gateway.Result, pid: str, arch: str, rootfs: Rootfs, bde: int) -> None:
    """Our SPDX document as an in-toto attestation, so BuildKit does not run its own scanner.
    BuildKit makes the image manifest the subject, so the document names no digest of its own."""
    pkgs = [r.package for r in rootfs.installer.installed]
    doc = json.dumps(spdx.packages_document(pkgs, os_info(rootfs.tree), arch, bde), indent=2).encode()
    state = llb.scratch().file(llb.mkfile("/sbom.spdx.json", 0o644, doc), name="SBOM (SPDX 2.3)")
    att = gateway.Attestation(kind=gateway.InToto, path="/sbom.spdx.json", inTotoPredicateType=SPDX_PREDICATE,
                              metadata={"reason": b"sbom"})
    att.ref.id = gw.solve(state)
    result.attestations[pid].attestation.append(att)


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
