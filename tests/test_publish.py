"""`image publish --sign-key` to the real registry, verified by real cosign 2.5."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from httpserver import StaticServer
from imagerepo import image_yaml, make_repo
from sbomcheck import spdx_problems


@pytest.fixture(scope="module")
def served(tmp_path_factory, peers):
    root = tmp_path_factory.mktemp("pubrepo")
    repo, pub = make_repo(root, peers.busybox)
    server = StaticServer(repo).start()
    yield server, pub
    server.stop()


def test_publish_signed_and_attested(tmp_path, served, peers) -> None:
    server, pub = served
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000", "COSIGN_PASSWORD": "s3cret"}
    dl = [sys.executable, "-m", "distroless"]
    subprocess.run(dl + ["generate-key-pair"], cwd=tmp_path, env=env, check=True, capture_output=True)
    (tmp_path / "image.yaml").write_text(image_yaml(server.url, pub, ["busybox"]))
    tag = f"{peers.registry}/publish/demo-{os.getpid()}:v1"
    r = subprocess.run(dl + ["image", "publish", "image.yaml", tag, f"{tag}-alias", "--sign-key", "cosign.key",
                             "--cache-dir", str(tmp_path / "cache"), "--image-refs", "refs.txt"],
                       cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "s3cret" not in r.stdout + r.stderr
    refs = (tmp_path / "refs.txt").read_text().split()
    assert len(refs) == 2 and all("@sha256:" in x for x in refs)
    cosign = [peers.cosign]
    for ref in refs:
        v = subprocess.run(cosign + ["verify", "--key", "cosign.pub", "--insecure-ignore-tlog=true",
                                     "--allow-insecure-registry", ref], cwd=tmp_path, capture_output=True, text=True)
        assert v.returncode == 0, v.stderr
        assert json.loads(v.stdout)[0]["critical"]["image"]["docker-manifest-digest"] == ref.split("@")[1]
    a = subprocess.run(cosign + ["verify-attestation", "--key", "cosign.pub", "--type", "spdxjson",
                                 "--insecure-ignore-tlog=true", "--allow-insecure-registry", refs[0]],
                       cwd=tmp_path, capture_output=True, text=True)
    assert a.returncode == 0, a.stderr
    import base64
    statement = json.loads(base64.b64decode(json.loads(a.stdout.splitlines()[0])["payload"]))
    assert statement["predicateType"] == "https://spdx.dev/Document"
    assert statement["predicate"]["spdxVersion"] == "SPDX-2.3"
    assert spdx_problems(json.dumps(statement["predicate"])) == []  # SPDX's own validator
    # the image also runs where it was pushed: pull and run on dockerd 26
    d = peers.docker26
    try:
        out = d.run("run", "--rm", "--network", "none", "--platform", "linux/amd64", refs[0])
        assert out.stdout.strip() == "hello from distroless"
    finally:
        d.run("rmi", "-f", refs[0], check=False)
