"""The real peers answer and do what the rest of the suite relies on.

Images here have no base (nothing can be pulled from outside): `docker import` of a tarball with a
static busybox and a file. Each test names its own repositories, so reruns overwrite only their own.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest

from peers.env import Docker, Peers, registry_manifest_digest

DAEMONS = ["docker20", "docker26"]
HELLO = b"hello from the distroless peers\n"
# tags unique to this run: several sessions may use the same peers at once
RUN = f"run{os.getpid()}"


def _docker(peers: Peers, name: str) -> Docker:
    return getattr(peers, name)


@pytest.fixture(scope="session")
def rootfs_tar(tmp_path_factory: pytest.TempPathFactory, peers: Peers) -> Path:
    """A root filesystem: /bin/busybox (static) and /hello.txt. Byte-for-byte the same on every run,
    so its layer is stored once in the registry and the daemons; each import still makes a new
    image (its config records the import time)."""
    out = tmp_path_factory.mktemp("rootfs") / "rootfs.tar"
    busybox = Path(peers.busybox).read_bytes()
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (("bin/busybox", busybox), ("hello.txt", HELLO)):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o755, 0
            tar.addfile(info, io.BytesIO(data))
    return out


@pytest.fixture(scope="session")
def made(peers: Peers):
    """Record (docker, ref) of images a test makes; they are removed when the session ends."""
    refs: list[tuple[Docker, str]] = []
    yield refs
    for docker, ref in reversed(refs):
        docker.run("image", "rm", "-f", ref, check=False)


def _image_id(docker: Docker, ref: str) -> str:
    return docker.run("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip()


def push_pull(peers: Peers, docker: Docker, rootfs: Path, repo: str) -> dict[str, str]:
    """Import rootfs as REGISTRY/repo:1-RUN, push it, remove it locally, pull it back."""
    ref = f"{peers.registry}/{repo}:1-{RUN}"
    docker.run("import", "--change", 'CMD ["/bin/busybox", "echo", "hi"]', str(rootfs), ref)
    image_id = _image_id(docker, ref)
    pushed = docker.run("push", ref).stdout
    m = re.search(r"digest: (sha256:[0-9a-f]{64})", pushed)
    assert m, f"no digest in push output: {pushed}"
    digest = m.group(1)
    docker.run("image", "rm", ref)
    assert docker.run("image", "inspect", ref, check=False).returncode != 0, "image still there after rm"
    docker.run("pull", ref)
    return {"ref": ref, "repo": repo, "id": image_id, "digest": digest,
            "pulled_id": _image_id(docker, ref),
            "repo_digests": docker.run("image", "inspect", "--format", "{{json .RepoDigests}}", ref).stdout}


@pytest.fixture(scope="session")
def pushed(peers: Peers, rootfs_tar: Path, made: list) -> dict[str, dict[str, str]]:
    """One image pushed and pulled back through the registry by each daemon's CLI."""
    out = {}
    for name in DAEMONS:
        docker = _docker(peers, name)
        out[name] = push_pull(peers, docker, rootfs_tar, f"peers/test-{name}")
        made.append((docker, out[name]["ref"]))
    return out


def test_daemon_versions(peers: Peers) -> None:
    assert peers.docker20.version.startswith("20.10."), peers.docker20.version
    assert peers.docker26.version.startswith("26.1."), peers.docker26.version
    for docker in peers.dockers:
        server = docker.run("version", "--format", "{{.Server.Version}}").stdout.strip()
        client = docker.run("version", "--format", "{{.Client.Version}}").stdout.strip()
        assert server == docker.version
        assert client.split(".")[:2] == server.split(".")[:2], f"{docker.name}: CLI {client} vs daemon {server}"


def test_docker26_uses_containerd_image_store(peers: Peers) -> None:
    info = json.loads(peers.docker26.run("info", "--format", "{{json .}}").stdout)
    assert ["driver-type", "io.containerd.snapshotter.v1"] in info["DriverStatus"], info["DriverStatus"]


@pytest.mark.parametrize("name", DAEMONS)
def test_push_pull_through_registry(peers: Peers, pushed: dict[str, dict[str, str]], name: str) -> None:
    got = pushed[name]
    assert got["pulled_id"] == got["id"], "pulled image differs from the pushed one"
    assert f"{peers.registry}/{got['repo']}@{got['digest']}" in json.loads(got["repo_digests"])
    assert registry_manifest_digest(peers, got["repo"], f"1-{RUN}") == got["digest"]


@pytest.mark.parametrize("name", DAEMONS)
def test_run_network_none(peers: Peers, rootfs_tar: Path, made: list, name: str) -> None:
    docker = _docker(peers, name)
    ref = f"peers/busybox-{name}:{RUN}"
    docker.run("import", str(rootfs_tar), ref)
    made.append((docker, ref))
    out = docker.run("run", "--rm", "--network", "none", ref, "/bin/busybox", "echo", "hi").stdout
    assert out == "hi\n"
    hello = docker.run("run", "--rm", "--network", "none", ref, "/bin/busybox", "cat", "/hello.txt").stdout
    assert hello == HELLO.decode()


@pytest.mark.parametrize("name", DAEMONS)
def test_build_with_run_step(peers: Peers, rootfs_tar: Path, tmp_path: Path, made: list, name: str) -> None:
    """BuildKit of each daemon builds FROM a local image with a RUN step (default bridge network)."""
    docker = _docker(peers, name)
    base = f"peers/busybox-base-{name}:{RUN}"
    docker.run("import", str(rootfs_tar), base)
    made.append((docker, base))
    stamp = str(uuid.uuid4())
    (tmp_path / "Dockerfile").write_text(
        f"FROM {base}\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo {stamp} > /built.txt\"]\n"
    )
    tag = f"peers/built-{name}:{RUN}"
    made.append((docker, tag))
    if name == "docker20":
        docker.run("build", "-t", tag, str(tmp_path), env=docker.env(DOCKER_BUILDKIT="1"), timeout=300)
    else:
        docker.run("buildx", "build", "--load", "-t", tag, str(tmp_path), timeout=300)
    out = docker.run("run", "--rm", "--network", "none", tag, "/bin/busybox", "cat", "/built.txt").stdout
    assert out.strip() == stamp


def test_cosign_version(peers: Peers) -> None:
    assert peers.cosign_version.startswith("2.5."), peers.cosign_version
    proc = subprocess.run([peers.cosign, "version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "GitVersion" in proc.stdout + proc.stderr


def test_cosign_sign_verify_offline(peers: Peers, pushed: dict[str, dict[str, str]], tmp_path: Path) -> None:
    got = pushed["docker20"]
    ref = f"{peers.registry}/{got['repo']}@{got['digest']}"
    env = {"COSIGN_PASSWORD": "peers", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}

    def cosign(*args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([peers.cosign, *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, f"cosign {' '.join(args)}: {proc.stderr}"
        return proc

    cosign("generate-key-pair")
    cosign("sign", "--yes", "--key", "cosign.key", "--tlog-upload=false", "--allow-insecure-registry", ref)
    out = cosign("verify", "--key", "cosign.pub", "--insecure-ignore-tlog=true", "--allow-insecure-registry", ref)
    assert got["digest"] in out.stdout


def test_buildx_on_docker26(peers: Peers) -> None:
    assert peers.buildx_version.startswith("0.13."), peers.buildx_version
    version = peers.docker26.run("buildx", "version").stdout
    assert re.search(r"\b0\.13\.\d", version), version
    ls = peers.docker26.run("buildx", "ls").stdout
    assert re.search(r"^default\b.*\bdocker\b", ls, re.M), ls
    assert "running" in ls, ls


def test_skopeo_inspects_pushed_image(peers: Peers, pushed: dict[str, dict[str, str]]) -> None:
    for name in DAEMONS:
        got = pushed[name]
        proc = subprocess.run(
            [peers.skopeo, "inspect", "--tls-verify=false", f"docker://{got['ref']}"],
            capture_output=True, text=True, timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["Digest"] == got["digest"]


@pytest.mark.parametrize("tool,args,pattern", [
    ("skopeo", ["--version"], r"skopeo version \d"),
    ("umoci", ["--version"], r"umoci version 0\.4\."),
    ("bwrap", ["--version"], r"bubblewrap \d"),
    ("bazel", ["--version"], r"bazel"),
])
def test_tools_answer(peers: Peers, tool: str, args: list[str], pattern: str) -> None:
    proc = subprocess.run([getattr(peers, tool), *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert re.search(pattern, proc.stdout), proc.stdout


def test_bwrap_sandbox_runs(peers: Peers) -> None:
    proc = subprocess.run(
        [peers.bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-all",
         "--die-with-parent", peers.busybox, "echo", "sandboxed"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "sandboxed\n"


def test_peers_status_agrees(peers: Peers) -> None:
    script = Path(__file__).parent / "peers" / "peers.sh"
    proc = subprocess.run(["bash", str(script), "status"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"REGISTRY_ADDR='{peers.registry}'" in proc.stdout
