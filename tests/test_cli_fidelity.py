"""CLI-level apko fidelity: lock files keep keyring names as written; build-minirootfs --arch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from auditrepo import AuditRepos, make_repos


@pytest.fixture(scope="module")
def repos(tmp_path_factory) -> AuditRepos:
    return make_repos(tmp_path_factory.mktemp("fidelity"))


def dl(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    return subprocess.run([sys.executable, "-m", "distroless", *args], cwd=cwd, capture_output=True, text=True, env=env)


def config(tmp: Path, repos: AuditRepos, archs: str = "[x86_64, aarch64]") -> None:
    (tmp / "keys").mkdir()
    shutil.copy(repos.pub, tmp / "keys" / "audit.rsa.pub")
    (tmp / "image.yaml").write_text(
        f"contents:\n  repositories: [{repos.main}]\n  keyring: [./keys/audit.rsa.pub]\n"
        f"  packages: [tool]\narchs: {archs}\n")


def test_lock_keeps_keyring_name_as_written(tmp_path: Path, repos: AuditRepos) -> None:
    config(tmp_path, repos)
    r = dl("image", "lock", "image.yaml", "--cache-dir", str(tmp_path / "cache"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lock = json.loads((tmp_path / "image.lock.json").read_text())
    assert [(k["name"], k["url"]) for k in lock["contents"]["keyring"]] == \
        [("./keys/audit.rsa.pub", "./keys/audit.rsa.pub")]
    # and the lock still builds
    (tmp_path / "out").mkdir()
    b = dl("image", "build", "image.yaml", "t:1", "out", "--lockfile", "image.lock.json",
           "--cache-dir", str(tmp_path / "cache"), "--sbom-path", "sbom", cwd=tmp_path)
    assert b.returncode == 0, b.stderr


@pytest.mark.parametrize("flags,arch", [(["--arch", "aarch64"], "aarch64"), (["--arch", "x86_64"], "x86_64"),
                                        (["--build-arch", "arm64"], "aarch64")])
def test_minirootfs_builds_the_requested_arch(tmp_path: Path, repos: AuditRepos, flags, arch) -> None:
    config(tmp_path, repos)
    r = dl("image", "build-minirootfs", "image.yaml", "rootfs.tar", *flags, "--cache-dir", str(tmp_path / "c"),
           cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    with tarfile.open(tmp_path / "rootfs.tar") as tf:
        assert tf.extractfile("etc/apk/arch").read() == f"{arch}\n".encode()
        assert f"A:{arch}\n".encode() in tf.extractfile("usr/lib/apk/db/installed").read()


def test_minirootfs_refuses_two_archs(tmp_path: Path, repos: AuditRepos) -> None:
    config(tmp_path, repos)
    for flags in (["--arch", "x86_64,aarch64"], ["--arch", "x86_64", "--build-arch", "aarch64"]):
        r = dl("image", "build-minirootfs", "image.yaml", "rootfs.tar", *flags, cwd=tmp_path)
        assert r.returncode == 1 and "one architecture" in r.stderr and "Traceback" not in r.stderr
        assert not (tmp_path / "rootfs.tar").exists()
