"""The image mode's graph without a daemon: the frontend against an in-process bridge that
records what it solves (a real lock from the CLI, a real http server for the lock).

Checks what the daemon tests cannot see directly: how the metadata steps are keyed and how few
gateway calls a build makes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from distroless.buildkit import frontend, llbdef, transport
from distroless.buildkit._pb import gateway
from distroless.buildkit._pb import ops as pb
from httpserver import StaticServer
from imagerepo import image_yaml, make_repo

ARCHS = ("x86_64", "aarch64")
CAPS = ("source.local", "source.http", "source.http.checksum", "source.http.perm", "file.base", "file.rm.wildcard",
        "mergeop", "exec.mount.cache.content")


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, peers) -> Path:
    root = tmp_path_factory.mktemp("graph")
    repo_dir, pub = make_repo(root, peers.busybox, ARCHS, fixed_key=True)
    server = StaticServer(repo_dir).start()
    try:
        ctx = root / "ctx"
        ctx.mkdir()
        yaml = image_yaml(server.url, pub, ["busybox"]).replace("archs: [x86_64]\n", "archs: [x86_64, aarch64]\n")
        (ctx / "image.yaml").write_text(yaml)
        subprocess.run([sys.executable, "-m", "distroless", "image", "lock", "image.yaml", "--cache-dir",
                        str(root / "cache")], cwd=ctx, env={**os.environ, "SOURCE_DATE_EPOCH": "1700000000"},
                       check=True, capture_output=True)
    finally:
        server.stop()
    return ctx


class Bridge:
    """Answers like BuildKit: every Solve gives a ref, ReadFile reads the context (the build file
    and lock) or the metadata step's `image.json` (a stand-in: this test runs no step)."""

    def __init__(self, ctx: Path, caps: tuple[str, ...]):
        self.ctx = ctx
        self.caps = transport.Caps({}, {c: True for c in caps})
        self.solves: list[pb.Definition] = []
        self.reads: list[str] = []

    def solve(self, definition=None, **kw) -> gateway.Result:
        self.solves.append(definition)
        r = gateway.Result()
        r.ref.id = f"ref{len(self.solves)}"
        return r

    def read_file(self, ref, path, offset=None, length=None) -> bytes:
        self.reads.append(path)
        if path.endswith("/image.json"):
            data = json.dumps({"image": IMAGE, "warnings": [], "source_date_epoch_pinned": True}).encode()
        else:
            data = (self.ctx / path).read_bytes()
        return data[offset or 0:(offset or 0) + (length or len(data))]

    def inputs(self) -> dict:
        return {}


IMAGE = {"annotations": {}, "cmd": "", "created": 1700000000, "entrypoint_command": "/bin/busybox",
         "env": {"PATH": "/usr/bin:/bin"}, "shell_fragment": "", "stop_signal": "", "user": "", "vcs_url": "",
         "volumes": [], "working_dir": ""}


def build(ctx: Path, caps=CAPS) -> Bridge:
    bridge = Bridge(ctx, caps)
    env = transport.FrontendEnv(opts={"filename": "image.yaml", "source": "reg.invalid/fe:1",
                                      "platform": "linux/amd64,linux/arm64"}, session_id="s",
                                workers=({"Platforms": [{"os": "linux", "architecture": "amd64"}]},))
    frontend.build(bridge, env)
    return bridge


def metadata_steps(d: pb.Definition) -> dict[str, pb.ExecOp]:
    return {d.metadata[dg].description["llb.customname"]: op.exec for dg, op in llbdef.ops(d)
            if op.WhichOneof("op") == "exec"}


def test_the_metadata_steps_are_keyed_by_their_inputs_pins(ctx) -> None:
    """Every input of a metadata step but its image is keyed by its node's cache key only, never
    by its content: else BuildKit downloads every package to hash it whenever it does not match
    the step at once (two platforms from an imported cache)."""
    bridge = build(ctx)
    steps = metadata_steps(bridge.solves[1])
    assert sorted(steps) == ["metadata step: 2 packages (amd64)", "metadata step: 2 packages (arm64)"]
    for name, step in steps.items():
        binds = {m.dest: m.contentCache for m in step.mounts if m.mountType == pb.BIND and m.input >= 0}
        assert binds.pop("/") == pb.DEFAULT  # the image: BuildKit never hashes a root's content
        assert set(binds) == {"/in", "/apk/0000", "/apk/0001"} and set(binds.values()) == {pb.OFF}, (name, binds)
    d = bridge.solves[1]
    exec_caps = [d.metadata[dg].caps for dg, op in llbdef.ops(d) if op.WhichOneof("op") == "exec"]
    assert all(c["exec.mount.cache.content"] for c in exec_caps)


def test_an_older_buildkit_gets_no_content_cache_field(ctx) -> None:
    # a daemon without the cap would refuse an op that needs it; it keys writable binds by key anyway
    bridge = build(ctx, tuple(c for c in CAPS if c != "exec.mount.cache.content"))
    for step in metadata_steps(bridge.solves[1]).values():
        assert {m.contentCache for m in step.mounts} == {pb.DEFAULT}
    assert not any("exec.mount.cache.content" in m.caps for m in bridge.solves[1].metadata.values())


def test_one_solve_for_every_platforms_metadata(ctx) -> None:
    """The spec, all platforms' metadata steps together, then one root per platform; each
    platform's image.json is read from the one metadata ref."""
    bridge = build(ctx)
    assert len(bridge.solves) == 1 + 1 + 2
    assert bridge.reads == ["image.yaml", "image.lock.json", "/amd64/image.json", "/arm64/image.json"]


def test_without_mergeop_the_platforms_metadata_is_copied_into_one_tree(ctx) -> None:
    # a daemon on a graphdriver store (no MergeOp) with two platforms: each step's output folder
    # (/amd64, /arm64) is copied onto one scratch tree, read as one ref like the merge
    bridge = build(ctx, tuple(c for c in CAPS if c != "mergeop"))
    d = bridge.solves[1]
    by_digest = dict(llbdef.ops(d))
    last = by_digest[llbdef.output_of(d).digest]
    assert last.WhichOneof("op") == "file"
    copies = [a.copy for a in last.file.actions]
    assert [(c.src, c.dest, c.dirCopyContents) for c in copies] == [("/", "/", True), ("/", "/", True)]
    sources = {by_digest[i.digest].WhichOneof("op") for i in last.inputs}
    assert sources == {"exec"} and len(last.inputs) == 2
    assert bridge.reads[-2:] == ["/amd64/image.json", "/arm64/image.json"]
