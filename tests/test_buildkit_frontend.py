"""The BuildKit frontend on real daemons: `docker buildx build` (dockerd 26 + buildx 0.13) and
`DOCKER_BUILDKIT=1 docker build` (dockerd 20.10), picked by the YAML's `# syntax=` line."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from httpserver import StaticServer
from imagerepo import image_yaml, make_repo
from regression import check, tree_digest
from sbomcheck import spdx_problems

ROOT = Path(__file__).resolve().parents[1]
ARCHS = ("x86_64", "aarch64")


@pytest.fixture(scope="module")
def repo(tmp_path_factory, peers):
    root = tmp_path_factory.mktemp("bkrepo")
    repo_dir, pub = make_repo(root, peers.busybox, ARCHS, fixed_key=True)  # the trees' digests are recorded
    server = StaticServer(repo_dir, access_log=root / "access.log").start()
    yield server, pub, repo_dir
    server.stop()


def context(tmp: Path, frontend: str, server: StaticServer, pub: Path, *, archs=("x86_64",), lock: bool = True,
            extra: str = "") -> Path:
    ctx = tmp / "ctx"
    ctx.mkdir(exist_ok=True)
    yaml = image_yaml(server.url, pub, ["busybox"], extra).replace("archs: [x86_64]\n", f"archs: [{', '.join(archs)}]\n")
    (ctx / "image.yaml").write_text(f"# syntax={frontend}\n" + yaml)
    if lock:
        env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
        subprocess.run([sys.executable, "-m", "distroless", "image", "lock", "image.yaml", "--cache-dir",
                        str(tmp / "cache")], cwd=ctx, env=env, check=True, capture_output=True)
    return ctx


def buildx(docker, ctx: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return docker.run("buildx", "build", "-f", str(ctx / "image.yaml"), "--progress=plain", *args, str(ctx),
                      check=check, timeout=600)


def uncached(log: str) -> list[str]:
    """Names of the graph's vertices that ran rather than came from the cache."""
    names: dict[str, str] = {}
    state: dict[str, str] = {}
    for line in log.splitlines():
        m = re.match(r"^#(\d+) (.*)$", line)
        if not m:
            continue
        num, rest = m.groups()
        if num not in names:
            names[num] = rest
        elif rest == "CACHED":
            state[num] = "cached"
        elif rest.startswith("DONE"):
            state.setdefault(num, "done")
    # An input-less vertex (a download) is reported DONE whenever its cache key is computed, even
    # when nothing loads it; whether anything was downloaded is asked of the http server instead.
    return [names[n] for n, s in state.items() if s == "done"
            and not names[n].startswith(("[internal]", "exporting", "resolve image config", "naming", "fetch "))]


def tree_of(docker, image: str) -> dict[str, tuple]:
    """Every path of an image's filesystem with type, mode, owner, link target and content hash."""
    cid = docker.run("create", image).stdout.strip()
    try:
        data = subprocess.run([docker.cli, "export", cid], env=docker.env(), capture_output=True, check=True).stdout
    finally:
        docker.run("rm", cid, check=False)
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        for m in tf:
            if m.name.rstrip("/") in ("", ".dockerenv") or m.name.startswith(("proc/", "sys/", "dev/", "etc/hosts",
                                                                                  "etc/hostname", "etc/resolv.conf")):
                continue
            digest = hashlib.sha256(tf.extractfile(m).read()).hexdigest() if m.isfile() else ""
            out[m.name.rstrip("/")] = (m.type, m.mode, m.uid, m.gid, m.linkname, digest)
    return out


def cli_image(docker, ctx: Path, tmp: Path, tag: str) -> None:
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    subprocess.run([sys.executable, "-m", "distroless", "image", "build", "image.yaml", tag, str(tmp / "cli.tar"),
                    "--lockfile", "image.lock.json", "--cache-dir", str(tmp / "cache"), "--sbom-path", str(tmp)],
                   cwd=ctx, env=env, check=True, capture_output=True)
    docker.run("load", "-i", str(tmp / "cli.tar"))


@dataclass(frozen=True)
class Built:
    """The same locked YAML built by the frontend on one daemon and by the CLI, both loaded there."""
    docker: object
    tag: str
    cli_tag: str
    log: str


def build_on(daemon: str, tmp: Path, frontend: str, repo, peers):
    server, pub, _ = repo
    ctx = context(tmp, frontend, server, pub)
    docker = getattr(peers, daemon)
    tag = f"bk-{daemon}:{os.getpid()}"
    if daemon == "docker26":
        r = buildx(docker, ctx, "--build-arg", "SOURCE_DATE_EPOCH=1700000000", "-t", tag, "--load")
    else:
        r = docker.run("build", "-f", str(ctx / "image.yaml"), "--progress=plain", "--build-arg",
                       "SOURCE_DATE_EPOCH=1700000000", "-t", tag, str(ctx), env=docker.env(DOCKER_BUILDKIT="1"), timeout=600)
    cli_tag = f"cli/bk-{daemon}-{os.getpid()}:t"
    try:
        cli_image(docker, ctx, tmp, cli_tag)
        yield Built(docker, tag, f"{cli_tag}-amd64", r.stderr)
    finally:
        docker.run("rmi", "-f", tag, f"{cli_tag}-amd64", check=False)


# Each daemon's build is shared by the tests that read it (built once per module, before any test
# could change the repository: none does, each changes a copy of its own).
@pytest.fixture(scope="module")
def built_docker26(tmp_path_factory, frontend, repo, peers):
    yield from build_on("docker26", tmp_path_factory.mktemp("bk26"), frontend, repo, peers)


@pytest.fixture(scope="module")
def built_docker20(tmp_path_factory, frontend, repo, peers):
    yield from build_on("docker20", tmp_path_factory.mktemp("bk20"), frontend, repo, peers)


@pytest.mark.parametrize("daemon", ["docker26", "docker20"])
def test_build_runs_and_matches_cli(request, daemon) -> None:
    b: Built = request.getfixturevalue(f"built_{daemon}")
    if daemon == "docker26":
        assert "merge 2 packages and metadata" in b.log, "the MergeOp path is taken on dockerd 26"
    else:
        assert "copy 2 packages and metadata into one layer" in b.log, "no MergeOp on dockerd 20.10"
    docker = b.docker
    assert docker.run("run", "--rm", "--network", "none", b.tag).stdout.strip() == "hello from distroless"
    ours, theirs = tree_of(docker, b.tag), tree_of(docker, b.cli_tag)
    assert ours.keys() == theirs.keys()
    diffs = {k: (ours[k], theirs[k]) for k in ours if ours[k] != theirs[k]}
    assert not diffs
    # the repository's port and directory change per run: the files naming them are left out
    check(f"buildkit_tree_{daemon}", tree_digest(ours, skip=("etc/apko.json", "etc/apk/repositories")))
    layers = json.loads(docker.run("image", "inspect", b.tag, "--format", "{{json .RootFS.Layers}}").stdout)
    assert len(layers) == (3 if daemon == "docker26" else 1)  # 2 packages + metadata, or one copy


@dataclass(frozen=True)
class Warm:
    """A locked build, then the same build again with the repository's server stopped."""
    ctx: Path
    server: StaticServer
    pub: Path
    repo_dir: Path
    second: str  # the second build's log
    downloads: int  # packages fetched during the second build
    reads: list[dict]  # what the frontend read, both builds


@pytest.fixture(scope="module")
def warm(tmp_path_factory, frontend, repo, peers):
    """Shared by the offline test (which then adds a package to this copy of the repository) and
    the reads test; the copy has the module repository's key and packages and a server of its own."""
    tmp = tmp_path_factory.mktemp("warm")
    _, pub, repo_dir = repo
    copy = tmp / "repo"
    shutil.copytree(repo_dir, copy)
    server = StaticServer(copy, access_log=tmp / "access.log").start()
    try:
        ctx = context(tmp, frontend, server, pub)
        docker = peers.docker26
        before = len(frontend_reads(docker, ctx / "image.yaml"))
        buildx(docker, ctx, "--build-arg", "SOURCE_DATE_EPOCH=1700000000")
        gets = len(server.gets(".apk"))
        server.stop()
        try:
            r = buildx(docker, ctx, "--build-arg", "SOURCE_DATE_EPOCH=1700000000")
        finally:
            server.start()
        yield Warm(ctx, server, pub, copy, r.stderr, len(server.gets(".apk")) - gets,
                   frontend_reads(docker, ctx / "image.yaml")[before:])
    finally:
        server.stop()


def test_second_build_cached_offline_and_one_package_change(tmp_path, warm, peers) -> None:
    server, pub, repo_dir, ctx = warm.server, warm.pub, warm.repo_dir, warm.ctx
    docker = peers.docker26
    assert uncached(warm.second) == [], warm.second  # built with the server stopped
    # a new busybox version: only its fetch and expansion re-run, plus the metadata and the merge
    work = tmp_path / "bump"
    work.mkdir()
    new_repo, _ = make_repo(work, peers.busybox)  # fresh key; re-sign with the served repo's key below
    from distroless.apk import index, keys, pack, package
    key = keys.load_private(pub.parent / "repo.rsa")
    apk = package.read(repo_dir / "x86_64" / "busybox-1.36.1-r0.apk")
    tree = work / "trees" / "bb"
    (tree / "etc").mkdir(exist_ok=True)
    (tree / "etc" / "busybox-release").write_text(f"r1 {uuid.uuid4()}\n")  # new bytes every run: nothing cached
    meta = apk.package
    meta.version = "1.36.1-r1"
    meta.provides = ["cmd:busybox=1.36.1-r1", "/bin/sh"]
    pack.pack(tree, meta, repo_dir / "x86_64" / "busybox-1.36.1-r1.apk", signing_key=key, source_date_epoch=1600000000)
    pkgs = [package.read(p).package for p in sorted((repo_dir / "x86_64").glob("*.apk"))]
    (repo_dir / "x86_64" / "APKINDEX.tar.gz").write_bytes(index.build(pkgs, signing_key=key))
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    subprocess.run([sys.executable, "-m", "distroless", "image", "lock", "image.yaml", "--cache-dir",
                    str(tmp_path / "cache2")], cwd=ctx, env=env, check=True, capture_output=True)
    gets = len(server.gets(".apk"))
    r = buildx(docker, ctx, "--build-arg", "SOURCE_DATE_EPOCH=1700000000")
    assert [g.split('"GET ')[1].split()[0] for g in server.gets(".apk")[gets:]] == ["/x86_64/busybox-1.36.1-r1.apk"]
    ran = uncached(r.stderr)
    assert sorted(ran) == sorted(["expand busybox-1.36.1-r1",
                                  "metadata step: 2 packages (amd64)",
                                  "metadata layer: installed database, accounts, generated files",
                                  "merge 2 packages and metadata"]), r.stderr


def test_multi_platform_index_and_sbom(tmp_path, frontend, repo, peers) -> None:
    server, pub, _ = repo
    ctx = context(tmp_path, frontend, server, pub, archs=ARCHS)
    out = tmp_path / "oci.tar"
    buildx(peers.docker26, ctx, "--platform", "linux/amd64,linux/arm64", "--sbom=true",
           "--build-arg", "SOURCE_DATE_EPOCH=1700000000", "--output", f"type=oci,dest={out}")
    with tarfile.open(out) as tf:
        index = json.loads(tf.extractfile("index.json").read())
        top = json.loads(tf.extractfile(f"blobs/sha256/{index['manifests'][0]['digest'][7:]}").read())
        plats = {(m.get("platform") or {}).get("architecture") for m in top["manifests"]}
        assert {"amd64", "arm64"} <= plats
        sboms = []
        for m in top["manifests"]:
            if m.get("annotations", {}).get("vnd.docker.reference.type") != "attestation-manifest":
                continue
            att = json.loads(tf.extractfile(f"blobs/sha256/{m['digest'][7:]}").read())
            for layer in att["layers"]:
                if layer.get("annotations", {}).get("in-toto.io/predicate-type") == "https://spdx.dev/Document":
                    sboms.append(json.loads(tf.extractfile(f"blobs/sha256/{layer['digest'][7:]}").read()))
    assert len(sboms) == 2
    names = {p["name"] for p in sboms[0]["predicate"]["packages"]}
    assert {"busybox", "test-base"} <= names and sboms[0]["predicate"]["spdxVersion"] == "SPDX-2.3"
    for statement in sboms:  # as BuildKit attached them, checked by SPDX's own tools
        assert spdx_problems(json.dumps(statement["predicate"])) == []


def test_yaml_error_shows_its_line(tmp_path, frontend, repo, peers) -> None:
    server, pub, _ = repo
    ctx = context(tmp_path, frontend, server, pub, lock=False, extra="entrypoynt: {}\n")
    r = buildx(peers.docker26, ctx, check=False)
    assert r.returncode != 0
    assert "entrypoynt" in r.stderr and "image.yaml" in r.stderr
    # buildx prints the offending source line, marked, with its number in the file
    lines = (ctx / "image.yaml").read_text().splitlines()
    n = lines.index("entrypoynt: {}") + 1
    assert re.search(rf"^\s*{n} \| >>> entrypoynt: \{{\}}\s*$", r.stderr, re.M), r.stderr[-2000:]


def test_tampered_package_fails_with_checksum_error(tmp_path, frontend, repo, peers) -> None:
    server, pub, repo_dir = repo
    ctx = context(tmp_path, frontend, server, pub)
    victim = repo_dir / "x86_64" / "test-base-1.0-r0.apk"
    good = victim.read_bytes()
    try:
        bad = bytearray(good)
        bad[-100] ^= 0xFF
        victim.write_bytes(bytes(bad))
        r = buildx(peers.docker26, ctx, "--no-cache", check=False)
        assert r.returncode != 0
        assert re.search(r"digest mismatch|checksum", r.stderr, re.I), r.stderr[-2000:]
    finally:
        victim.write_bytes(good)


def test_without_lock_resolves_from_http_indexes(tmp_path, frontend, repo, peers, built_docker26) -> None:
    """No lock beside the YAML: the indexes are fetched as http sources and resolved in the
    frontend, with the key read from the build context; the image equals the locked build's."""
    server, pub, _ = repo
    ctx = context(tmp_path, frontend, server, pub, lock=False)
    shutil.copy(pub, ctx / "repo.rsa.pub")
    (ctx / "image.yaml").write_text((ctx / "image.yaml").read_text().replace(str(pub), "repo.rsa.pub"))
    docker = peers.docker26
    tag = f"bk-nolock:{os.getpid()}"
    r = buildx(docker, ctx, "--build-arg", "SOURCE_DATE_EPOCH=1700000000", "-t", tag, "--load")
    assert f"fetch {server.url}/x86_64/APKINDEX.tar.gz" in r.stderr
    try:
        assert docker.run("run", "--rm", "--network", "none", tag).stdout.strip() == "hello from distroless"
        ours, theirs = tree_of(docker, tag), tree_of(docker, built_docker26.tag)
        # /etc/apko.json records the config, whose keyring path differs between the two contexts
        assert ours.pop("etc/apko.json")[:5] == theirs.pop("etc/apko.json")[:5]
        assert ours == theirs
    finally:
        docker.run("rmi", "-f", tag, check=False)


def test_engine_warning_reaches_the_build_summary(tmp_path, frontend, repo, peers) -> None:
    """A lock without a config checksum builds, with the engine's warning sent through BuildKit's
    Warn (buildx shows it, naming the lock file) rather than printed into the daemon log only."""
    server, pub, _ = repo
    ctx = context(tmp_path, frontend, server, pub)
    lock = json.loads((ctx / "image.lock.json").read_text())
    lock["config"]["checksum"] = ""
    (ctx / "image.lock.json").write_text(json.dumps(lock))
    r = buildx(peers.docker26, ctx, "--build-arg", "SOURCE_DATE_EPOCH=1700000000")
    out = r.stdout + r.stderr
    # buildx prints a Warn as `#N WARN: …` on the vertex and counts it in its summary
    assert re.search(r"^#\d+ WARN: image\.lock\.json: no config checksum; cannot tell whether the lock is current$",
                     out, re.M), out[-3000:]
    assert "1 warning found" in out, out[-3000:]


def frontend_reads(docker, spec: Path) -> list[dict]:
    """What the frontend says it read for builds of `spec` (its stderr lands in the daemon's log,
    which other builds share), newest last."""
    digest = hashlib.sha256(spec.read_bytes()).hexdigest()
    out = []
    for line in Path(docker.log).read_text(errors="replace").splitlines():
        m = re.search(r"distroless frontend: session (\S*) spec sha256:(\w+): read (\d+) bytes from (\{.*\})", line)
        if m and m.group(2) == digest:
            out.append({"session": m.group(1), "bytes": int(m.group(3)), "files": json.loads(m.group(4))})
    return out


def test_warm_build_is_all_cached_and_reads_no_package(warm) -> None:
    """With a lock, the frontend reads the YAML, the lock and the metadata step's image.json —
    never a package — and a warm build downloads nothing and runs no vertex."""
    assert uncached(warm.second) == [], warm.second
    assert warm.downloads == 0, "the warm build downloaded a package"
    assert len(warm.reads) == 2, warm.reads
    for rd in warm.reads:
        assert set(rd["files"]) == {"image.yaml", "image.lock.json", "/amd64/image.json"}, rd
        assert not any(f.endswith(".apk") for f in rd["files"])


def test_stale_lock_gives_the_cli_message(tmp_path, frontend, repo, peers) -> None:
    server, pub, _ = repo
    ctx = context(tmp_path, frontend, server, pub)
    yaml = ctx / "image.yaml"
    yaml.write_text(yaml.read_text() + "annotations:\n  changed: after-locking\n")
    r = buildx(peers.docker26, ctx, check=False)
    assert r.returncode != 0
    assert "image.lock.json: the configuration changed since it was locked" in r.stderr, r.stderr[-2000:]
    assert "re-lock with `distroless image lock image.yaml`" in r.stderr, r.stderr[-2000:]
    assert "index out of range" not in r.stderr


def layer_entries(docker, tag: str) -> dict[str, tarfile.TarInfo]:
    """Every entry of an image's layers (later layers win), from `docker save`."""
    data = subprocess.run([docker.cli, "save", tag], env=docker.env(), capture_output=True, check=True).stdout
    out: dict[str, tarfile.TarInfo] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        manifest = json.loads(tf.extractfile("manifest.json").read())
        for layer in manifest[0]["Layers"]:
            with tarfile.open(fileobj=io.BytesIO(tf.extractfile(layer).read())) as lt:
                for m in lt:
                    out[m.name.rstrip("/").removeprefix("./")] = m
    return out


def test_device_nodes_stay_devices_on_dockerd20(built_docker20) -> None:
    """dockerd 20.10 has no MergeOp: the layers are copied into one, and the metadata tar is
    unpacked last so that apko's /dev nodes are character devices, as in the CLI's image."""
    b = built_docker20
    ours, theirs = layer_entries(b.docker, b.tag), layer_entries(b.docker, b.cli_tag)
    devices = {p: (m.type, m.devmajor, m.devminor, m.mode & 0o7777) for p, m in theirs.items() if m.ischr() or m.isblk()}
    assert "dev/null" in devices
    assert {p: (ours[p].type, ours[p].devmajor, ours[p].devminor, ours[p].mode & 0o7777) if p in ours else None
            for p in devices} == devices


def oci_top_digest(path: Path) -> str:
    with tarfile.open(path) as tf:
        return json.loads(tf.extractfile("index.json").read())["manifests"][0]["digest"]


def test_registry_cache_round_trip(tmp_path, frontend, peers) -> None:
    """`--cache-to type=registry,mode=max`, prune the builder, rebuild `--cache-from`: the same
    two-platform image, and not one package downloaded the second time. No SOURCE_DATE_EPOCH: every time in
    the config comes from the packages, and each layer's history is ours, not BuildKit's record
    of where the layer came from (`imported sha256:…` after an import)."""
    # a repository of its own, with a fresh key: new bytes, so the first build really downloads
    repo_dir, pub = make_repo(tmp_path, peers.busybox, ARCHS)
    server = StaticServer(repo_dir, access_log=tmp_path / "access.log").start()
    try:
        _registry_round_trip(tmp_path, frontend, server, pub, peers)
    finally:
        server.stop()


def _registry_round_trip(tmp_path, frontend, server, pub, peers) -> None:
    ctx = context(tmp_path, frontend, server, pub, archs=ARCHS)
    docker = peers.docker26
    cache = f"{peers.registry}/distroless/bkcache:{os.getpid()}"
    # two platforms: their metadata steps are looked up in the imported cache together, and
    # BuildKit downloaded every input of a step it did not match at once, to key it by content
    # (then ran it); the frontend now keys the step's inputs by their pins only
    plat = ("--platform", "linux/amd64,linux/arm64", "--provenance=false")
    first, second = tmp_path / "first.tar", tmp_path / "second.tar"
    buildx(docker, ctx, *plat, "--cache-to", f"type=registry,ref={cache},mode=max", "--output", f"type=oci,dest={first}")
    docker.run("buildx", "prune", "-af", timeout=300)  # the whole local build cache: nothing left but the registry's
    gets = len(server.gets(".apk"))
    r = buildx(docker, ctx, *plat, "--cache-from", f"type=registry,ref={cache}", "--output", f"type=oci,dest={second}")
    assert len(server.gets(".apk")) == gets, f"packages downloaded again: {server.gets('.apk')[gets:]}\n{r.stderr}"
    assert "metadata layer over" not in r.stderr, r.stderr  # no step ran: both came from the cache
    assert oci_top_digest(first) == oci_top_digest(second), r.stderr[-3000:]


def test_frontend_image_bytecode_is_fresh(frontend, peers) -> None:
    """Python in the frontend image takes the shipped bytecode of every module the frontend imports
    (none stale: compiling them all again cost ~0.5 s of CPU on every build)."""
    docker = peers.docker26
    r = docker.run("run", "--rm", "--network", "none", "--entrypoint", "python3", frontend, "-S", "-v", "-c",
                   "import distroless.buildkit.frontend, distroless.steps", timeout=300)
    fresh = [line for line in r.stderr.splitlines() if ".pyc matches " in line]
    stale = [line for line in r.stderr.splitlines() if "bytecode is stale" in line]
    assert len(fresh) > 100 and not stale, stale or r.stderr[-3000:]
