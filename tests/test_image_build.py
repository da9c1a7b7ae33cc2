"""`image build` end to end, checked by real peers: skopeo, umoci, docker load + run."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from distroless.rootfs import idb
from httpserver import StaticServer
from imagerepo import image_yaml, make_repo
from sbomcheck import cyclonedx_problem, spdx_problems


def dl(*args: str, cwd: Path, sde: str = "1700000000") -> subprocess.CompletedProcess:
    env = {**os.environ, "SOURCE_DATE_EPOCH": sde}
    return subprocess.run([sys.executable, "-m", "distroless", *args], cwd=cwd, capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def served(tmp_path_factory, peers):
    root = tmp_path_factory.mktemp("imgrepo")
    repo, pub = make_repo(root, peers.busybox)
    server = StaticServer(repo).start()
    yield server, pub
    server.stop()


@pytest.fixture(scope="module")
def served_two_archs(tmp_path_factory, peers):
    root = tmp_path_factory.mktemp("imgrepo2")
    repo, pub = make_repo(root, peers.busybox, ("x86_64", "aarch64"))
    server = StaticServer(repo).start()
    yield server, pub
    server.stop()


def build(tmp: Path, served, out: str, packages=("busybox",), sde: str = "1700000000", extra: str = "",
          args: tuple[str, ...] = ()):
    server, pub = served
    (tmp / "image.yaml").write_text(image_yaml(server.url, pub, list(packages), extra))
    if not out.endswith(".tar"):
        (tmp / out).mkdir(exist_ok=True)
    return dl("image", "build", "image.yaml", "test/demo:latest", out, "--cache-dir", str(tmp / "cache"),
              "--sbom-path", "sbom", *args, cwd=tmp, sde=sde)


def index_digest(stdout: str) -> str:
    return stdout.strip().splitlines()[-1].split("index ")[-1]


BOTH_SBOMS = ("--sbom-formats", "spdx,cyclonedx")


@pytest.fixture(scope="module")
def layout_build(tmp_path_factory, served) -> tuple[Path, subprocess.CompletedProcess]:
    """The busybox image as an OCI layout with both SBOM formats, built once for the tests that
    read it (independent readers, validators, and the first of the reproducibility builds)."""
    tmp = tmp_path_factory.mktemp("layout-build")
    r = build(tmp, served, "layout", args=BOTH_SBOMS)
    assert r.returncode == 0, r.stderr
    return tmp, r


@pytest.fixture(scope="module")
def image_tar(tmp_path_factory, served) -> Path:
    """The same image as a docker-archive, built once and loaded into each daemon."""
    tmp = tmp_path_factory.mktemp("tar-build")
    r = build(tmp, served, "image.tar")
    assert r.returncode == 0, r.stderr
    return tmp / "image.tar"


def test_layout_read_by_skopeo_and_umoci(tmp_path, layout_build, peers) -> None:
    built, _ = layout_build
    inspect = json.loads(subprocess.run([peers.skopeo, "inspect", "--raw", f"oci:{built / 'layout'}"],
                                        capture_output=True, text=True, check=True).stdout)
    # skopeo picks the one platform manifest out of the index
    assert inspect["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert len(inspect["layers"]) == 1
    subprocess.run([peers.skopeo, "copy", f"oci:{built / 'layout'}", f"oci:{tmp_path / 'copy'}:demo"],
                   capture_output=True, text=True, check=True)
    subprocess.run([peers.umoci, "unpack", "--image", f"{tmp_path / 'copy'}:demo", str(tmp_path / "bundle")],
                   capture_output=True, text=True, check=True)
    rootfs = tmp_path / "bundle" / "rootfs"
    records = idb.parse((rootfs / "usr/lib/apk/db/installed").read_text(), "installed")
    assert [r.package.name for r in records] == ["test-base", "busybox"]
    checked = 0
    for rec in records:
        for d in rec.dirs:
            assert (rootfs / d.path).is_dir()
            for f in d.files:
                path = rootfs / d.path / f.name
                assert path.exists() or path.is_symlink(), path
                if f.checksum and path.is_file() and not path.is_symlink():
                    digest = "Q1" + base64.b64encode(hashlib.sha1(path.read_bytes()).digest()).decode()
                    assert digest == f.checksum, path
                    checked += 1
    assert checked >= 4
    sbom = json.loads((built / "sbom" / "sbom-x86_64.spdx.json").read_text())
    names = {p["name"] for p in sbom["packages"]}
    assert {"test-base", "busybox"} <= names


def test_multi_arch_layout_copied_by_skopeo(tmp_path, served_two_archs, peers) -> None:
    """skopeo reads and copies each platform of a two-arch layout, checking every blob against its
    digest (containers/image verifies while copying). Our index.json lists the platform manifests
    without names, as apko's does; Debian 12's skopeo cannot pick one by index, so a copy of the
    layout names them (`org.opencontainers.image.ref.name`) and nothing else changes."""
    server, pub = served_two_archs
    yaml = image_yaml(server.url, pub, ["busybox"]).replace("archs: [x86_64]\n", "archs: [x86_64, aarch64]\n")
    (tmp_path / "image.yaml").write_text(yaml)
    (tmp_path / "layout").mkdir()
    r = dl("image", "build", "image.yaml", "test/demo:latest", "layout", "--cache-dir", str(tmp_path / "cache"),
           "--sbom-path", "sbom", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    named = tmp_path / "named"
    shutil.copytree(tmp_path / "layout", named)
    index = json.loads((named / "index.json").read_text())
    archs = [m["platform"]["architecture"] for m in index["manifests"]]
    assert archs == ["amd64", "arm64"]
    for m in index["manifests"]:
        m.setdefault("annotations", {})["org.opencontainers.image.ref.name"] = m["platform"]["architecture"]
    (named / "index.json").write_text(json.dumps(index))
    for arch in archs:
        info = subprocess.run([peers.skopeo, "inspect", f"oci:{named}:{arch}"], capture_output=True, text=True)
        assert info.returncode == 0, info.stderr
        assert json.loads(info.stdout)["Architecture"] == arch
        copy = subprocess.run([peers.skopeo, "copy", f"oci:{named}:{arch}", f"dir:{tmp_path / ('copy-' + arch)}"],
                              capture_output=True, text=True)
        assert copy.returncode == 0, copy.stderr


def test_sboms_pass_independent_validators(layout_build) -> None:
    """The SBOMs of a real build, both formats: spdx-tools and cyclonedx-python-lib accept them."""
    built, _ = layout_build
    docs = sorted(p.name for p in (built / "sbom").iterdir())
    assert docs == ["sbom-index.cdx.json", "sbom-index.spdx.json", "sbom-x86_64.cdx.json", "sbom-x86_64.spdx.json"]
    for name in docs:
        raw = (built / "sbom" / name).read_bytes()
        if name.endswith(".spdx.json"):
            assert spdx_problems(raw) == [], name
        else:
            assert cyclonedx_problem(raw) is None, name


@pytest.mark.parametrize("daemon", ["docker20", "docker26"])
def test_docker_load_and_run(image_tar, peers, daemon) -> None:
    docker = getattr(peers, daemon)
    loaded = docker.run("load", "-i", str(image_tar))
    assert "test/demo:latest-amd64" in loaded.stdout + loaded.stderr
    try:
        out = docker.run("run", "--rm", "--network", "none", "test/demo:latest-amd64")
        assert out.stdout.strip() == "hello from distroless"
    finally:
        docker.run("rmi", "-f", "test/demo:latest-amd64", check=False)


def test_reproducible_across_dirs_and_times(tmp_path, served, layout_build) -> None:
    a, ra = layout_build  # built earlier, in another directory
    b, c = tmp_path / "b" / "deeper", tmp_path / "c"
    for d in (b, c):
        d.mkdir(parents=True)
    os.utime(served[1], None)  # wall-clock time moves on; nothing should depend on it
    rb = build(b, served, "layout", args=BOTH_SBOMS)
    rc = build(c, served, "layout", sde="1700000001", args=BOTH_SBOMS)
    assert rb.returncode == rc.returncode == 0, rb.stderr + rc.stderr
    assert index_digest(ra.stdout) == index_digest(rb.stdout)
    assert (a / "layout/index.json").read_bytes() == (b / "layout/index.json").read_bytes()
    assert index_digest(rc.stdout) != index_digest(ra.stdout)


def test_multi_layer_origin(tmp_path, served, peers) -> None:
    r = build(tmp_path, served, "layout", extra="layering:\n  strategy: origin\n  budget: 5\n")
    assert r.returncode == 0, r.stderr
    index = json.loads((tmp_path / "layout/index.json").read_text())
    manifest = json.loads((tmp_path / "layout/blobs/sha256" / index["manifests"][0]["digest"][7:]).read_text())
    assert len(manifest["layers"]) == 3  # busybox, test-base, top
    names, dbs = [], []
    for layer in manifest["layers"]:
        with tarfile.open(tmp_path / "layout/blobs/sha256" / layer["digest"][7:]) as tf:
            names.append(set(tf.getnames()))
            dbs.append(tf.extractfile("usr/lib/apk/db/installed").read().decode())
    assert "bin/busybox" in names[0] and "etc/os-release" in names[1]
    assert "usr/lib/apk/db/installed" in names[2] and "dev/null" in names[2]
    # each group layer's database holds exactly its packages' stanzas of the full database:
    # every file once, as apko's per-layer databases (a second pass once listed files twice)
    full = {re.search(r"^P:(.*)$", s, re.M).group(1): s + "\n\n" for s in dbs[2].strip("\n").split("\n\n")}
    for db, pkg in ((dbs[0], "busybox"), (dbs[1], "test-base")):
        assert db == full[pkg], pkg
        files = [line for line in db.splitlines() if line.startswith("R:")]
        assert files and len(files) == len(set(files)), pkg


def test_conflict_stops_build_and_leaves_nothing(tmp_path, served) -> None:
    r = build(tmp_path, served, "image.tar", packages=("busybox", "clash"))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "/etc/os-release" in r.stderr and "test-base" in r.stderr and "clash" in r.stderr
    assert not (tmp_path / "image.tar").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".image.tar")]


def test_invalid_config_is_located(tmp_path, served) -> None:
    server, pub = served
    (tmp_path / "image.yaml").write_text(image_yaml(server.url, pub, ["busybox"]) + "entrypoynt: {}\n")
    r = dl("image", "build", "image.yaml", "t:1", "x.tar", cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "image.yaml:8:1" in r.stderr and "entrypoynt" in r.stderr


def test_package_writing_outside_the_root_stops_the_build(tmp_path) -> None:
    """A signed repository whose package carries `../` entries: the build names the package and
    the entry, and leaves no output (the chain of trust does not make bad tars safe)."""
    import hashlib

    from distroless.apk import index, keys
    from distroless.apk.gzmember import gzip_member
    from distroless.apk.model import Package
    from distroless.apk.package import q1
    from distroless.tarball import END_OF_ARCHIVE, Header, encode_header, padding

    def entry(name: str, data: bytes) -> bytes:
        return encode_header(Header(name, size=len(data))) + data + padding(len(data))

    data = gzip_member(entry("../../etc/evil", b"x") + END_OF_ARCHIVE)
    info = f"pkgname = evil\npkgver = 1-r0\narch = x86_64\nsize = 1\ndatahash = {hashlib.sha256(data).hexdigest()}\n"
    control = gzip_member(entry(".PKGINFO", info.encode()))
    repo = tmp_path / "repo" / "x86_64"
    repo.mkdir(parents=True)
    (repo / "evil-1-r0.apk").write_bytes(control + data)
    keys.write_keypair(tmp_path / "k.rsa", keys.generate(2048))
    pkg = Package(name="evil", version="1-r0", arch="x86_64", checksum=q1(hashlib.sha1(control).digest()),
                  size=len(control + data), installed_size=1)
    (repo / "APKINDEX.tar.gz").write_bytes(index.build([pkg], signing_key=keys.load_private(tmp_path / "k.rsa")))
    (tmp_path / "image.yaml").write_text(
        f"contents:\n  repositories: [{tmp_path / 'repo'}]\n  keyring: [{tmp_path / 'k.rsa.pub'}]\n"
        "  packages: [evil]\narchs: [x86_64]\n")
    r = dl("image", "build", "image.yaml", "t:1", "out.tar", "--cache-dir", str(tmp_path / "cache"), cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "evil-1-r0.apk" in r.stderr and "../../etc/evil" in r.stderr and "escapes the root" in r.stderr
    assert not (tmp_path / "out.tar").exists() and not list(tmp_path.glob(".out.tar*"))
    assert not (tmp_path.parent / "etc" / "evil").exists()
