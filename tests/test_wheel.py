"""A package users install: `python -m build` gives a wheel that works outside the checkout.

The wheel goes into a fresh venv in a temporary directory (its dependencies come from the
project venv's site-packages through a .pth file, so nothing is downloaded); from a directory
outside the checkout, the installed `distroless` runs the README's quick start (`distroless
demo`, then `image build` with the example's relative paths) and builds and pushes the BuildKit
frontend image from the recipe the wheel carries.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tarfile
import uuid
import zipfile
from pathlib import Path

import pytest

from peers.env import registry_manifest_digest

ROOT = Path(__file__).resolve().parents[1]
FRONTEND_CACHE = Path("/var/cache/distroless-frontend")


def _run(argv, cwd, timeout=600, env=None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env or {k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert proc.returncode == 0, f"{argv} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(the wheel, the fresh venv's bin directory)."""
    work = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", work / "dist", ROOT], cwd=work)
    (wheel,) = (work / "dist").glob("distroless-*.whl")
    venv = work / "venv"
    _run(["python3", "-m", "venv", venv], cwd=work)
    purelib = _run([venv / "bin/python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                   cwd=work).stdout.strip()
    # the dependencies, not the project: the editable finder of .venv is not activated this way
    Path(purelib, "zz-project-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([venv / "bin/python", "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], cwd=work)
    return wheel, venv / "bin"


def test_wheel_carries_examples_and_frontend_recipe(installed):
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for n in ("distroless/_data/examples/image.yaml", "distroless/_data/examples/recipes/demo-hello.yaml",
              "distroless/_data/examples/recipes/src/hello.c", "distroless/_data/frontend/build.py",
              "distroless/melange/pipelines/fetch.yaml", "distroless/rootfs/busybox_paths.txt"):
        assert n in names, n
    assert not any(n.startswith(("tests/", "examples/", "frontend/")) for n in names)


def test_quick_start_outside_the_checkout(installed, tmp_path):
    _, bin_dir = installed
    where = _run([bin_dir / "python", "-c", "import distroless; print(distroless.__file__)"], cwd=tmp_path)
    assert str(ROOT) not in where.stdout and str(bin_dir.parent) in where.stdout
    out = _run([bin_dir / "distroless", "demo", "--dir", "quickstart"], cwd=tmp_path)
    assert "== demo summary ==" in out.stdout and "verified" in out.stdout
    demo = tmp_path / "quickstart"
    # the README's command, with the example's relative paths, from the example's directory
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    _run([bin_dir / "distroless", "image", "build", "examples/image.yaml", "demo:latest", "demo.tar", "--offline"],
         cwd=demo, env=env)
    with tarfile.open(demo / "demo.tar") as tf:
        assert "manifest.json" in tf.getnames()  # a docker archive
    assert (demo / "sbom-x86_64.spdx.json").exists()


def test_frontend_recipe_builds_and_pushes_from_the_wheel(installed, tmp_path, peers):
    _, bin_dir = installed
    work = tmp_path / "frontend-work"
    work.mkdir()
    for cached in (*FRONTEND_CACHE.glob("base-*"), *FRONTEND_CACHE.glob("site-*")):
        (work / cached.name).symlink_to(cached)  # reuse `make frontend`'s Debian base and wheels, read-only
    # and the blobs compressed from them (re-hashed before use): only the wheel's own layer is new
    (work / "blobs").mkdir()
    for blob in (FRONTEND_CACHE / "blobs").glob("*"):
        (work / "blobs" / blob.name).symlink_to(blob)
    ref = f"{peers.registry}/dl-wheel/frontend-{uuid.uuid4().hex[:8]}:v1"
    out = _run([bin_dir / "distroless", "frontend", "build", "--work", work, "--push", ref], cwd=tmp_path, timeout=900)
    assert f"pushed {ref}" in out.stdout
    # the image's top layer is the installed package (not the checkout), without the shipped data
    layout = work / "layout"
    idx = json.loads((layout / "index.json").read_text())
    manifest = json.loads((layout / "blobs/sha256" / idx["manifests"][0]["digest"][7:]).read_text())
    top = layout / "blobs/sha256" / manifest["layers"][-1]["digest"][7:]
    with tarfile.open(top) as tf:
        names = tf.getnames()
    assert "opt/distroless/app/distroless/buildkit/frontend.py" in names
    assert not any("/_data/" in n for n in names)
    digest = out.stdout.strip().rsplit("-> ", 1)[1]
    assert registry_manifest_digest(peers, ref.split("/", 1)[1].rsplit(":", 1)[0], "v1") == digest
