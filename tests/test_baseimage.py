"""`contents.baseimage` end to end: a base made by our own CLI for two archs, an image on top of it
built from a lock, checked layer by layer, and run on dockerd."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from distroless.apk import index, keys, pack
from distroless.apk.model import Package
from distroless.baseimage import parse_installed
from distroless.rootfs import idb

ARCHS = ("x86_64", "aarch64")
OCI = {"x86_64": "amd64", "aarch64": "arm64"}
SDE = "1700000000"


def dl(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SOURCE_DATE_EPOCH": SDE}
    return subprocess.run([sys.executable, "-m", "distroless", *args], cwd=cwd, capture_output=True, text=True, env=env)


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert r.returncode == 0, r.stderr
    return r


def _tree(root: Path, files: dict[str, bytes | str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data.encode() if isinstance(data, str) else data)
    return root


@dataclass
class Built:
    root: Path
    base_layout: Path
    top_layout: Path
    top_tar: Path
    lock: dict


@pytest.fixture(scope="module")
def built(tmp_path_factory, peers) -> Built:
    root = tmp_path_factory.mktemp("baseimage")
    keys.write_keypair(root / "repo.rsa", keys.generate(2048))
    key = keys.load_private(root / "repo.rsa")
    trees = root / "trees"
    bb = _tree(trees / "busybox", {})
    (bb / "bin").mkdir()
    shutil.copy(peers.busybox, bb / "bin/busybox")
    (bb / "bin/busybox").chmod(0o755)
    (bb / "bin/sh").symlink_to("busybox")
    specs = [
        (_tree(trees / "layout", {"etc/os-release": 'ID=testos\nNAME="Test OS"\nVERSION_ID=1\n',
                                  "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n", "etc/group": "root:x:0:\n"}),
         Package(name="test-layout", version="1.0-r0", license="MIT", origin="test-layout")),
        (bb, Package(name="busybox", version="1.36.1-r0", license="GPL-2.0-only", depends=["test-layout"],
                     provides=["/bin/sh"])),
        (_tree(trees / "base-tool", {"usr/share/base/base.txt": "from the base\n"}),
         Package(name="base-tool", version="1.0-r0", license="MIT", depends=["busybox"])),
        (_tree(trees / "top-app", {"usr/share/top/top.txt": "from the top\n"}),
         Package(name="top-app", version="2.0-r0", license="MIT", depends=["busybox", "base-tool"])),
    ]
    for arch in ARCHS:
        out = root / "repo" / arch
        out.mkdir(parents=True)
        made = [pack.pack(tree, replace(meta, arch=arch), out / f"{meta.name}-{meta.version}.apk",
                          signing_key=key, source_date_epoch=1600000000).package for tree, meta in specs]
        (out / "APKINDEX.tar.gz").write_bytes(index.build(made, signing_key=key))
    contents = f"  repositories: [{root / 'repo'}]\n  keyring: [{root / 'repo.rsa.pub'}]\n"

    # the base: accounts, a chowned path, an entrypoint; both archs, as an OCI layout
    (root / "base.yaml").write_text(
        f"contents:\n{contents}  packages: [base-tool]\n"
        "entrypoint:\n  command: /bin/busybox echo hello from the base\n"
        "accounts:\n  run-as: app\n  users: [{username: app, uid: 1000}]\n  groups: [{groupname: app, gid: 1000}]\n"
        "paths:\n  - {path: /srv/data, type: directory, permissions: 0o750, uid: 1000, gid: 1000}\n"
        "archs: [x86_64, aarch64]\n")
    (root / "base").mkdir()
    ok(dl("image", "build", "base.yaml", "test/base:1", "base", "--cache-dir", str(root / "cache"),
          "--sbom-path", "sbom-base", cwd=root))
    # the base's metadata: its installed database per arch, taken from its own layer
    for arch in ARCHS:
        (root / "meta" / arch).mkdir(parents=True)
        (root / "meta" / arch / "APKINDEX").write_bytes(
            layer_files(root / "base", image_of(root / "base", OCI[arch])["layers"][-1])["usr/lib/apk/db/installed"][1])

    (root / "top.yaml").write_text(
        f"contents:\n  baseimage:\n    image: base\n    apkindex: meta\n{contents}  packages: [top-app]\n"
        "archs: [x86_64, aarch64]\n")
    ok(dl("image", "lock", "top.yaml", "--cache-dir", str(root / "cache"), cwd=root))
    (root / "top").mkdir()
    for out in ("top", "top.tar"):
        ok(dl("image", "build", "top.yaml", "test/top:1", out, "--lockfile", "top.lock.json",
              "--cache-dir", str(root / "cache"), "--sbom-path", "sbom-top", cwd=root))
    return Built(root, root / "base", root / "top", root / "top.tar", json.loads((root / "top.lock.json").read_text()))


def blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()


def image_of(layout: Path, arch: str) -> dict:
    """{"manifest", "config", "layers"} of the image for an OCI arch in a layout."""
    idx = json.loads((layout / "index.json").read_text())
    (desc,) = [m for m in idx["manifests"] if m["platform"]["architecture"] == arch]
    manifest = json.loads(blob(layout, desc["digest"]))
    return {"manifest": manifest, "config": json.loads(blob(layout, manifest["config"]["digest"])),
            "layers": manifest["layers"]}


def layer_files(layout: Path, layer: dict) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    out = {}
    with tarfile.open(fileobj=io.BytesIO(blob(layout, layer["digest"]))) as tf:
        for m in tf.getmembers():
            out[m.name] = (m, tf.extractfile(m).read() if m.isreg() else b"")
    return out


@pytest.mark.parametrize("arch", ARCHS)
def test_base_layers_first_and_unchanged(built: Built, arch: str) -> None:
    base, top = image_of(built.base_layout, OCI[arch]), image_of(built.top_layout, OCI[arch])
    n = len(base["layers"])
    assert top["layers"][:n] == base["layers"] and len(top["layers"]) == n + 1
    assert top["config"]["rootfs"]["diff_ids"][:n] == base["config"]["rootfs"]["diff_ids"]
    assert len(top["config"]["rootfs"]["diff_ids"]) == n + 1
    assert top["config"]["history"][:n] == base["config"]["history"]
    assert top["config"]["architecture"] == OCI[arch]
    # the base's run-time settings are kept; the environment is apko's defaults
    assert top["config"]["config"]["Entrypoint"] == base["config"]["config"]["Entrypoint"]
    assert top["config"]["config"]["User"] == "1000"
    for layer in base["layers"]:
        assert blob(built.top_layout, layer["digest"]) == blob(built.base_layout, layer["digest"])


@pytest.mark.parametrize("arch", ARCHS)
def test_files_of_both_with_their_owners_and_no_reinstall(built: Built, arch: str) -> None:
    base, top = image_of(built.base_layout, OCI[arch]), image_of(built.top_layout, OCI[arch])
    lower = layer_files(built.top_layout, top["layers"][0])
    upper = layer_files(built.top_layout, top["layers"][-1])
    assert lower["usr/share/base/base.txt"][1] == b"from the base\n"
    assert (lower["home/app"][0].uid, lower["srv/data"][0].uid, lower["srv/data"][0].gid) == (1000, 1000, 1000)
    assert upper["usr/share/top/top.txt"][1] == b"from the top\n"
    assert (upper["usr/share/top/top.txt"][0].uid, upper["usr/share/top/top.txt"][0].gid) == (0, 0)
    # nothing of the base's packages is installed again, and accounts are left to the base
    assert not any(p.startswith(("usr/share/base", "bin/")) for p in upper)
    assert "etc/passwd" not in upper and "home/app" not in upper
    assert [p["name"] for p in built.lock["contents"]["packages"] if p["architecture"] == arch] == ["top-app"]
    # the installed database of the new layer describes the union, base first
    records = idb.parse(upper["usr/lib/apk/db/installed"][1].decode(), "installed")
    base_names = [r.package.name for r in parse_installed(lower["usr/lib/apk/db/installed"][1].decode(), "b")]
    assert base_names == ["test-layout", "busybox", "base-tool"]
    assert [r.package.name for r in records] == base_names + ["top-app"]
    world = upper["etc/apk/world"][1].decode().split()
    assert world == ["base-tool=1.0-r0", "busybox=1.36.1-r0", "test-layout=1.0-r0", "top-app=2.0-r0"]
    apko = json.loads(upper["etc/apko.json"][1])
    assert apko["contents"]["packages"] == ["top-app=2.0-r0"] and apko["contents"]["baseimage"] == {
        "image": "base", "apkindex": "meta"}


def test_build_with_base_and_no_lock_fails_as_apko(built: Built) -> None:
    r = dl("image", "build", "top.yaml", "test/top:1", "nolock.tar", "--cache-dir", str(built.root / "cache"),
           cwd=built.root)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "building with base image is supported only with a lockfile" in r.stderr
    assert not (built.root / "nolock.tar").exists()


def test_base_metadata_is_read_as_apko_reads_it(tmp_path: Path) -> None:
    """apko's ParseInstalled: M/a/Z lost, `i:` wrapped again, an unterminated last record dropped."""
    text = ("P:a\nV:1\nA:x86_64\ni:[]\nD:\nF:etc\nM:501:20:0755\nR:x\na:501:20:0644\nZ:Q1abc=\n"
            "F:orphan/child\nR:y\n\nP:b\nV:2\n")
    (rec,) = parse_installed(text, "meta")
    assert rec.package.name == "a" and rec.package.install_if == [] and rec.package.depends == []
    rendered = idb.render([rec.record]).decode()
    assert "i:[[]]\n" in rendered and "F:etc\nR:x\n" in rendered
    assert "M:" not in rendered and "a:" not in rendered and "Z:" not in rendered and "orphan" not in rendered


def test_runs_on_dockerd(built: Built, peers) -> None:
    docker = peers.docker26
    loaded = docker.run("load", "-i", str(built.top_tar))
    tag = "test/top:1-amd64"
    assert tag in loaded.stdout + loaded.stderr
    try:
        out = docker.run("run", "--rm", "--network", "none", "--entrypoint", "/bin/busybox", tag,
                         "cat", "/usr/share/base/base.txt", "/usr/share/top/top.txt")
        assert out.stdout == "from the base\nfrom the top\n"
        assert docker.run("run", "--rm", "--network", "none", tag).stdout.strip() == "hello from the base"
        # (as root: /srv, made by the same mutation, is 0750 root-owned, as in apko)
        assert docker.run("run", "--rm", "--network", "none", "--user", "0", "--entrypoint", "/bin/busybox", tag,
                          "stat", "-c", "%u:%g", "/srv/data").stdout.strip() == "1000:1000"
    finally:
        docker.run("rmi", "-f", tag, check=False)


def test_front_doors_that_cannot_take_a_base_say_so(built: Built) -> None:
    """Bazel and BuildKit build layers one at a time: they refuse a base by name, never ignore it."""
    import pytest as _pytest

    from distroless.baseimage import refuse
    from distroless.config import load_image_config
    from distroless.errors import ConfigError

    loaded = load_image_config("top.yaml", cwd=built.root)
    for door in ("the Bazel rules", "the BuildKit frontend"):
        with _pytest.raises(ConfigError, match=f"contents.baseimage is not supported by {door}"):
            refuse(loaded, door)
    # and both front doors run the check on every configuration they load
    root = Path(__file__).resolve().parents[1] / "distroless"
    assert 'baseimage.refuse(loaded, "the Bazel rules")' in (root / "steps.py").read_text()
    assert 'baseimage.refuse(loaded, "the BuildKit frontend")' in (root / "buildkit" / "frontend.py").read_text()
    r = dl("image", "build-minirootfs", "top.yaml", "rootfs.tar", "--arch", "x86_64", cwd=built.root)
    assert r.returncode == 1 and "contents.baseimage is not supported by build-minirootfs" in r.stderr
