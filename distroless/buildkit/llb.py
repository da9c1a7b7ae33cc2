"""LLB graph builder: immutable `State`s that marshal to a deterministic `pb.Definition`.

Modelled on the State API of BuildKit's Go client (sources, `file`, `run`, `merge`):

    base = llb.http(url, checksum="sha256:…", filename="foo.apk")
    pkg = llb.scratch().file(
        llb.copy(base, "/foo.apk", "/", unpack=True).rm("/.PKGINFO", allow_not_found=True))
    root = llb.merge([pkg, meta], name="rootfs")
    definition = llb.marshal(root)

Each op is serialized exactly once with deterministic protobuf encoding; its digest is the
sha256 of those bytes and every reference to it uses that same string. `def` is emitted in
post-order (inputs before users, no duplicates) and ends with the body-less terminal op whose
single input is the result — the same graph always yields the same bytes (cache dedup).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from ._pb import ops as pb

# solver/pb const.go: -1 is "scratch" as an input index and "no output" as an output index.
EMPTY_INPUT = -1
SKIP_OUTPUT = -1
# FileOp sentinels: -1 = keep the source mode / leave the timestamp unset (proto3 default 0 would
# chmod 0000 / stamp 1970).
UNSET = -1
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CUSTOM_NAME = "llb.customname"


# ---------------------------------------------------------------------------------------------
# Small value types


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    @classmethod
    def parse(cls, spec: str) -> Platform:
        """`linux/amd64`, `linux/arm/v7` (OCI platform string)."""
        parts = spec.strip().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"invalid platform {spec!r}: want os/arch[/variant]")
        return cls(*parts)

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    def to_pb(self) -> pb.Platform:
        return pb.Platform(OS=self.os, Architecture=self.architecture, Variant=self.variant)


@dataclass(frozen=True)
class SourceFile:
    """A build file ops (and errors) can point into, so BuildKit prints its lines."""

    filename: str
    data: bytes
    language: str = "YAML"


@dataclass(frozen=True)
class SourceLocation:
    """1-based inclusive line ranges `(start, end)` in a SourceFile."""

    file: SourceFile
    ranges: tuple[tuple[int, int], ...]

    @classmethod
    def lines(cls, file: SourceFile, start: int, end: int | None = None) -> SourceLocation:
        return cls(file, ((start, start if end is None else end),))


def range_pb(start: int, end: int) -> pb.Range:
    return pb.Range(start=pb.Position(line=start), end=pb.Position(line=end))


@dataclass(frozen=True)
class OpMeta:
    """Per-op metadata: progress label, cache bypass, source location."""

    name: str | None = None
    ignore_cache: bool = False
    location: SourceLocation | None = None


# ---------------------------------------------------------------------------------------------
# Graph nodes


@dataclass(frozen=True, eq=False)
class Vertex:
    """One op. `body` is complete except `inputs`, whose digests are only known at marshal time."""

    body: pb.Op
    inputs: tuple[Output, ...]
    caps: frozenset[str]
    meta: OpMeta = OpMeta()
    # Exec ops and image sources carry a platform (the default one if none was asked for).
    wants_platform: bool = False
    platform: Platform | None = None


@dataclass(frozen=True, eq=False)
class Output:
    vertex: Vertex
    index: int = 0


@dataclass(frozen=True)
class State:
    """An immutable filesystem state; `output is None` is scratch (empty)."""

    output: Output | None = None
    platform: Platform | None = None

    def with_platform(self, platform: Platform | str | None) -> State:
        return replace(self, platform=_platform(platform))

    def file(self, action: FileAction, *, name: str | None = None, ignore_cache: bool = False,
             location: SourceLocation | None = None) -> State:
        """Apply a chain of file actions (one FileOp, one layer) to this state."""
        vertex = _file_vertex(self, action, OpMeta(name, ignore_cache, location))
        return State(Output(vertex), self.platform)

    def run(self, args: Sequence[str], *, env: Mapping[str, str] | Sequence[str] = (), cwd: str = "/",
            user: str = "", mounts: Sequence[Mount] = (), network: NetworkMode = "none",
            hostname: str = "", valid_exit_codes: Sequence[int] = (), name: str | None = None,
            ignore_cache: bool = False, location: SourceLocation | None = None) -> ExecState:
        """Run a command with this state as `/` (ExecOp). Network defaults to none."""
        meta = OpMeta(name, ignore_cache, location)
        return _exec(self, args, _env_list(env), cwd, user, mounts, network, hostname,
                     tuple(valid_exit_codes), meta)

    def marshal(self, platform: Platform | str | None = None) -> pb.Definition:
        return marshal(self, platform=platform)


def scratch() -> State:
    return State()


# ---------------------------------------------------------------------------------------------
# Sources


def _source(identifier: str, attrs: Mapping[str, str], caps: Iterable[str], meta: OpMeta, *,
            wants_platform: bool = False, platform: Platform | None = None) -> State:
    body = pb.Op(source=pb.SourceOp(identifier=identifier, attrs=dict(attrs)))
    vertex = Vertex(body, (), frozenset(caps), meta, wants_platform, platform)
    return State(Output(vertex), platform)


def _json_list(items: Iterable[str]) -> str:
    # Canonical spelling so equal inputs give equal op bytes.
    return json.dumps(list(items), separators=(",", ":"))


def normalize_image_ref(ref: str) -> str:
    """Docker-style normalization: `alpine` → `docker.io/library/alpine:latest`."""
    name, digest = (ref.split("@", 1) + [""])[:2]
    first, _, rest = name.partition("/")
    if not rest or not ("." in first or ":" in first or first == "localhost"):
        name = "docker.io/" + (name if rest else "library/" + name)
    if not digest and ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name + ("@" + digest if digest else "")


def image(ref: str, *, platform: Platform | str | None = None, resolve_mode: str | None = None,
          name: str | None = None, ignore_cache: bool = False,
          location: SourceLocation | None = None) -> State:
    attrs = {"image.resolvemode": resolve_mode} if resolve_mode else {}
    caps = {"source.image"} | ({"source.image.resolvemode"} if resolve_mode else set())
    return _source("docker-image://" + normalize_image_ref(ref), attrs, caps,
                   OpMeta(name, ignore_cache, location), wants_platform=True,
                   platform=_platform(platform))


def git(url: str, ref: str = "", *, keep_git_dir: bool = False, name: str | None = None,
        ignore_cache: bool = False, location: SourceLocation | None = None) -> State:
    """A git checkout of `url` at `ref` (a branch, a tag, or a full commit id: then the cache key
    needs no network). The id is `git://host/path#ref` for every protocol, the URL itself an attr
    (as the Go client spells them)."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https", "git", "ssh") or not parsed.hostname:
        raise ValueError(f"git source {url!r}: expected an http(s), git or ssh URL")
    identifier = "git://" + parsed.netloc.rsplit("@", 1)[-1] + posixpath.join("/", parsed.path)
    if ref:
        identifier += "#" + ref
    attrs = {"git.fullurl": url}
    caps = {"source.git", "source.git.fullurl"}
    if keep_git_dir:
        attrs["git.keepgitdir"] = "true"
        caps.add("source.git.keepgitdir")
    return _source(identifier, attrs, caps, OpMeta(name, ignore_cache, location))


def local(name: str, *, session_id: str | None = None, include_patterns: Sequence[str] = (),
          exclude_patterns: Sequence[str] = (), follow_paths: Sequence[str] = (),
          shared_key_hint: str | None = None, differ: str | None = None, unique: str | None = None,
          custom_name: str | None = None, ignore_cache: bool = False,
          location: SourceLocation | None = None) -> State:
    """Files from the client's session (`--local NAME=dir`, buildx's `context`/`dockerfile`)."""
    attrs: dict[str, str] = {}
    caps = {"source.local"}
    # Attribute spellings (singular includepattern, plural excludepatterns) are BuildKit's.
    for value, key, cap in (
        (session_id, "local.session", "source.local.sessionid"),
        (_json_list(include_patterns) if include_patterns else None, "local.includepattern",
         "source.local.includepatterns"),
        (_json_list(exclude_patterns) if exclude_patterns else None, "local.excludepatterns",
         "source.local.excludepatterns"),
        (_json_list(follow_paths) if follow_paths else None, "local.followpaths",
         "source.local.followpaths"),
        (shared_key_hint, "local.sharedkeyhint", "source.local.sharedkeyhint"),
        (differ, "local.differ", "source.local.differ"),
        (unique, "local.unique", "source.local.unique"),
    ):
        if value:
            attrs[key] = value
            caps.add(cap)
    return _source("local://" + name, attrs, caps, OpMeta(custom_name, ignore_cache, location))


def http(url: str, *, checksum: str | None = None, filename: str | None = None,
         perm: int | None = None, uid: int | None = None, gid: int | None = None,
         name: str | None = None, ignore_cache: bool = False,
         location: SourceLocation | None = None) -> State:
    """Download one file into a directory. A `sha256:` checksum makes the cache key network-free."""
    if checksum is not None and not checksum.startswith("sha256:"):
        # BuildKit hashes downloads with sha256 only; any other algorithm can never match.
        raise ValueError(f"http checksum must be sha256:<hex>, got {checksum!r}")
    attrs: dict[str, str] = {}
    caps = {"source.http"}
    if checksum:
        attrs["http.checksum"] = checksum
        caps.add("source.http.checksum")
    if filename:
        attrs["http.filename"] = filename
    if perm is not None:
        attrs["http.perm"] = "0%o" % perm  # parsed with base auto-detect; default would be 0600
        caps.add("source.http.perm")
    if uid is not None:
        attrs["http.uid"] = str(uid)
    if gid is not None:
        attrs["http.gid"] = str(gid)
    if uid is not None or gid is not None:
        caps.add("soruce.http.uidgid")  # sic: the real cap id has this typo
    return _source(url, attrs, caps, OpMeta(name, ignore_cache, location))


# ---------------------------------------------------------------------------------------------
# FileOp


Owner = tuple[int, int]


def _chown(owner: Owner | None) -> pb.ChownOpt | None:
    if owner is None:
        return None  # keep source ownership
    uid, gid = owner
    return pb.ChownOpt(user=pb.UserOpt(byID=uid), group=pb.UserOpt(byID=gid))


def _timestamp(mtime: int | None) -> int:
    return UNSET if mtime is None else mtime * 1_000_000_000


@dataclass(frozen=True)
class _Step:
    kind: Literal["copy", "mkfile", "mkdir", "rm", "symlink"]
    action: pb.FileActionCopy | pb.FileActionMkFile | pb.FileActionMkDir | pb.FileActionRm \
        | pb.FileActionSymlink
    caps: frozenset[str] = frozenset()
    source: State | None = None  # copy only
    from_previous: bool = False  # copy from the previous action's result (not an op input)
    onto_scratch: bool = False  # apply to an empty tree instead of the previous result


@dataclass(frozen=True)
class FileAction:
    """A chain of file actions; each step applies to the result of the previous one."""

    steps: tuple[_Step, ...] = ()

    def _then(self, step: _Step) -> FileAction:
        return FileAction(self.steps + (step,))

    def mkdir(self, path: str, mode: int = 0o755, *, make_parents: bool = False,
              owner: Owner | None = None, mtime: int | None = None) -> FileAction:
        return self._then(_Step("mkdir", pb.FileActionMkDir(
            path=path, mode=mode, makeParents=make_parents, owner=_chown(owner),
            timestamp=_timestamp(mtime))))

    def mkfile(self, path: str, mode: int, data: bytes, *, owner: Owner | None = None,
               mtime: int | None = None) -> FileAction:
        return self._then(_Step("mkfile", pb.FileActionMkFile(
            path=path, mode=mode, data=data, owner=_chown(owner), timestamp=_timestamp(mtime))))

    def rm(self, path: str, *, allow_not_found: bool = False,
           allow_wildcard: bool = False) -> FileAction:
        caps = frozenset({"file.rm.wildcard"} if allow_wildcard else ())
        return self._then(_Step("rm", pb.FileActionRm(
            path=path, allowNotFound=allow_not_found, allowWildcard=allow_wildcard), caps))

    def symlink(self, target: str, link: str, *, owner: Owner | None = None,
                mtime: int | None = None) -> FileAction:
        return self._then(_Step("symlink", pb.FileActionSymlink(
            oldpath=target, newpath=link, owner=_chown(owner), timestamp=_timestamp(mtime)),
            frozenset({"file.symlink.create"})))

    def copy(self, source: State, src: str, dest: str, *, mode: int | None = None,
             follow_symlinks: bool = False, copy_dir_contents: bool = False, unpack: bool = False,
             create_dest_path: bool = False, allow_wildcard: bool = False,
             allow_empty_wildcard: bool = False, include_patterns: Sequence[str] = (),
             exclude_patterns: Sequence[str] = (), always_replace_existing: bool = False,
             owner: Owner | None = None, mtime: int | None = None) -> FileAction:
        """Copy `src` of `source` to `dest`; `unpack` extracts archives (Dockerfile ADD rules)."""
        caps: set[str] = set()
        if include_patterns or exclude_patterns:
            caps.add("file.copy.includeexcludepatterns")
        if always_replace_existing:
            caps.add("file.copy.alwaysreplaceexistingdestpaths")
        action = pb.FileActionCopy(
            src=src, dest=dest, owner=_chown(owner), mode=UNSET if mode is None else mode,
            followSymlink=follow_symlinks, dirCopyContents=copy_dir_contents,
            attemptUnpackDockerCompatibility=unpack, createDestPath=create_dest_path,
            allowWildcard=allow_wildcard, allowEmptyWildcard=allow_empty_wildcard,
            timestamp=_timestamp(mtime), include_patterns=list(include_patterns),
            exclude_patterns=list(exclude_patterns),
            alwaysReplaceExistingDestPaths=always_replace_existing)
        return self._then(_Step("copy", action, frozenset(caps), source))

    def copy_previous(self, src: str, dest: str = "/") -> FileAction:
        """Copy the contents of directory `src` of the previous action's result onto an empty tree
        — files made and moved to scratch in one FileOp (one cached vertex, one layer)."""
        action = pb.FileActionCopy(src=src, dest=dest, mode=UNSET, dirCopyContents=True, createDestPath=True,
                                   timestamp=_timestamp(None))
        return self._then(_Step("copy", action, frozenset(), None, from_previous=True, onto_scratch=True))

    def unpack_previous(self, src: str, dest: str = "/") -> FileAction:
        """Extract the archive the previous action made at `src` onto an empty tree — a file
        written and unpacked in one FileOp (one cached vertex, one layer)."""
        action = pb.FileActionCopy(src=src, dest=dest, mode=UNSET, attemptUnpackDockerCompatibility=True,
                                   createDestPath=True, timestamp=_timestamp(None))
        return self._then(_Step("copy", action, frozenset(), None, from_previous=True, onto_scratch=True))


def mkdir(path: str, mode: int = 0o755, **kw: object) -> FileAction:
    return FileAction().mkdir(path, mode, **kw)  # type: ignore[arg-type]


def mkfile(path: str, mode: int, data: bytes, **kw: object) -> FileAction:
    return FileAction().mkfile(path, mode, data, **kw)  # type: ignore[arg-type]


def rm(path: str, **kw: bool) -> FileAction:
    return FileAction().rm(path, **kw)


def symlink(target: str, link: str, **kw: object) -> FileAction:
    return FileAction().symlink(target, link, **kw)  # type: ignore[arg-type]


def copy(source: State, src: str, dest: str, **kw: object) -> FileAction:
    return FileAction().copy(source, src, dest, **kw)  # type: ignore[arg-type]


class _Inputs:
    """Op inputs in order of first use; scratch maps to -1 and is never an input."""

    def __init__(self, dedupe: bool = True) -> None:
        self.outputs: list[Output] = []
        self._dedupe = dedupe

    def index(self, state: State | None) -> int:
        if state is None or state.output is None:
            return EMPTY_INPUT
        if self._dedupe:
            for i, out in enumerate(self.outputs):
                if out.vertex is state.output.vertex and out.index == state.output.index:
                    return i
        self.outputs.append(state.output)
        return len(self.outputs) - 1


def _file_vertex(base: State, action: FileAction, meta: OpMeta) -> Vertex:
    if not action.steps:
        raise ValueError("file(): empty action chain")
    inputs = _Inputs()
    base_index = inputs.index(base)
    secondary = [inputs.index(s.source) if s.kind == "copy" and not s.from_previous else EMPTY_INPUT
                 for s in action.steps]
    # Action k's result is addressed as len(inputs)+k; only the last action is published.
    n, last = len(inputs.outputs), len(action.steps) - 1
    actions = []
    for k, step in enumerate(action.steps):
        if step.from_previous:
            if k == 0:
                raise ValueError("file(): copy from the previous action needs a previous action")
            secondary[k] = n + k - 1
        base_in = base_index if k == 0 else n + k - 1
        fa = pb.FileAction(input=EMPTY_INPUT if step.onto_scratch else base_in, secondaryInput=secondary[k],
                           output=0 if k == last else SKIP_OUTPUT)
        getattr(fa, step.kind).CopyFrom(step.action)
        actions.append(fa)
    caps = frozenset({"file.base"}).union(*(s.caps for s in action.steps))
    return Vertex(pb.Op(file=pb.FileOp(actions=actions)), tuple(inputs.outputs), caps, meta)


# ---------------------------------------------------------------------------------------------
# Merge / diff


def merge(states: Sequence[State], *, name: str | None = None, ignore_cache: bool = False,
          location: SourceLocation | None = None) -> State:
    """Layer states in order (later wins). Needs the `mergeop` LLB cap (not on Docker 20.10)."""
    real = [s for s in states if s.output is not None]
    if not real:
        return scratch()
    if len(real) == 1:
        return real[0]
    inputs = _Inputs(dedupe=False)  # one op input per merge input, order is layer order
    merge_inputs = [pb.MergeInput(input=inputs.index(s)) for s in real]
    vertex = Vertex(pb.Op(merge=pb.MergeOp(inputs=merge_inputs)), tuple(inputs.outputs),
                    frozenset({"mergeop"}), OpMeta(name, ignore_cache, location))
    platform = next((s.platform for s in real if s.platform), None)
    return State(Output(vertex), platform)


def diff(lower: State, upper: State, *, name: str | None = None, ignore_cache: bool = False,
         location: SourceLocation | None = None) -> State:
    """The changes from lower to upper. Needs the `diffop` LLB cap."""
    inputs = _Inputs()
    body = pb.Op(diff=pb.DiffOp(lower=pb.LowerDiffInput(input=inputs.index(lower)),
                                upper=pb.UpperDiffInput(input=inputs.index(upper))))
    vertex = Vertex(body, tuple(inputs.outputs), frozenset({"diffop"}),
                    OpMeta(name, ignore_cache, location))
    return State(Output(vertex), upper.platform or lower.platform)


# ---------------------------------------------------------------------------------------------
# ExecOp

NetworkMode = Literal["sandbox", "host", "none"]
_NET = {"sandbox": pb.UNSET, "host": pb.HOST, "none": pb.NONE}
_SHARING = {"shared": pb.SHARED, "private": pb.PRIVATE, "locked": pb.LOCKED}


@dataclass(frozen=True)
class Mount:
    """An extra mount for `State.run`. `source=None` mounts scratch."""

    dest: str
    source: State | None = None
    selector: str = ""
    readonly: bool = False
    kind: Literal["bind", "cache", "tmpfs", "secret"] = "bind"
    cache_id: str = ""
    secret_id: str = ""  # a secret mount: the client's `--secret id=…`, never part of a cache key
    secret_mode: int = 0o400
    optional: bool = False  # a secret the client may not have given
    sharing: Literal["shared", "private", "locked"] = "shared"
    tmpfs_size: int = 0
    # May the input's content key the op? None leaves it to BuildKit (which hashes a whole-tree
    # writable bind's content, BuildKit 0.13); False keys it by the input's own cache key only.
    content_cache: bool | None = None


@dataclass(frozen=True)
class ExecState:
    """The outputs of a run: the new root and every writable bind mount."""

    root: State
    mounts: Mapping[str, State] = field(default_factory=dict)

    def mount(self, dest: str) -> State:
        return self.mounts[dest]


def _env_list(env: Mapping[str, str] | Sequence[str]) -> tuple[str, ...]:
    items = [f"{k}={v}" for k, v in env.items()] if isinstance(env, Mapping) else list(env)
    if not any(e.startswith("PATH=") for e in items):
        items.append("PATH=" + DEFAULT_PATH)  # tools are looked up on PATH, like Go's default
    return tuple(items)


def _mount_pb(m: Mount, inputs: _Inputs, output: int) -> tuple[pb.Mount, set[str]]:
    caps: set[str] = set()
    mount = pb.Mount(dest=m.dest, selector=m.selector, readonly=m.readonly, output=output,
                     input=EMPTY_INPUT if m.kind in ("tmpfs", "secret") else inputs.index(m.source))
    if m.selector:
        caps.add("exec.mount.selector")
    if m.content_cache is not None:
        mount.contentCache = pb.ON if m.content_cache else pb.OFF
        caps.add("exec.mount.cache.content")
    if m.kind == "bind":
        caps.add("exec.mount.bind")
    elif m.kind == "secret":
        mount.mountType = pb.SECRET
        mount.secretOpt.CopyFrom(pb.SecretOpt(ID=m.secret_id, uid=0, gid=0, mode=m.secret_mode,
                                              optional=m.optional))
        caps.add("exec.mount.secret")
    elif m.kind == "cache":
        mount.mountType = pb.CACHE
        mount.cacheOpt.CopyFrom(pb.CacheOpt(ID=m.cache_id or m.dest, sharing=_SHARING[m.sharing]))
        caps.add("exec.mount.cache")
    else:
        mount.mountType = pb.TMPFS
        caps.add("exec.mount.tmpfs")
        if m.tmpfs_size:
            mount.TmpfsOpt.CopyFrom(pb.TmpfsOpt(size=m.tmpfs_size))
            caps.add("exec.mount.tmpfs.size")
    return mount, caps


def _exec(root: State, args: Sequence[str], env: tuple[str, ...], cwd: str, user: str,
          mounts: Sequence[Mount], network: NetworkMode, hostname: str,
          valid_exit_codes: tuple[int, ...], meta: OpMeta) -> ExecState:
    if not args:
        raise ValueError("run(): args must not be empty")
    if any(m.dest == "/" for m in mounts):
        raise ValueError("run(): the state itself is mounted at /")
    # BuildKit validates one mount at "/"; sort by dest like the Go client so output order is stable.
    all_mounts = sorted([Mount("/", root), *mounts], key=lambda m: m.dest)
    inputs = _Inputs()
    pb_mounts: list[pb.Mount] = []
    caps = {"exec.meta.base"}
    writable: list[str] = []
    for m in all_mounts:
        out = SKIP_OUTPUT
        if m.kind == "bind" and not m.readonly:
            out = len(writable)
            writable.append(m.dest)
        mount, mount_caps = _mount_pb(m, inputs, out)
        pb_mounts.append(mount)
        caps |= mount_caps
    if network != "sandbox":
        caps.add("exec.meta.network")
    if valid_exit_codes:
        caps.add("exec.validexitcode")
    body = pb.Op(exec=pb.ExecOp(
        meta=pb.Meta(args=list(args), env=list(env), cwd=cwd, user=user, hostname=hostname,
                     validExitCodes=list(valid_exit_codes)),
        mounts=pb_mounts, network=_NET[network]))
    vertex = Vertex(body, tuple(inputs.outputs), frozenset(caps), meta, wants_platform=True,
                    platform=root.platform)
    outputs = {dest: State(Output(vertex, i), root.platform) for i, dest in enumerate(writable)}
    return ExecState(outputs["/"], {d: s for d, s in outputs.items() if d != "/"})


# ---------------------------------------------------------------------------------------------
# Marshaling


def _platform(platform: Platform | str | None) -> Platform | None:
    return Platform.parse(platform) if isinstance(platform, str) else platform


def op_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _metadata(meta: OpMeta, caps: Iterable[str]) -> pb.OpMetadata:
    md = pb.OpMetadata(ignore_cache=meta.ignore_cache)
    all_caps = set(caps)
    if meta.name:
        md.description[CUSTOM_NAME] = meta.name
        all_caps.add("meta.description")
    if meta.ignore_cache:
        all_caps.add("meta.ignorecache")
    for cap in sorted(all_caps):
        md.caps[cap] = True
    return md


def _post_order(root: Vertex) -> list[Vertex]:
    """Vertices reachable from root, every input before its users (iterative: chains can be long)."""
    order: list[Vertex] = []
    seen: set[int] = set()
    stack: list[tuple[Vertex, bool]] = [(root, False)]
    while stack:
        vertex, expanded = stack.pop()
        if expanded:
            order.append(vertex)
            continue
        if id(vertex) in seen:
            continue
        seen.add(id(vertex))
        stack.append((vertex, True))
        stack.extend((o.vertex, False) for o in reversed(vertex.inputs))
    return order


class _Marshaler:
    def __init__(self, default_platform: Platform | None) -> None:
        self.default_platform = default_platform
        self.definition = pb.Definition()
        self.digests: dict[int, str] = {}
        self._infos: dict[SourceFile, int] = {}
        self.meta_caps: set[str] = set()

    def add(self, vertex: Vertex) -> str:
        op = pb.Op()
        op.CopyFrom(vertex.body)
        for out in vertex.inputs:
            op.inputs.append(pb.Input(digest=self.digests[id(out.vertex)], index=out.index))
        platform = vertex.platform or self.default_platform
        if vertex.wants_platform and platform is not None:
            op.platform.CopyFrom(platform.to_pb())
        data = op.SerializeToString(deterministic=True)
        digest = op_digest(data)
        self.digests[id(vertex)] = digest
        if digest in self.definition.metadata:
            return digest  # an identical op built twice is one vertex
        getattr(self.definition, "def").append(data)  # `def` is a Python keyword
        md = _metadata(vertex.meta, vertex.caps)
        self.meta_caps |= {c for c in md.caps if c.startswith("meta.")}
        self.definition.metadata[digest].CopyFrom(md)
        if vertex.meta.location is not None:
            self._locate(digest, vertex.meta.location)
        return digest

    def _locate(self, digest: str, loc: SourceLocation) -> None:
        source = self.definition.Source
        if loc.file not in self._infos:
            self._infos[loc.file] = len(source.infos)
            source.infos.append(pb.SourceInfo(filename=loc.file.filename, data=loc.file.data,
                                              language=loc.file.language))
        source.locations[digest].locations.append(pb.Location(
            sourceIndex=self._infos[loc.file], ranges=[range_pb(s, e) for s, e in loc.ranges]))

    def terminal(self, out: Output) -> None:
        op = pb.Op(inputs=[pb.Input(digest=self.digests[id(out.vertex)], index=out.index)])
        data = op.SerializeToString(deterministic=True)
        getattr(self.definition, "def").append(data)
        md = pb.OpMetadata()
        # Like the Go client: the terminal op announces constraints/platform and any meta.* used.
        for cap in sorted({"constraints", "platform"} | self.meta_caps):
            md.caps[cap] = True
        self.definition.metadata[op_digest(data)].CopyFrom(md)


def marshal(state: State, *, platform: Platform | str | None = None) -> pb.Definition:
    """Serialize the graph ending at `state`. Scratch gives an empty Definition (empty result).

    `platform` is used for exec ops and image sources that did not ask for one.
    """
    if state.output is None:
        return pb.Definition()
    m = _Marshaler(_platform(platform) or state.platform)
    for vertex in _post_order(state.output.vertex):
        m.add(vertex)
    m.terminal(state.output)
    return m.definition
