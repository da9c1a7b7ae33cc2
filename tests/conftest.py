"""Shared fixtures.

``peers``: the real peers (loopback registry, dockerd 20.10 and 26.1, buildx, cosign, skopeo, umoci,
bubblewrap, Bazel) that ``bash tests/peers/peers.sh up`` starts (``make test`` does). A missing state
file or a peer that does not answer fails the test with the reason; it is never skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from peers.env import Peers, PeersUnavailable, load


@pytest.fixture(scope="session")
def peers() -> Peers:
    try:
        return load()
    except PeersUnavailable as e:
        pytest.fail(f"real peers unavailable: {e}", pytrace=False)


ROOT = Path(__file__).resolve().parents[1]
# gcc for demo-hello (compiled as `package build --host-toolchain` compiles it), git for the
# pipeline's `needs: git` in a git-checkout recipe
TOOLCHAIN_PACKAGES = "bash,gcc,libc6-dev,openssl,git"


@dataclass
class ImageBuild:
    """`frontend/build.py … --push ref` as a background process, started when the session's tests
    are known: on a fresh machine the two images take a minute or more, mostly downloads, which
    then overlap the tests that come before the BuildKit ones."""

    ref: str
    proc: subprocess.Popen
    log: Path

    @classmethod
    def start(cls, ref: str, work: str, *args: str) -> ImageBuild:
        log = Path(tempfile.mkstemp(prefix="image-build-", suffix=".log")[1])
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, str(ROOT / "frontend/build.py"), "--work", work, *args,
                                     "--push", ref], stdout=out, stderr=subprocess.STDOUT)
        return cls(ref, proc, log)

    def result(self) -> str:
        try:
            rc = self.proc.wait(timeout=900)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"frontend/build.py for {self.ref} took over 15 minutes", pytrace=False)
        out = self.log.read_text(errors="replace")
        assert rc == 0, f"frontend/build.py for {self.ref} failed ({rc}): {out[-3000:]}"
        return self.ref


_BUILDS: dict[str, tuple[str, tuple[str, ...]]] = {
    # fixture name -> (work directory, build.py arguments)
    "frontend": ("/var/cache/distroless-frontend", ()),
    "toolchain": ("/var/cache/distroless-toolchain", ("--toolchain", TOOLCHAIN_PACKAGES)),
}
_started: dict[str, ImageBuild] = {}


def _image(name: str, registry: str) -> ImageBuild:
    if name not in _started:
        work, args = _BUILDS[name]
        _started[name] = ImageBuild.start(f"{registry}/distroless/{name}:test-{os.getpid()}", work, *args)
    return _started[name]


def pytest_collection_finish(session: pytest.Session) -> None:
    wanted = [name for name in _BUILDS if any(name in getattr(item, "fixturenames", ()) for item in session.items)]
    if not wanted or session.config.option.collectonly:
        return
    try:
        registry = load().registry
    except PeersUnavailable:
        return  # the `peers` fixture fails the tests that need them, with the reason
    for name in wanted:
        _image(name, registry)


def pytest_sessionfinish(session: pytest.Session) -> None:
    for build in _started.values():
        if build.proc.poll() is None:
            build.proc.kill()
            build.proc.wait()
        build.log.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def frontend(peers: Peers) -> str:
    """The BuildKit frontend image built from this checkout and pushed to the loopback registry, once
    per session: the image and packages modes' daemon tests (test_buildkit_*.py) all build with it."""
    return _image("frontend", peers.registry).result()


@pytest.fixture(scope="session")
def toolchain(peers: Peers) -> str:
    """The host-toolchain image (`frontend/build.py --toolchain`): this machine's Debian suite with
    the packages above (a packages-mode recipe names it in DISTROLESS_TOOLCHAIN)."""
    return _image("toolchain", peers.registry).result()
