"""apko's other verbs and flags: show-config, dot, resolve, version, -C, --max-*, minirootfs SBOM,
publish --local/--sbom-path, over a real HTTP repository (and the real docker peer)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from distroless import __version__
from httpserver import StaticServer
from imagerepo import image_yaml, make_repo
from test_image_lock import repo, run, write_config  # noqa: F401 - the module's repository fixture


def test_show_config_applies_includes_flags_and_defaults(repo, tmp_path) -> None:  # noqa: F811
    server, root, _ = repo
    cfg = write_config(tmp_path, server, root / "repo.rsa.pub")
    r = run("image", "show-config", str(cfg), "-p", "extra1,extra2", "-r", "https://more.example/os",
            "--arch", "x86_64", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    doc = yaml.safe_load(r.stdout)
    assert doc["contents"]["packages"] == ["app", "extra1", "extra2"]
    assert doc["contents"]["repositories"] == [server.url, "https://more.example/os"]
    assert doc["archs"] == ["amd64"]


def test_dot_draws_world_dependencies_and_provides(repo, tmp_path) -> None:  # noqa: F811
    server, root, _ = repo
    cfg = write_config(tmp_path, server, root / "repo.rsa.pub")
    r = run("image", "dot", str(cfg), "--arch", "x86_64", "--cache-dir", str(tmp_path / "c"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.startswith("digraph images {")
    assert re.search(rf'"{re.escape(str(cfg))}" -> "app"', out)
    assert '"app" [label="app-3.0-r1"]' in out
    assert '"app" -> "so:libfoo.so.2"' in out and '"libfoo" -> "base"' in out
    assert '"so:libfoo.so.2" [shape="rect"]' in out and '"so:libfoo.so.2" -> "libfoo"' in out
    # --web: an HTML page carrying the same graph, and stdout unchanged
    r2 = run("image", "dot", str(cfg), "--arch", "x86_64", "--web", "-o", "graph.html",
             "--cache-dir", str(tmp_path / "c"), cwd=tmp_path)
    assert r2.returncode == 0 and r2.stdout == out, r2.stderr
    page = (tmp_path / "graph.html").read_text()
    assert page.startswith("<!doctype html>") and "&quot;libfoo&quot; -&gt; &quot;base&quot;" in page
    # spanning tree: `base` has two dependents but one incoming edge
    r3 = run("image", "dot", str(cfg), "--arch", "x86_64", "-S", "--cache-dir", str(tmp_path / "c"), cwd=tmp_path)
    assert len(re.findall(r'-> "base"', r3.stdout)) == 1 and len(re.findall(r'-> "base"', out)) == 2


def test_resolve_is_lock_and_workdir_moves_first(repo, tmp_path) -> None:  # noqa: F811
    server, root, _ = repo
    work = tmp_path / "w"
    work.mkdir()
    write_config(work, server, root / "repo.rsa.pub")
    r = run("-C", str(work), "image", "resolve", "image.yaml", "--cache-dir", str(tmp_path / "c"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads((work / "image.lock.json").read_text())["version"] == "v1"
    r = run("image", "show-packages", "image.yaml", "--arch", "x86_64", "--workdir", str(work),
            "--cache-dir", str(tmp_path / "c"), cwd=tmp_path)
    assert r.stdout.splitlines() == ["base 1.0-r0", "libfoo 2.1-r0", "app 3.0-r1"], r.stderr
    r = run("-C", str(tmp_path / "nope"), "version", cwd=tmp_path)
    assert r.returncode == 1 and "nope" in r.stderr and "Traceback" not in r.stderr


def test_version(tmp_path) -> None:
    for args in (["--version"], ["version"]):
        r = run(*args, cwd=tmp_path)
        assert r.returncode == 0 and f"distroless {__version__}" in r.stdout
    assert json.loads(run("version", "--json", cwd=tmp_path).stdout)["gitVersion"] == __version__


@pytest.mark.parametrize("flag,value,needle", [
    ("--max-apkindex-decompressed-size", "100", "APKINDEX"),
    ("--max-http-response-size", "100", "cap of 100 bytes"),
    ("--max-apk-data-size", "10", "data member"),
    ("--max-apk-control-size", "10", "control member"),
])
def test_size_flags_reach_the_engine(repo, tmp_path, flag, value, needle) -> None:  # noqa: F811
    server, root, _ = repo
    cfg = write_config(tmp_path, server, root / "repo.rsa.pub")
    common = ["image", "build-minirootfs", str(cfg), "out.tar", "--build-arch", "x86_64"]
    r = run(*common, flag, value, "--cache-dir", str(tmp_path / "c1"), cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert needle in r.stderr, r.stderr
    assert not (tmp_path / "out.tar").exists()
    r = run(*common, f"{flag}=-1", "--cache-dir", str(tmp_path / "c2"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = run(*common, flag, "-2", cwd=tmp_path)
    assert r.returncode == 1 and flag in r.stderr


def test_minirootfs_sbom_path(repo, tmp_path) -> None:  # noqa: F811
    server, root, _ = repo
    cfg = write_config(tmp_path, server, root / "repo.rsa.pub")
    r = run("image", "build-minirootfs", str(cfg), "rootfs.tar", "--build-arch", "x86_64", "--sbom-path", "sboms",
            "--cache-dir", str(tmp_path / "c"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "sboms" / "sbom-x86_64.spdx.json").read_text())
    names = {p["name"] for p in doc["packages"]}
    assert {"base", "libfoo", "app"} <= names
    diff_id = r.stdout.split("diff_id ")[1].strip()
    assert diff_id.split(":")[1] in json.dumps(doc)


@pytest.fixture(scope="module")
def busybox_repo(tmp_path_factory, peers):
    root = tmp_path_factory.mktemp("localrepo")
    repo_dir, pub = make_repo(root, peers.busybox)
    server = StaticServer(repo_dir).start()
    yield server, pub
    server.stop()


def test_publish_local_loads_into_docker_and_writes_sboms(tmp_path, busybox_repo, peers) -> None:
    server, pub = busybox_repo
    (tmp_path / "image.yaml").write_text(image_yaml(server.url, pub, ["busybox"]))
    d = peers.docker26
    tag = f"distroless-local/demo-{os.getpid()}:v1"
    env = {**d.env(), "SOURCE_DATE_EPOCH": "1700000000"}
    r = subprocess.run([sys.executable, "-m", "distroless", "image", "publish", "image.yaml", tag, "--local",
                        "--docker", d.cli, "--sbom-path", "sboms", "--sbom-formats", "spdx,cyclonedx",
                        "--vcs=false", "--cache-dir", str(tmp_path / "cache")],
                       cwd=tmp_path, env=env, capture_output=True, text=True)
    try:
        assert r.returncode == 0, r.stderr
        assert d.run("run", "--rm", "--network", "none", tag).stdout.strip() == "hello from distroless"
        assert sorted(p.name for p in (tmp_path / "sboms").iterdir()) == [
            "sbom-index.cdx.json", "sbom-index.spdx.json", "sbom-x86_64.cdx.json", "sbom-x86_64.spdx.json"]
    finally:
        d.run("rmi", "-f", tag, check=False)


def test_publish_sbom_false_pushes_without_attestation(tmp_path, busybox_repo, peers) -> None:
    server, pub = busybox_repo
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000", "COSIGN_PASSWORD": "pw"}
    dl = [sys.executable, "-m", "distroless"]
    subprocess.run(dl + ["generate-key-pair"], cwd=tmp_path, env=env, check=True, capture_output=True)
    (tmp_path / "image.yaml").write_text(image_yaml(server.url, pub, ["busybox"]))
    tag = f"{peers.registry}/publish/nosbom-{os.getpid()}:v1"
    r = subprocess.run(dl + ["image", "publish", "image.yaml", tag, "--sign-key", "cosign.key", "--sbom=false",
                             "--cache-dir", str(tmp_path / "cache")], cwd=tmp_path, env=env, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    ref = r.stdout.split()[0]
    v = subprocess.run([peers.cosign, "verify", "--key", "cosign.pub", "--insecure-ignore-tlog=true",
                        "--allow-insecure-registry", ref], cwd=tmp_path, capture_output=True, text=True)
    assert v.returncode == 0, v.stderr
    a = subprocess.run([peers.cosign, "verify-attestation", "--key", "cosign.pub", "--type", "spdxjson",
                        "--insecure-ignore-tlog=true", "--allow-insecure-registry", ref], cwd=tmp_path,
                       capture_output=True, text=True)
    assert a.returncode != 0  # --sbom=false: nothing attested
