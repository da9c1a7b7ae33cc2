"""The embedded example end to end: `make demo`'s job, then its image on the real dockerd."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("demo")
    shutil.copytree(ROOT / "examples", work / "examples")
    env = {**os.environ, "COSIGN_PASSWORD": "demo"}
    r = subprocess.run([sys.executable, str(work / "examples" / "demo.py")], cwd=work, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "== demo summary ==" in r.stdout and "verified" in r.stdout
    return work


def test_demo_rebuilds_byte_identical_packages(demo, tmp_path) -> None:
    out = demo / "out" / "demo" / "packages" / "x86_64"
    first = {p.name: p.read_bytes() for p in out.glob("*.apk")}
    assert set(first) == {"demo-baselayout-0.1.0-r0.apk", "demo-hello-0.1.0-r0.apk", "ca-certificates-bundle-0.1.0-r0.apk"}
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    r = subprocess.run([sys.executable, "-m", "distroless", "package", "build", "--host-toolchain",
                        str(demo / "examples/recipes/demo-hello.yaml"), "--source-dir", str(demo / "examples/recipes"),
                        "--out-dir", str(tmp_path), "--signing-key", str(demo / "out/demo/demo.rsa")],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "x86_64/demo-hello-0.1.0-r0.apk").read_bytes() == first["demo-hello-0.1.0-r0.apk"]


@pytest.fixture(scope="module")
def demo_tar(demo, tmp_path_factory) -> Path:
    """The demo image as a docker-archive, built once and loaded into each daemon."""
    tmp = tmp_path_factory.mktemp("demo-tar")
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    r = subprocess.run([sys.executable, "-m", "distroless", "image", "build", "examples/image.yaml",
                        "distroless/demo:test", str(tmp / "demo.tar"), "--cache-dir", str(tmp / "cache"),
                        "--sbom-path", str(tmp)], cwd=demo, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return tmp / "demo.tar"


@pytest.mark.parametrize("daemon", ["docker20", "docker26"])
def test_demo_image_runs_on_dockerd(demo_tar, peers, daemon) -> None:
    docker = getattr(peers, daemon)
    docker.run("load", "-i", str(demo_tar))
    try:
        out = docker.run("run", "--rm", "--network", "none", "distroless/demo:test-amd64")
        # run-as: nonroot became the numeric uid from the base layout's passwd
        assert out.stdout.strip() == "Hello from distroless! (uid 65532)"
    finally:
        docker.run("rmi", "-f", "distroless/demo:test-amd64", check=False)


def test_demo_image_digest_unchanged(tmp_path) -> None:
    """The demo image, its packages signed with the committed example key (so the digest does not
    depend on a fresh key), against the digest recorded before the step refactor."""
    from regression import check

    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    out = tmp_path / "out" / "demo"
    out.mkdir(parents=True)
    key = ROOT / "examples" / "bazel" / "demo.rsa"
    shutil.copy(f"{key}.pub", out / "demo.rsa.pub")
    for recipe in ("demo-baselayout", "ca-certificates-bundle", "demo-hello"):
        r = subprocess.run([sys.executable, "-m", "distroless", "package", "build", "--host-toolchain",
                            str(ROOT / "examples/recipes" / f"{recipe}.yaml"), "--source-dir",
                            str(ROOT / "examples/recipes"), "--out-dir", str(out / "packages"), "--signing-key", str(key)],
                           env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    layout = tmp_path / "layout"
    layout.mkdir()
    r = subprocess.run([sys.executable, "-m", "distroless", "image", "build", str(ROOT / "examples/image.yaml"),
                        "distroless/demo:latest", str(layout), "--cache-dir", str(tmp_path / "cache"),
                        "--sbom-path", str(tmp_path / "sbom"), "--offline"], cwd=tmp_path, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    check("demo_image_index", "sha256:" + hashlib.sha256((layout / "index.json").read_bytes()).hexdigest())
