"""`--json` on `image lock`/`build`/`publish` (digests, references, files written), checked
against the bytes on disk and the real registry; a missing output directory fails before the
build starts."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid

import pytest

from httpserver import StaticServer
from imagerepo import image_yaml, make_repo
from peers.env import registry_manifest_digest


def dl(*args, cwd, env=None) -> subprocess.CompletedProcess[str]:
    e = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000", **(env or {})}
    return subprocess.run([sys.executable, "-m", "distroless", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, env=e, timeout=300)


@pytest.fixture(scope="module")
def served(tmp_path_factory, peers):
    root = tmp_path_factory.mktemp("jsonrepo")
    repo, pub = make_repo(root, peers.busybox)
    server = StaticServer(repo).start()
    yield server, pub
    server.stop()


def test_lock_and_build_json(tmp_path, served):
    server, pub = served
    (tmp_path / "image.yaml").write_text(image_yaml(server.url, pub, ["busybox"]))
    r = dl("image", "lock", "image.yaml", "--json", "--cache-dir", "cache", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lock = json.loads(r.stdout)
    assert lock["files"] == ["image.lock.json"] and (tmp_path / "image.lock.json").exists()
    assert lock["packages"] == len(json.loads((tmp_path / "image.lock.json").read_text())["contents"]["packages"])
    (tmp_path / "out").mkdir()
    r = dl("image", "build", "image.yaml", "test/json:v1", "out", "--json", "--cache-dir", "cache",
           "--sbom-path", "sbom", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    index_bytes = (tmp_path / "out" / "index.json").read_bytes()
    listed = {m["digest"] for m in json.loads(index_bytes)["manifests"]}
    assert res["reference"] == "test/json:v1" and res["kind"] == "OCI layout"
    assert res["index"] == "sha256:" + hashlib.sha256(index_bytes).hexdigest()
    assert {i["digest"] for i in res["images"]} == listed
    assert all((tmp_path / f).exists() for f in res["files"]) and "sbom/sbom-x86_64.spdx.json" in res["files"]


def test_publish_json(tmp_path, served, peers):
    server, pub = served
    (tmp_path / "image.yaml").write_text(image_yaml(server.url, pub, ["busybox"]))
    repo = f"dl-json/{uuid.uuid4().hex[:10]}"
    r = dl("image", "publish", "image.yaml", f"{peers.registry}/{repo}:v1", "--json", "--cache-dir", "cache",
           "--image-refs", "refs.txt", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["digest"] == registry_manifest_digest(peers, repo, "v1")
    assert res["references"] == [f"{peers.registry}/{repo}:v1@{res['digest']}"]
    assert res["signed"] is False and res["files"] == ["refs.txt"]
    assert (tmp_path / "refs.txt").read_text().split() == res["references"]


def test_missing_output_directory_fails_before_the_build(tmp_path):
    # the repository is a closed port: had the build started, the error would be about it
    (tmp_path / "image.yaml").write_text("contents:\n  repositories: [http://127.0.0.1:9/nowhere]\n"
                                         "  packages: [busybox]\narchs: [x86_64]\n")
    for args in (["image", "build", "image.yaml", "t:1", "no/such/dir/out.tar"],
                 ["image", "build-minirootfs", "image.yaml", "no/such/dir/rootfs.tar"],
                 ["image", "publish", "image.yaml", "127.0.0.1:9/x:y", "--image-refs", "no/such/dir/refs"]):
        r = dl(*args, "--ignore-signatures", cwd=tmp_path)
        assert r.returncode == 1, r
        assert r.stderr.strip().splitlines() == [f"distroless: error: {args[-1]}: output directory "
                                                 f"{os.path.dirname(args[-1])} does not exist"], r.stderr
