"""gRPC client for BuildKit's LLBBridge over the stdin/stdout pipes a frontend is started with.

BuildKit runs the frontend image's entrypoint with its stdin/stdout connected to an HTTP/2
(h2c) gRPC server; stderr goes to the daemon's log. grpcio cannot dial a pair of fds, so
`StdioRelay` listens on a private abstract unix socket, accepts grpcio's single connection and
pumps bytes between it and the pipes. The pipes carry exactly one HTTP/2 session, so the
channel is configured never to reconnect, idle out or ping.

Entry point for a frontend:

    from distroless.buildkit import transport

    def build(bridge: transport.LLBBridge, env: transport.FrontendEnv) -> gateway.Result: ...

    sys.exit(transport.run(build))

`run` claims stdio first (afterwards fd 1 and `sys.stdout` are stderr, so stray prints cannot
corrupt the stream), pings, calls `build`, and always finishes with `Return`: a result, or a
`google.rpc.Status` for any failure (a failed Solve's rich status is forwarded unchanged;
`SourceError` adds the file lines docker/buildx print).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import any_pb2, json_format

from ._pb import errdefs, gateway, ops, stat, status
from .llb import Platform, SourceLocation, range_pb

SERVICE = "moby.buildkit.v1.frontend.LLBBridge"
# BuildKit's server limit; grpcio's default 4 MiB receive limit is too small for ReadFile/Solve.
MAX_MESSAGE_BYTES = 16 << 20
PING_TIMEOUT = 15.0
OPT_PREFIX = "BUILDKIT_FRONTEND_OPT_"
SOURCE_DETAIL_TYPE = "github.com/moby/buildkit/errdefs.Source+json"
STATUS_DETAILS_KEY = "grpc-status-details-bin"
_INT32_MAX = 2**31 - 1

# google.rpc.Code values used here.
CODE_UNKNOWN = 2
CODE_INVALID_ARGUMENT = 3
CODE_UNIMPLEMENTED = 12

# method -> (request type, response type); shared with test servers.
METHODS: dict[str, tuple[type[Any], type[Any]]] = {
    "Solve": (gateway.SolveRequest, gateway.SolveResponse),
    "ReadFile": (gateway.ReadFileRequest, gateway.ReadFileResponse),
    "ReadDir": (gateway.ReadDirRequest, gateway.ReadDirResponse),
    "StatFile": (gateway.StatFileRequest, gateway.StatFileResponse),
    "Evaluate": (gateway.EvaluateRequest, gateway.EvaluateResponse),
    "Ping": (gateway.PingRequest, gateway.PongResponse),
    "Return": (gateway.ReturnRequest, gateway.ReturnResponse),
    "Inputs": (gateway.InputsRequest, gateway.InputsResponse),
    "Warn": (gateway.WarnRequest, gateway.WarnResponse),
}


def method_path(name: str) -> str:
    return f"/{SERVICE}/{name}"


# ---------------------------------------------------------------------------------------------
# Environment


@dataclass(frozen=True)
class FrontendEnv:
    """What BuildKit tells a frontend through environment variables."""

    opts: Mapping[str, str] = field(default_factory=dict)
    session_id: str = ""
    workers: tuple[Mapping[str, Any], ...] = ()
    exported_product: str = ""

    def default_platform(self) -> Platform | None:
        """`BUILDKIT_WORKERS[0].Platforms[0]`: the daemon's build platform, if it says."""
        for worker in self.workers[:1]:
            for p in (worker.get("Platforms") or [])[:1]:
                if p.get("os") and p.get("architecture"):
                    return Platform(p["os"], p["architecture"], p.get("variant", ""))
        return None


def parse_opts(environ: Mapping[str, str]) -> dict[str, str]:
    """`BUILDKIT_FRONTEND_OPT_<n>=key=value` → {key: value}; a value-less entry maps to ""."""
    opts: dict[str, str] = {}
    for name in sorted(environ):  # <n> order is random; sort for reproducible dict order
        if name.startswith(OPT_PREFIX):
            key, _, value = environ[name].partition("=")
            opts[key] = value
    return opts


def parse_env(environ: Mapping[str, str] | None = None) -> FrontendEnv:
    environ = os.environ if environ is None else environ
    try:
        workers = json.loads(environ.get("BUILDKIT_WORKERS") or "[]") or []
    except json.JSONDecodeError:
        workers = []  # only used for the default platform; never fatal
    return FrontendEnv(
        opts=parse_opts(environ),
        session_id=environ.get("BUILDKIT_SESSION_ID", ""),
        workers=tuple(w for w in workers if isinstance(w, dict)),
        exported_product=environ.get("BUILDKIT_EXPORTEDPRODUCT", ""),
    )


# ---------------------------------------------------------------------------------------------
# stdio relay


def take_stdio() -> tuple[int, int]:
    """Claim fds 0 and 1 for the gRPC stream; return private duplicates of them.

    Afterwards fd 0 reads /dev/null and fd 1 and `sys.stdout` write to stderr, so nothing else in
    the process (print, logging, subprocesses) can touch the HTTP/2 byte stream.
    """
    in_fd, out_fd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdout.flush()  # only now: anything buffered so far lands on stderr, not in the stream
    sys.stdout = sys.stderr
    sys.stdin = open(os.devnull)  # noqa: SIM115 - lives as long as the process
    return in_fd, out_fd


def _peer_pid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[0]


class StdioRelay:
    """Relays one unix-socket connection to a (read fd, write fd) pair, both ways.

    Only a connection from this very process is accepted: the abstract socket name is
    visible to the whole network namespace.
    """

    def __init__(self, in_fd: int, out_fd: int) -> None:
        self.in_fd, self.out_fd = in_fd, out_fd
        self.name = f"distroless-buildkit-{os.getpid()}-{secrets.token_hex(8)}"
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind("\0" + self.name)
        self._listener.listen(1)
        self._conn: socket.socket | None = None
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def target(self) -> str:
        return "unix-abstract:" + self.name

    def start(self) -> StdioRelay:
        t = threading.Thread(target=self._accept, name="stdio-relay-accept", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def _accept(self) -> None:
        try:
            while True:
                conn, _ = self._listener.accept()
                if _peer_pid(conn) == os.getpid():
                    break
                conn.close()
        except OSError:
            return  # closed before grpcio connected
        finally:
            self._listener.close()  # a second session can never work: refuse reconnects
        self._conn = conn
        for target, name in ((self._pump_in, "stdio-relay-in"), (self._pump_out, "stdio-relay-out")):
            t = threading.Thread(target=target, args=(conn,), name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def _pump_in(self, conn: socket.socket) -> None:
        """daemon → grpcio"""
        try:
            while chunk := os.read(self.in_fd, 1 << 16):
                conn.sendall(chunk)
        except OSError:
            pass
        finally:
            _shutdown(conn, socket.SHUT_WR)
            os.close(self.in_fd)  # closed by its only reader, never under a blocked read()

    def _pump_out(self, conn: socket.socket) -> None:
        """grpcio → daemon"""
        try:
            while chunk := conn.recv(1 << 16):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(self.out_fd, view):]
        except OSError:
            pass
        finally:
            _shutdown(conn, socket.SHUT_RD)
            os.close(self.out_fd)  # EOF for the daemon

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        _shutdown(self._listener, socket.SHUT_RDWR)  # wakes a pending accept()
        self._threads[0].join(timeout=5)  # the accept thread: after this, _conn is settled
        self._listener.close()
        if self._conn is None:  # never connected: the pumps that own the fds never ran
            os.close(self.in_fd)
            os.close(self.out_fd)
            return
        _shutdown(self._conn, socket.SHUT_RDWR)
        # The daemon→grpcio pump may sit in a pipe read() nothing can interrupt; it is a daemon
        # thread, so only wait for the grpcio→daemon one (it ends once the socket is shut down).
        for t in self._threads[1:]:
            if t.name == "stdio-relay-out":
                t.join(timeout=5)


def _shutdown(sock: socket.socket, how: int) -> None:
    try:
        sock.shutdown(how)
    except OSError:
        pass


def channel_options() -> list[tuple[str, Any]]:
    return [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        # One HTTP/2 session over the pipes: never retry, idle out or keepalive-ping it.
        ("grpc.enable_retries", 0),
        ("grpc.client_idle_timeout_ms", _INT32_MAX),
        ("grpc.keepalive_time_ms", _INT32_MAX),
        ("grpc.default_authority", "localhost"),
    ]


@contextmanager
def connect(in_fd: int, out_fd: int) -> Iterator[LLBBridge]:
    """An LLBBridge client speaking over the given fds (the duplicates `take_stdio` returns)."""
    relay = StdioRelay(in_fd, out_fd).start()
    channel = grpc.insecure_channel(relay.target, options=channel_options())
    try:
        yield LLBBridge(channel)
    finally:
        channel.close()
        relay.close()


# ---------------------------------------------------------------------------------------------
# Errors


class BridgeError(Exception):
    """A gateway RPC failed. `status` is the daemon's google.rpc.Status, details included,
    ready to be forwarded unchanged with `return_error`."""

    def __init__(self, method: str, st: status.Status) -> None:
        super().__init__(st.message or f"{method} failed (code {st.code})")
        self.method = method
        self.status = st


class SourceError(Exception):
    """An error in a build file; BuildKit clients print the lines `location` points at."""

    def __init__(self, message: str, location: SourceLocation) -> None:
        super().__init__(message)
        self.location = location


def status_from_rpc_error(err: grpc.RpcError) -> status.Status:
    """The rich status from the grpc-status-details-bin trailer, else code + message."""
    for key, value in (getattr(err, "trailing_metadata", lambda: None)() or ()):
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            return status.Status.FromString(value)
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = err.details() if hasattr(err, "details") else str(err)
    return status.Status(code=code.value[0], message=details or "")


def source_detail(location: SourceLocation) -> any_pb2.Any:
    """An errdefs.Source detail. BuildKit decodes error details as JSON, not binary protobuf."""
    src = errdefs.Source(
        info=ops.SourceInfo(filename=location.file.filename, data=location.file.data,
                            language=location.file.language),
        ranges=[range_pb(s, e) for s, e in location.ranges])
    doc = json_format.MessageToDict(src, preserving_proto_field_name=True)
    return any_pb2.Any(type_url=SOURCE_DETAIL_TYPE,
                       value=json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())


def source_status(message: str, location: SourceLocation,
                  code: int = CODE_INVALID_ARGUMENT) -> status.Status:
    return status.Status(code=code, message=message, details=[source_detail(location)])


def error_status(exc: BaseException) -> status.Status:
    """The Status to Return for any failure."""
    if isinstance(exc, BridgeError):
        return exc.status
    location = getattr(exc, "location", None)
    if isinstance(location, SourceLocation):
        return source_status(str(exc), location)
    if isinstance(exc, NotImplementedError):
        return status.Status(code=CODE_UNIMPLEMENTED, message=str(exc) or "not implemented")
    return status.Status(code=CODE_UNKNOWN, message=str(exc) or type(exc).__name__)


# ---------------------------------------------------------------------------------------------
# Client


@dataclass(frozen=True)
class Caps:
    """Capabilities from Ping. A cap counts only if listed *and* enabled."""

    frontend: Mapping[str, bool] = field(default_factory=dict)
    llb: Mapping[str, bool] = field(default_factory=dict)
    workers: tuple[Any, ...] = ()

    @classmethod
    def from_pong(cls, pong: gateway.PongResponse) -> Caps:
        return cls({c.ID: c.Enabled for c in pong.FrontendAPICaps},
                   {c.ID: c.Enabled for c in pong.LLBCaps}, tuple(pong.Workers))

    def supports(self, cap: str) -> bool:
        return self.frontend.get(cap, False)

    def supports_llb(self, cap: str) -> bool:
        return self.llb.get(cap, False)

    def missing_llb(self, caps: Iterable[str]) -> list[str]:
        return sorted(c for c in caps if not self.supports_llb(c))


class LLBBridge:
    """Typed LLBBridge calls. Every failed RPC raises BridgeError."""

    def __init__(self, channel: grpc.Channel, *, timeout: float | None = None) -> None:
        self.timeout = timeout
        self.caps = Caps()
        self.calls: dict[str, tuple[int, float]] = {}  # method → (calls, seconds waited): the frontend's account
        self.started_after: float | None = None  # the process's age when it began to serve
        self._calls = {
            name: channel.unary_unary(method_path(name),
                                      request_serializer=lambda m: m.SerializeToString(),
                                      response_deserializer=resp.FromString)
            for name, (_, resp) in METHODS.items()
        }

    def _call(self, method: str, request: Any, timeout: float | None = None) -> Any:
        started = time.perf_counter()
        try:
            return self._calls[method](request, timeout=timeout or self.timeout)
        except grpc.RpcError as err:
            raise BridgeError(method, status_from_rpc_error(err)) from None
        finally:
            n, seconds = self.calls.get(method, (0, 0.0))
            self.calls[method] = (n + 1, seconds + time.perf_counter() - started)

    def ping(self, timeout: float = PING_TIMEOUT) -> Caps:
        self.caps = Caps.from_pong(self._call("Ping", gateway.PingRequest(), timeout))
        return self.caps

    def solve(self, definition: ops.Definition | None = None, *, frontend: str = "",
              frontend_opt: Mapping[str, str] | None = None,
              frontend_inputs: Mapping[str, ops.Definition] | None = None,
              cache_imports: Iterable[tuple[str, Mapping[str, str]]] = (),
              evaluate: bool = False) -> gateway.Result:
        """Solve a Definition (or run another frontend); returns a gateway Result."""
        req = gateway.SolveRequest(
            Frontend=frontend, FrontendOpt=dict(frontend_opt or {}),
            # Always allow Result/Ref messages; otherwise the daemon answers with a bare string ref.
            allowResultReturn=True, allowResultArrayRef=True, Evaluate=evaluate,
            CacheImports=[gateway.CacheOptionsEntry(Type=t, Attrs=dict(a)) for t, a in cache_imports])
        if definition is not None:
            req.Definition.CopyFrom(definition)
        for name, d in (frontend_inputs or {}).items():
            req.FrontendInputs[name].CopyFrom(d)
        return self._call("Solve", req).result

    def read_file(self, ref: str, path: str, *, offset: int | None = None,
                  length: int | None = None) -> bytes:
        req = gateway.ReadFileRequest(Ref=ref, FilePath=path)
        if offset is not None or length is not None:
            req.Range.CopyFrom(gateway.FileRange(Offset=offset or 0, Length=length or 0))
        return self._call("ReadFile", req).Data

    def read_dir(self, ref: str, path: str, include_pattern: str = "") -> list[stat.Stat]:
        req = gateway.ReadDirRequest(Ref=ref, DirPath=path, IncludePattern=include_pattern)
        return list(self._call("ReadDir", req).entries)

    def stat_file(self, ref: str, path: str) -> stat.Stat:
        return self._call("StatFile", gateway.StatFileRequest(Ref=ref, Path=path)).stat

    def inputs(self) -> dict[str, ops.Definition]:
        """Frontend inputs (cap `frontend.inputs`): name → Definition."""
        return dict(self._call("Inputs", gateway.InputsRequest()).Definitions)

    def evaluate(self, ref: str) -> None:
        self._call("Evaluate", gateway.EvaluateRequest(Ref=ref))

    def warn(self, digest: str, short: str, *, level: int = 1, detail: Iterable[str] = (),
             url: str = "", location: SourceLocation | None = None) -> None:
        """Attach a warning to an op (cap `gateway.warnings`, BuildKit 0.10+)."""
        req = gateway.WarnRequest(digest=digest, level=level, short=short.encode(),
                                  detail=[d.encode() for d in detail], url=url)
        if location is not None:
            req.info.CopyFrom(ops.SourceInfo(filename=location.file.filename,
                                             data=location.file.data,
                                             language=location.file.language))
            req.ranges.extend(range_pb(s, e) for s, e in location.ranges)
        self._call("Warn", req)

    def return_result(self, result: gateway.Result) -> None:
        self._call("Return", gateway.ReturnRequest(result=result))

    def return_error(self, st: status.Status) -> None:
        self._call("Return", gateway.ReturnRequest(error=st))


# ---------------------------------------------------------------------------------------------
# Result helpers


def ref_result(ref_id: str, metadata: Mapping[str, bytes] | None = None) -> gateway.Result:
    """A single-platform Result (an empty id is an empty/scratch result)."""
    result = gateway.Result(metadata=dict(metadata or {}))
    result.ref.id = ref_id  # touching .ref selects the Ref arm of the oneof even for ""
    return result


def ref_id(result: gateway.Result) -> str:
    """The ref id of a single-ref Solve result."""
    kind = result.WhichOneof("result")
    if kind == "ref":
        return result.ref.id
    if kind == "refDeprecated":
        return result.refDeprecated
    raise ValueError(f"solve returned a {kind or 'empty'} result, expected a single ref")


# ---------------------------------------------------------------------------------------------
# Frontend main loop

BuildFn = Callable[[LLBBridge, FrontendEnv], gateway.Result]


def serve(bridge: LLBBridge, build: BuildFn, env: FrontendEnv) -> int:
    """Ping, build, Return. Any failure is returned to BuildKit as a Status; the exit code is
    non-zero only when even Return could not be delivered."""
    try:
        bridge.ping()
        result = build(bridge, env)
    except Exception as exc:  # noqa: BLE001 - every failure must reach the user via Return
        traceback.print_exc(file=sys.stderr)  # lands in the daemon log
        try:
            bridge.return_error(error_status(exc))
        except BridgeError as ret_err:
            print(f"frontend: Return failed: {ret_err}", file=sys.stderr)
            return 1
        return 0
    try:
        bridge.return_result(result)
    except BridgeError as ret_err:
        print(f"frontend: Return failed: {ret_err}", file=sys.stderr)
        return 1
    return 0


def process_age() -> float | None:
    """Seconds since this process started (Linux /proc, 10 ms ticks): start-up and imports
    included, which a timer started in Python would miss."""
    try:
        started = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return uptime - started / os.sysconf("SC_CLK_TCK")


def run(build: BuildFn, environ: Mapping[str, str] | None = None) -> int:
    """Run `build` as a BuildKit gateway frontend over this process's stdin/stdout."""
    started_after = process_age()  # interpreter start-up and imports
    env = parse_env(environ)
    in_fd, out_fd = take_stdio()
    with connect(in_fd, out_fd) as bridge:
        bridge.started_after = started_after
        return serve(bridge, build, env)
