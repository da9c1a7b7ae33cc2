"""Build the BuildKit frontend image and push it to a registry — the recipe of the image.

Three layers, written by the project's own OCI code:
  1. a Debian root filesystem with python3 (mmdebstrap, from the machine's configured mirror);
  2. the engine's Python dependencies as wheels for that python (pip --target, binary only);
  3. the `distroless` package itself (changes most often, so it is the top layer).
The image runs `python3 -m distroless.buildkit.frontend`, declares no network and the frontend
caps buildx forwards. Production images are built the same way (pointing `--suite`/`--mirror` at a
pinned snapshot); see README "Build with docker buildx".

Usage: distroless frontend build --push (or python frontend/build.py --push) 127.0.0.1:5000/distroless/frontend:dev [--work DIR]
"""

from __future__ import annotations

import argparse
import compileall
import fcntl
import hashlib
import json
import os
import platform
import py_compile
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

try:  # installed (`distroless frontend build`), or run from a checkout
    import distroless
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import distroless

from distroless.fsutil import atomic_write  # noqa: E402
from distroless.oci.image import Layer, Platform, apko_config, build_image, build_index, write_layer  # noqa: E402
from distroless.oci.layout import write_layout  # noqa: E402
from distroless.sign.push import push_layout  # noqa: E402
from distroless.registry.reference import parse_reference  # noqa: E402
from distroless.rootfs.importdir import import_dir  # noqa: E402
from distroless.rootfs.layer import iter_tar  # noqa: E402
from distroless.rootfs.tree import Node, TarRef, Tree  # noqa: E402

DEPS = ["cryptography>=41", "requests>=2.31", "pyyaml>=6.0", "isal>=1.6", "zstandard>=0.22", "pynacl>=1.5",
        "pyelftools>=0.30", "grpcio>=1.60", "protobuf>=7.35.1", "google-re2>=1.1"]
CAPS = "moby.buildkit.frontend.inputs,moby.buildkit.frontend.subrequests,moby.buildkit.frontend.contexts"
APP = "opt/distroless/app"
SITE = "opt/distroless/site"
EPOCH = int(os.environ.get("SOURCE_DATE_EPOCH") or 0)


def codename() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip('"')
    raise SystemExit("frontend/build.py: cannot tell the Debian suite from /etc/os-release")


def ensure_mmdebstrap(work: Path) -> None:
    """Install mmdebstrap if missing; a lock beside the work directory, because two builds (the
    frontend's and a toolchain's, as the test suite starts them) would race for apt's lock."""
    work.parent.mkdir(parents=True, exist_ok=True)
    with open(work.parent / ".distroless-apt.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if shutil.which("mmdebstrap") is not None:
            return
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if subprocess.run(["apt-get", "install", "-y", "-qq", "mmdebstrap"], env=env).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
            subprocess.run(["apt-get", "install", "-y", "-qq", "mmdebstrap"], check=True, env=env)


def base_rootfs(work: Path, suite: str, include: str = "python3,ca-certificates", name: str = "") -> Path:
    """Debian minbase + python3 (or `include`), built once per suite and kept in the work directory."""
    base = work / f"base-{suite}{name}"
    if (base / ".complete").exists():
        return base
    ensure_mmdebstrap(work)
    tmp = work / f"base-{suite}{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    # no mirror argument: mmdebstrap uses the machine's own apt sources
    subprocess.run(["mmdebstrap", "--variant=minbase", f"--include={include}",
                    "--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/man/*",
                    "--dpkgopt=path-exclude=/usr/share/locale/*", "--skip=cleanup/reproducible",
                    suite, str(tmp)], check=True, stdout=sys.stderr)
    for d in ("var/cache/apt", "var/lib/apt/lists", "var/log"):
        shutil.rmtree(tmp / d, ignore_errors=True)
        (tmp / d).mkdir(parents=True, exist_ok=True)
    shutil.rmtree(base, ignore_errors=True)
    tmp.rename(base)
    (base / ".complete").write_text("")
    return base


def python_version(base: Path) -> str:
    target = os.readlink(base / "usr/bin/python3")  # e.g. python3.11
    return target.replace("python", "")


def site_packages(work: Path, pyver: str) -> Path:
    key = hashlib.sha256(("\n".join(DEPS) + pyver + platform.machine()).encode()).hexdigest()[:16]
    site = work / f"site-{key}"
    if (site / ".complete").exists():
        return site
    tmp = work / f"site-{key}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    arch = platform.machine()
    plats = [f"manylinux_2_{v}_{arch}" for v in (36, 34, 31, 28, 27, 24, 17)] + [f"manylinux2014_{arch}"]
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target", str(tmp), "--only-binary=:all:",
                    "--python-version", pyver, "--implementation", "cp",
                    *[a for p in plats for a in ("--platform", p)], *DEPS], check=True, stdout=sys.stderr)
    shutil.rmtree(site, ignore_errors=True)
    tmp.rename(site)
    (site / ".complete").write_text("")
    return site


def app_tree(work: Path) -> Path:
    # one per run: builds from several checkouts may share the work folder
    app = Path(tempfile.mkdtemp(prefix="app.", dir=work))
    # the package as installed (checkout or wheel), without the data the image does not need
    shutil.copytree(Path(distroless.__file__).resolve().parent, app / "distroless",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "_data"))
    return app


def compile_app(app: Path, pyver: str) -> None:
    """The `distroless` package's bytecode, when this interpreter is the image's Python version
    (a .pyc is only read by the version that wrote it); `restamp_bytecode` then fits it to the
    layer's timestamps."""
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == pyver:
        compileall.compile_dir(app, quiet=2, ddir=f"/{APP}", workers=1,
                               invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)


PYC_HEADER = 16  # magic, flags, source mtime, source size (importlib._bootstrap_external)


def restamp_bytecode(tree: Tree, mtime: int) -> int:
    """Python trusts a timestamp-based .pyc only if it records its source's mtime and size; the
    layer gives every file `mtime`, which would make every .pyc stale, and the frontend would
    compile each module it imports on every build (~0.5 s of CPU). A .pyc that matches its
    source as it is on disk gets `mtime` recorded instead; any other is left as it is (Python
    ignores it). Returns how many were re-stamped."""
    count = 0
    for path, node in tree.walk():
        parent, _, name = path.rpartition("/")
        if node.type != "reg" or not parent.endswith("__pycache__") or not name.endswith(".pyc"):
            continue
        src = tree.get(f"{parent.removesuffix('__pycache__')}{name.split('.', 1)[0]}.py")
        if src is None or src.type != "reg" or not isinstance(src.content, TarRef):
            continue
        data = node.data()
        if len(data) < PYC_HEADER or int.from_bytes(data[4:8], "little") != 0:  # hash-based: no stamp
            continue
        st = src.content.path.stat()
        if data[8:16] != _stamp(int(st.st_mtime), st.st_size):
            continue
        restamped = data[:8] + _stamp(mtime, st.st_size) + data[PYC_HEADER:]
        _set_content(node, restamped)
        count += 1
    return count


def _stamp(mtime: int, size: int) -> bytes:
    return (mtime & 0xFFFFFFFF).to_bytes(4, "little") + (size & 0xFFFFFFFF).to_bytes(4, "little")


def _set_content(node: Node, data: bytes) -> None:
    node.content, node.size, node.sha1 = data, len(data), hashlib.sha1(data).hexdigest()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def layer_of(tree: Tree, blobs: Path) -> Layer:
    """The tree's layer. The base and the wheels change rarely and take most of the compression
    time, so a blob made earlier from the same tar (same diff_id) is reused; its bytes are
    hashed again before they are trusted."""
    def tar():
        return iter_tar(tree.walk(), {0: "root"}, {0: "root"})

    h = hashlib.sha256()
    for chunk in tar():
        h.update(chunk)
    diff_id = "sha256:" + h.hexdigest()
    record = blobs / f"diff-{diff_id[7:]}.json"
    if record.exists():
        known = json.loads(record.read_text())
        blob = blobs / known["digest"][7:]
        if blob.is_file() and blob.stat().st_size == known["size"] and _sha256_file(blob) == known["digest"]:
            return Layer(known["digest"], known["size"], diff_id, blob, known["media_type"])
    layer = write_layer(tar(), blobs)
    assert layer.diff_id == diff_id, (layer.diff_id, diff_id)
    atomic_write(record, json.dumps({"digest": layer.digest, "size": layer.size,
                                     "media_type": layer.media_type}).encode())
    return layer


def build(work: Path) -> tuple[Path, str]:
    suite = codename()
    base = base_rootfs(work, suite)
    pyver = python_version(base)
    site = site_packages(work, pyver)
    app = app_tree(work)
    compile_app(app, pyver)
    blobs = work / "blobs"
    blobs.mkdir(exist_ok=True)
    layers = []
    try:
        for src, prefix in ((base, ""), (site, SITE), (app, APP)):
            tree = import_dir(src, prefix=prefix, mtime=EPOCH)
            for marker in (".complete",):
                if tree.get(f"{prefix}/{marker}".strip("/")) is not None:
                    tree.remove(f"{prefix}/{marker}".strip("/"))
            restamp_bytecode(tree, EPOCH)
            layers.append(layer_of(tree, blobs))
    finally:
        shutil.rmtree(app, ignore_errors=True)
    plat = Platform.from_arch({"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine()))
    labels = {"moby.buildkit.frontend.network.none": "true", "moby.buildkit.frontend.caps": CAPS}
    config = apko_config(
        platform=plat, diff_ids=[l.diff_id for l in layers], created=EPOCH, annotations=labels,
        entrypoint_command="python3 -S -m distroless.buildkit.frontend",  # -S: no site (PYTHONPATH has all)
        env={"PYTHONPATH": f"/{APP}:/{SITE}", "PYTHONDONTWRITEBYTECODE": "1"},
        author="distroless", created_by="frontend/build.py",
    )
    image = build_image(config, layers, platform=plat)
    index = build_index([image])
    layout = work / "layout"
    shutil.rmtree(layout, ignore_errors=True)
    layout.mkdir()
    write_layout(layout, index)
    return layout, image.digest


def build_toolchain(work: Path, packages: str) -> Path:
    """A host-toolchain image for the packages mode (`--build-arg DISTROLESS_TOOLCHAIN=REF`):
    Debian minbase plus `packages`, one layer, no command. From the machine's own suite, it has
    the host's compiler versions, so recipes built with it match `package build --host-toolchain`."""
    suite = codename()
    key = hashlib.sha256(packages.encode()).hexdigest()[:12]
    base = base_rootfs(work, suite, include=packages, name=f"-toolchain-{key}")
    blobs = work / "blobs"
    blobs.mkdir(exist_ok=True)
    tree = import_dir(base, mtime=EPOCH)
    tree.remove(".complete")
    layers = [layer_of(tree, blobs)]
    plat = Platform.from_arch({"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine()))
    config = apko_config(platform=plat, diff_ids=[l.diff_id for l in layers], created=EPOCH,
                         author="distroless", created_by="frontend/build.py --toolchain")
    layout = work / f"toolchain-layout-{key}"
    shutil.rmtree(layout, ignore_errors=True)
    layout.mkdir()
    write_layout(layout, build_index([build_image(config, layers, platform=plat)]))
    return layout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--push", help="registry reference to push to, e.g. 127.0.0.1:5000/distroless/frontend:dev")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "distroless-frontend")
    ap.add_argument("--toolchain", metavar="PKG,…", help="build the host-toolchain image with these Debian packages")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.toolchain:
        layout, digest = build_toolchain(args.work, args.toolchain), "toolchain"
    else:
        layout, digest = build(args.work)
    print(f"frontend image: {layout} ({digest})")
    if args.push:
        result = push_layout(layout, parse_reference(args.push))
        print(f"pushed {args.push} -> {result.digest}")


if __name__ == "__main__":
    main()
