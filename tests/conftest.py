"""Shared fixtures.

``peers``: the real peers (loopback registry, dockerd 20.10 and 26.1, buildx, cosign, skopeo, umoci,
bubblewrap, Bazel) that ``bash tests/peers/peers.sh up`` starts (``make test`` does). A missing state
file or a peer that does not answer fails the test with the reason; it is never skipped.
"""

from __future__ import annotations

import pytest

from peers.env import Peers, PeersUnavailable, load


@pytest.fixture(scope="session")
def peers() -> Peers:
    try:
        return load()
    except PeersUnavailable as e:
        pytest.fail(f"real peers unavailable: {e}", pytrace=False)
