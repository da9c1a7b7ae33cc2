"""A signed APK repository for image tests: a static busybox, a base layout, and a conflicting pair."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from distroless.apk import index, keys, pack
from distroless.apk.model import Package

ARCH = "x86_64"


# RSA PKCS#1 v1.5 signatures are deterministic: with a fixed key, packages and indexes are the
# same bytes every run (their sizes are recorded in the installed database)
FIXED_KEY = Path(__file__).resolve().parents[1] / "examples" / "bazel" / "demo.rsa"


def make_repo(root: Path, busybox: str, archs: tuple[str, ...] = (ARCH,), *, fixed_key: bool = False) -> tuple[Path, Path]:
    """Returns (repository dir, public key path). Every arch gets the same (x86_64) busybox: enough
    for index and layout tests; only the x86_64 image runs. `fixed_key` signs with the example key
    (same bytes every run) instead of a fresh one."""
    if fixed_key:
        shutil.copy(FIXED_KEY, root / "repo.rsa")
        shutil.copy(f"{FIXED_KEY}.pub", root / "repo.rsa.pub")
    else:
        keys.write_keypair(root / "repo.rsa", keys.generate(2048))
    key = keys.load_private(root / "repo.rsa")
    repo = root / "repo"
    trees = root / "trees"
    base = trees / "base"
    (base / "etc").mkdir(parents=True)
    (base / "etc/os-release").write_text('ID=testos\nNAME="Test OS"\nVERSION_ID=1.0\n')
    (base / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (base / "etc/group").write_text("root:x:0:\n")
    bb = trees / "bb"
    (bb / "bin").mkdir(parents=True)
    shutil.copy(busybox, bb / "bin/busybox")
    (bb / "bin/busybox").chmod(0o755)
    (bb / "bin/sh").symlink_to("busybox")
    clash = trees / "clash"
    (clash / "etc").mkdir(parents=True)
    (clash / "etc/os-release").write_text("ID=other\n")
    specs = [
        (base, Package(name="test-base", version="1.0-r0", arch=ARCH, license="MIT", origin="test-base")),
        (bb, Package(name="busybox", version="1.36.1-r0", arch=ARCH, license="GPL-2.0-only",
                     depends=["test-base"], provides=["cmd:busybox=1.36.1-r0", "/bin/sh"])),
        (clash, Package(name="clash", version="1-r0", arch=ARCH, license="MIT")),
    ]
    for arch in archs:
        (repo / arch).mkdir(parents=True)
        built = [pack.pack(tree, replace(meta, arch=arch), repo / arch / f"{meta.name}-{meta.version}.apk",
                           signing_key=key, source_date_epoch=1600000000).package for tree, meta in specs]
        (repo / arch / "APKINDEX.tar.gz").write_bytes(index.build(built, signing_key=key))
    return repo, root / "repo.rsa.pub"


def image_yaml(repo: str, pub: Path, packages: list[str], extra: str = "") -> str:
    return (
        "contents:\n"
        f"  repositories: [{repo}]\n"
        f"  keyring: [{pub}]\n"
        f"  packages: [{', '.join(packages)}]\n"
        "entrypoint:\n"
        "  command: /bin/busybox echo hello from distroless\n"
        "archs: [x86_64]\n" + extra
    )
