"""Shared fixtures.

``peers``: the real peers (loopback registry, dockerd 20.10 and 26.1, buildx, cosign, skopeo, umoci,
bubblewrap, Bazel) that ``bash tests/peers/peers.sh up`` starts (``make test`` does). A missing state
file or a peer that does not answer fails the test with the reason; it is never skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from peers.env import Peers, PeersUnavailable, load


@pytest.fixture(scope="session")
def peers() -> Peers:
    try:
        return load()
    except PeersUnavailable as e:
        pytest.fail(f"real peers unavailable: {e}", pytrace=False)


@pytest.fixture(scope="session")
def frontend(peers: Peers) -> str:
    """The BuildKit frontend image built from this checkout and pushed to the loopback registry, once
    per session: the image and packages modes' daemon tests (test_buildkit_*.py) all build with it."""
    root = Path(__file__).resolve().parents[1]
    ref = f"{peers.registry}/distroless/frontend:test-{os.getpid()}"
    r = subprocess.run([sys.executable, str(root / "frontend/build.py"), "--work", "/var/cache/distroless-frontend",
                        "--push", ref], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return ref


# gcc for demo-hello (compiled as `package build --host-toolchain` compiles it), git for the
# pipeline's `needs: git` in a git-checkout recipe
TOOLCHAIN_PACKAGES = "bash,gcc,libc6-dev,openssl,git"


@pytest.fixture(scope="session")
def toolchain(peers: Peers) -> str:
    """The host-toolchain image (`frontend/build.py --toolchain`): this machine's Debian suite with
    the packages above, once per session (a packages-mode recipe names it in DISTROLESS_TOOLCHAIN)."""
    root = Path(__file__).resolve().parents[1]
    ref = f"{peers.registry}/distroless/toolchain:test-{os.getpid()}"
    r = subprocess.run([sys.executable, str(root / "frontend/build.py"), "--work", "/var/cache/distroless-toolchain",
                        "--toolchain", TOOLCHAIN_PACKAGES, "--push", ref], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return ref
