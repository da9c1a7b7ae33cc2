"""A minimal Remote Execution worker over BuildGrid's Remote Workers API (bots) and CAS.

Each lease's action runs in a fresh directory holding exactly its input root, with exactly the
command's environment, under bubblewrap: the whole filesystem read-only, `/tmp` and every
`--hide` path (the client's home and checkout) replaced by empty tmpfs, no network. So an action
that names a client path, or reads anything it did not declare from the checkout, fails here.

    python -I tests/remote/worker.py --server 127.0.0.1:PORT --instance main --bot-id w0 \
        --work DIR [--hide /root --hide /home ...]

Runs under BuildGrid's own interpreter (its generated protos); standard library otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import grpc
from buildgrid._protos.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2
from buildgrid._protos.build.bazel.remote.execution.v2 import remote_execution_pb2_grpc as re_grpc
from buildgrid._protos.google.bytestream import bytestream_pb2, bytestream_pb2_grpc
from buildgrid._protos.google.devtools.remoteworkers.v1test2 import bots_pb2, bots_pb2_grpc
from buildgrid._protos.google.rpc import code_pb2

BATCH = 1 << 20  # blobs above this go through ByteStream; batches stay under gRPC's 4 MiB
CHUNK = 1 << 20


def digest_of(data: bytes) -> re_pb2.Digest:
    return re_pb2.Digest(hash=hashlib.sha256(data).hexdigest(), size_bytes=len(data))


class Cas:
    def __init__(self, channel: grpc.Channel, instance: str):
        self.instance = instance
        self.cas = re_grpc.ContentAddressableStorageStub(channel)
        self.bs = bytestream_pb2_grpc.ByteStreamStub(channel)

    def read_many(self, digests: list[re_pb2.Digest]) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        small, batch, size = [], [], 0
        for d in {d.hash: d for d in digests}.values():
            if d.size_bytes == 0:
                out[d.hash] = b""
            elif d.size_bytes > BATCH:
                out[d.hash] = self._read_stream(d)
            else:
                if size + d.size_bytes > 3 * BATCH:
                    small.append(batch)
                    batch, size = [], 0
                batch.append(d)
                size += d.size_bytes
        if batch:
            small.append(batch)
        for b in small:
            resp = self.cas.BatchReadBlobs(re_pb2.BatchReadBlobsRequest(instance_name=self.instance, digests=b))
            for r in resp.responses:
                if r.status.code != code_pb2.OK:
                    raise RuntimeError(f"CAS read {r.digest.hash}: {r.status.message}")
                out[r.digest.hash] = r.data
        for d in digests:
            if hashlib.sha256(out[d.hash]).hexdigest() != d.hash:
                raise RuntimeError(f"CAS returned wrong bytes for {d.hash}")
        return out

    def _read_stream(self, d: re_pb2.Digest) -> bytes:
        name = f"{self.instance}/blobs/{d.hash}/{d.size_bytes}"
        return b"".join(r.data for r in self.bs.Read(bytestream_pb2.ReadRequest(resource_name=name)))

    def write_many(self, blobs: dict[str, tuple[re_pb2.Digest, bytes]]) -> None:
        if not blobs:
            return
        missing = self.cas.FindMissingBlobs(re_pb2.FindMissingBlobsRequest(
            instance_name=self.instance, blob_digests=[d for d, _ in blobs.values()])).missing_blob_digests
        batch, size = [], 0
        for d in missing:
            data = blobs[d.hash][1]
            if d.size_bytes > BATCH:
                self._write_stream(d, data)
                continue
            if size + d.size_bytes > 3 * BATCH:
                self._batch_update(batch)
                batch, size = [], 0
            batch.append(re_pb2.BatchUpdateBlobsRequest.Request(digest=d, data=data))
            size += d.size_bytes
        if batch:
            self._batch_update(batch)

    def _batch_update(self, requests: list) -> None:
        resp = self.cas.BatchUpdateBlobs(re_pb2.BatchUpdateBlobsRequest(instance_name=self.instance, requests=requests))
        bad = [r for r in resp.responses if r.status.code != code_pb2.OK]
        if bad:
            raise RuntimeError(f"CAS write failed: {bad[0].status.message}")

    def _write_stream(self, d: re_pb2.Digest, data: bytes) -> None:
        name = f"{self.instance}/uploads/{uuid.uuid4()}/blobs/{d.hash}/{d.size_bytes}"

        def chunks():
            for off in range(0, len(data), CHUNK):
                part = data[off:off + CHUNK]
                yield bytestream_pb2.WriteRequest(resource_name=name if off == 0 else "", write_offset=off, data=part,
                                                  finish_write=off + len(part) >= len(data))

        self.bs.Write(chunks())


def materialize(cas: Cas, root_digest: re_pb2.Digest, dest: Path) -> None:
    """The input root: directories level by level, then every file's bytes (deduplicated)."""
    files: list[tuple[Path, re_pb2.Digest, bool]] = []
    level = [(dest, root_digest)]
    while level:
        blobs = cas.read_many([d for _, d in level])
        nxt = []
        for path, d in level:
            directory = re_pb2.Directory.FromString(blobs[d.hash])
            path.mkdir(parents=True, exist_ok=True)
            for f in directory.files:
                files.append((path / f.name, f.digest, f.is_executable))
            for s in directory.symlinks:
                os.symlink(s.target, path / s.name)
            nxt.extend((path / c.name, c.digest) for c in directory.directories)
        level = nxt
    contents = cas.read_many([d for _, d, _ in files])
    for path, d, executable in files:
        path.write_bytes(contents[d.hash])
        os.chmod(path, 0o555 if executable else 0o444)


def tree_of(root: Path, blobs: dict[str, tuple[re_pb2.Digest, bytes]]) -> re_pb2.Tree:
    """An output directory as a Tree (files uploaded through `blobs`)."""
    children: list[re_pb2.Directory] = []

    def build(path: Path) -> re_pb2.Directory:
        d = re_pb2.Directory()
        for entry in sorted(os.scandir(path), key=lambda e: e.name):
            if entry.is_symlink():
                d.symlinks.add(name=entry.name, target=os.readlink(entry.path))
            elif entry.is_dir():
                sub = build(Path(entry.path))
                children.append(sub)
                data = sub.SerializeToString()
                d.directories.add(name=entry.name, digest=digest_of(data))
            else:
                data = Path(entry.path).read_bytes()
                dg = digest_of(data)
                blobs[dg.hash] = (dg, data)
                d.files.add(name=entry.name, digest=dg, is_executable=os.access(entry.path, os.X_OK))
        return d

    root_dir = build(root)
    return re_pb2.Tree(root=root_dir, children=children)


def sandbox_argv(command: re_pb2.Command, execroot: Path, cwd: Path, hide: list[str]) -> list[str]:
    argv = ["bwrap", "--die-with-parent", "--unshare-all", "--ro-bind", "/", "/", "--tmpfs", "/tmp"]
    for h in hide:
        if os.path.isdir(h):
            argv += ["--tmpfs", h]
    argv += ["--bind", str(execroot), str(execroot), "--proc", "/proc", "--dev", "/dev", "--chdir", str(cwd),
             "--clearenv"]
    for var in command.environment_variables:
        argv += ["--setenv", var.name, var.value]
    return argv + ["--"] + list(command.arguments)


def execute(cas: Cas, action: re_pb2.Action, work: Path, hide: list[str]) -> re_pb2.ActionResult:
    command = re_pb2.Command.FromString(cas.read_many([action.command_digest])[action.command_digest.hash])
    execroot = work / uuid.uuid4().hex
    try:
        materialize(cas, action.input_root_digest, execroot)
        cwd = execroot / command.working_directory
        outputs = list(command.output_paths) or list(command.output_files) + list(command.output_directories)
        for o in outputs:
            (cwd / o).parent.mkdir(parents=True, exist_ok=True)
        for o in command.output_directories:
            (cwd / o).mkdir(parents=True, exist_ok=True)
        timeout = action.timeout.seconds or 1200
        try:
            proc = subprocess.run(sandbox_argv(command, execroot, cwd, hide), capture_output=True, timeout=timeout)
            code, out, err = proc.returncode, proc.stdout, proc.stderr
        except subprocess.TimeoutExpired as e:
            code, out, err = 124, e.stdout or b"", (e.stderr or b"") + b"\nworker: timed out\n"
        blobs: dict[str, tuple[re_pb2.Digest, bytes]] = {}
        result = re_pb2.ActionResult(exit_code=code)
        for data, field in ((out, "stdout_digest"), (err, "stderr_digest")):
            d = digest_of(data)
            blobs[d.hash] = (d, data)
            getattr(result, field).CopyFrom(d)
        for o in outputs:
            p = cwd / o
            if p.is_symlink():
                result.output_file_symlinks.add(path=o, target=os.readlink(p))
            elif p.is_dir():
                tree = tree_of(p, blobs)
                data = tree.SerializeToString()
                d = digest_of(data)
                blobs[d.hash] = (d, data)
                result.output_directories.add(path=o, tree_digest=d)
            elif p.is_file():
                data = p.read_bytes()
                d = digest_of(data)
                blobs[d.hash] = (d, data)
                result.output_files.add(path=o, digest=d, is_executable=os.access(p, os.X_OK))
        cas.write_many(blobs)
        return result
    finally:
        for dirpath, dirnames, _ in os.walk(execroot):  # actions may leave read-only directories
            for n in dirnames:
                if not os.path.islink(os.path.join(dirpath, n)):
                    os.chmod(os.path.join(dirpath, n), 0o755)
        shutil.rmtree(execroot, ignore_errors=True)


def run(args: argparse.Namespace) -> None:
    channel = grpc.insecure_channel(args.server, options=[("grpc.max_receive_message_length", 64 << 20),
                                                         ("grpc.max_send_message_length", 64 << 20)])
    cas = Cas(channel, args.instance)
    bots = bots_pb2_grpc.BotsStub(channel)
    args.work.mkdir(parents=True, exist_ok=True)
    session = bots.CreateBotSession(bots_pb2.CreateBotSessionRequest(
        parent=args.instance, bot_session=bots_pb2.BotSession(bot_id=args.bot_id, status=bots_pb2.BotStatus.OK)))
    print(f"{args.bot_id}: session {session.name}", flush=True)
    while True:
        done = False
        for lease in session.leases:
            if lease.state not in (bots_pb2.LeaseState.PENDING, bots_pb2.LeaseState.ACTIVE):
                continue
            action = re_pb2.Action()
            if lease.payload.Is(re_pb2.Action.DESCRIPTOR):
                lease.payload.Unpack(action)
            else:
                d = re_pb2.Digest()
                lease.payload.Unpack(d)
                action = re_pb2.Action.FromString(cas.read_many([d])[d.hash])
            start = time.monotonic()
            try:
                result = execute(cas, action, args.work, args.hide)
                lease.status.code = code_pb2.OK
                lease.result.Pack(result)
                print(f"{args.bot_id}: {lease.id} exit {result.exit_code} in {time.monotonic() - start:.1f} s", flush=True)
            except Exception as e:  # noqa: BLE001 - reported to the scheduler, the worker goes on
                lease.status.code = code_pb2.INTERNAL
                lease.status.message = f"{type(e).__name__}: {e}"
                print(f"{args.bot_id}: {lease.id} failed: {e}", flush=True)
            lease.state = bots_pb2.LeaseState.COMPLETED
            done = True
        try:
            session = bots.UpdateBotSession(bots_pb2.UpdateBotSessionRequest(name=session.name, bot_session=session),
                                            timeout=30 if not done else 60)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                print(f"{args.bot_id}: UpdateBotSession: {e.code()} {e.details()}", flush=True)
                time.sleep(1)
            # keep the same session: a timed-out long poll just means no work


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--server", required=True)
    p.add_argument("--instance", default="main")
    p.add_argument("--bot-id", required=True)
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--hide", action="append", default=[], help="a path the commands must not see (tmpfs over it)")
    args = p.parse_args()
    try:
        run(args)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
