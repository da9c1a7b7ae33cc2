"""The real peers started by ``tests/peers/peers.sh up``, as the tests see them.

``peers.sh`` writes a state file (``KEY='value'`` lines, default
``/var/cache/distroless-peers/state.env``; ``DL_PEERS_DIR`` moves it).  ``load()`` reads it,
checks that every peer answers, and returns a :class:`Peers`.  Anything missing or silent raises
:class:`PeersUnavailable` with the reason; the ``peers`` fixture turns that into a test failure.
"""

from __future__ import annotations

import http.client
import json
import os
import shlex
import socket
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DIR = "/var/cache/distroless-peers"
UP_HINT = "run `bash tests/peers/peers.sh up` (or `make peers`)"


class PeersUnavailable(Exception):
    """A peer the tests need is not there or does not answer."""


def state_file() -> Path:
    return Path(os.environ.get("DL_PEERS_DIR", DEFAULT_DIR)) / "state.env"


def read_state(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        (word,) = shlex.split(line)
        key, _, value = word.partition("=")
        values[key] = value
    return values


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 5.0):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def docker_api(sock: str, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """GET ``path`` from the Docker Engine API on the unix socket ``sock``."""
    conn = _UnixHTTPConnection(sock, timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@dataclass(frozen=True)
class Docker:
    """One dockerd and the CLI that matches it."""

    name: str  # "docker20" / "docker26"
    host: str  # unix:///.../docker.sock
    sock: str
    cli: str  # explicit CLI path: never the `docker` first on PATH
    config: str  # DOCKER_CONFIG (cli-plugins/ lives here)
    version: str  # the server's version, e.g. 20.10.24+dfsg1
    log: str

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env.update(DOCKER_HOST=self.host, DOCKER_CONFIG=self.config)
        env.update(extra)
        return env

    def run(self, *args: str, check: bool = True, timeout: float = 120, input: bytes | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run this daemon's CLI; on failure (check) raise AssertionError with its output."""
        proc = subprocess.run(
            [self.cli, *args], env=env or self.env(), input=input, capture_output=True,
            timeout=timeout, text=input is None,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{self.name}: `docker {shlex.join(args)}` exited {proc.returncode}\n"
                f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
            )
        return proc

    def ping(self) -> None:
        try:
            status, body = docker_api(self.sock, "/_ping")
        except OSError as e:
            raise PeersUnavailable(f"{self.name} on {self.sock} does not answer: {e}") from e
        if status != 200 or body.strip() != b"OK":
            raise PeersUnavailable(f"{self.name} on {self.sock}: /_ping gave {status} {body[:200]!r}")


@dataclass(frozen=True)
class Peers:
    registry: str  # host:port of the loopback registry (plain HTTP)
    docker20: Docker
    docker26: Docker
    buildx: str
    buildx_version: str
    cosign: str
    cosign_version: str
    skopeo: str
    umoci: str
    bwrap: str
    bazel: str
    busybox: str  # a static busybox, for images that must run something
    state: dict[str, str] = field(repr=False)

    @property
    def dockers(self) -> tuple[Docker, Docker]:
        return (self.docker20, self.docker26)

    def registry_url(self, path: str = "/v2/") -> str:
        return f"http://{self.registry}{path}"

    def check(self) -> None:
        """Raise PeersUnavailable unless every peer answers."""
        try:
            with urllib.request.urlopen(self.registry_url(), timeout=5) as resp:
                api = resp.headers.get("Docker-Distribution-Api-Version", "")
        except OSError as e:
            raise PeersUnavailable(f"registry {self.registry} does not answer: {e}") from e
        if api != "registry/2.0":
            raise PeersUnavailable(f"{self.registry} answers but is no distribution registry ({api!r})")
        for docker in self.dockers:
            docker.ping()
        for tool in (self.docker20.cli, self.docker26.cli, self.buildx, self.cosign, self.skopeo,
                     self.umoci, self.bwrap, self.bazel, self.busybox):
            if not os.access(tool, os.X_OK):
                raise PeersUnavailable(f"{tool} is missing or not executable")


def _docker(state: dict[str, str], n: str) -> Docker:
    return Docker(
        name=f"docker{n}", host=state[f"DOCKER{n}_HOST"], sock=state[f"DOCKER{n}_SOCK"],
        cli=state[f"DOCKER{n}_CLI"], config=state[f"DOCKER{n}_CONFIG"],
        version=state[f"DOCKER{n}_VERSION"], log=state[f"DOCKER{n}_LOG"],
    )


def load(path: Path | None = None) -> Peers:
    """Read the state file and check every peer answers; PeersUnavailable says why not."""
    path = path or state_file()
    if not path.is_file():
        raise PeersUnavailable(f"no peer state file {path}: {UP_HINT}")
    state = read_state(path)
    try:
        peers = Peers(
            registry=state["REGISTRY_ADDR"], docker20=_docker(state, "20"), docker26=_docker(state, "26"),
            buildx=state["BUILDX"], buildx_version=state["BUILDX_VERSION"],
            cosign=state["COSIGN"], cosign_version=state["COSIGN_VERSION"],
            skopeo=state["SKOPEO"], umoci=state["UMOCI"], bwrap=state["BWRAP"], bazel=state["BAZEL"],
            busybox=state["BUSYBOX"], state=state,
        )
    except KeyError as e:
        raise PeersUnavailable(f"{path} lacks {e.args[0]}: {UP_HINT}") from e
    try:
        peers.check()
    except PeersUnavailable as e:
        raise PeersUnavailable(f"{e} ({UP_HINT})") from e
    return peers


def registry_manifest_digest(peers: Peers, repo: str, ref: str) -> str:
    """The digest the registry serves for repo:ref (HEAD with the usual manifest media types)."""
    accept = ", ".join([
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ])
    req = urllib.request.Request(peers.registry_url(f"/v2/{repo}/manifests/{ref}"), method="HEAD",
                                 headers={"Accept": accept})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.headers["Docker-Content-Digest"]


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]
