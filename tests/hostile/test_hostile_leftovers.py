"""Item 8: an overall deadline per download, stale leftovers of killed runs cleaned at start
(only old ones that no live process holds), and disk-full errors naming the file."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from httpserver import free_port
from imagerepo import image_yaml, make_repo
from hostile.harness import PROGRESS_LINE, ROOT, cli, run_bounded

HOUR_AGO = time.time() - 3600


@pytest.fixture()
def drip_server():
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("drip.py")), str(port), "1"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


def test_a_dripping_server_hits_the_download_deadline(tmp_path: Path, drip_server: str) -> None:
    # the key is the first download; an index or package dripping goes through the same call
    (tmp_path / "image.yaml").write_text(image_yaml(drip_server, f"{drip_server}/key.rsa.pub", ["busybox"]))
    out = run_bounded(cli("image", "show-packages", "image.yaml", "--cache-dir", str(tmp_path / "cache")),
                      mem_mb=600, cpu_s=30, cwd=tmp_path, env={"DISTROLESS_DOWNLOAD_DEADLINE": "3"}, wall_s=60)
    out.assert_one_line_error(f"{drip_server}/key.rsa.pub", "deadline of 3 s")
    assert not list((tmp_path / "cache" / "tmp").iterdir())  # the partial download is gone


@pytest.fixture(scope="module")
def repo(tmp_path_factory, peers):
    root = tmp_path_factory.mktemp("repo")
    return make_repo(root, peers.busybox)


def _old(path: Path) -> Path:
    os.utime(path, (HOUR_AGO, HOUR_AGO), follow_symlinks=False)
    return path


def test_stale_leftovers_are_cleaned_but_live_ones_kept(tmp_path: Path, repo) -> None:
    repo_dir, pub = repo
    tmp = tmp_path / "cache" / "tmp"
    tmp.mkdir(parents=True)
    stale_build = tmp / "build-killed"
    (stale_build / "blobs").mkdir(parents=True)
    (stale_build / "blobs" / "layer").write_bytes(b"x" * 4096)
    _old(stale_build)
    (tmp / "dl-killed").write_bytes(b"partial")
    _old(tmp / "dl-killed")
    (tmp / "dl-recent").write_bytes(b"maybe another run")  # too young to judge
    live = tmp / "build-live"
    live.mkdir()
    _old(live)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDONLY); "
        "fcntl.flock(fd, fcntl.LOCK_SH); print('held', flush=True); time.sleep(120)"), str(live)],
        stdout=subprocess.PIPE, text=True)
    stale_staged = tmp_path / ".staged.killed.tmp"
    stale_staged.write_bytes(b"half a rootfs")
    _old(stale_staged)
    try:
        assert holder.stdout.readline().strip() == "held"
        (tmp_path / "image.yaml").write_text(image_yaml(str(repo_dir), pub, ["busybox"]))
        out = run_bounded(cli("image", "build-minirootfs", "image.yaml", "rootfs.tar", "--cache-dir",
                              str(tmp_path / "cache")), mem_mb=800, cpu_s=60, cwd=tmp_path)
        assert out.status == 0, out.stderr
    finally:
        holder.kill()
        holder.wait()
    left = sorted(p.name for p in tmp.iterdir())
    assert "build-killed" not in left and "dl-killed" not in left
    assert "dl-recent" in left and "build-live" in left
    assert not stale_staged.exists() and (tmp_path / "rootfs.tar").exists()


def _in_tiny_fs(mount: Path, command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run `command` in a private mount namespace where `mount` is a 256 KiB tmpfs."""
    mount.mkdir(exist_ok=True)
    script = (f"mount -t tmpfs -o size=256k tmpfs {shlex.quote(str(mount))} && "
              f"cd {shlex.quote(str(cwd))} && {shlex.join(command)}; rc=$?; "
              f"ls -A {shlex.quote(str(mount))} >&2; exit $rc")
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_disk_full_errors_name_the_file(tmp_path: Path, repo) -> None:
    repo_dir, pub = repo
    (tmp_path / "image.yaml").write_text(image_yaml(str(repo_dir), pub, ["busybox"]))
    full = tmp_path / "full"
    r = _in_tiny_fs(full, cli("image", "build-minirootfs", "image.yaml", str(full / "rootfs.tar"),
                              "--cache-dir", str(tmp_path / "cache")), tmp_path)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and not PROGRESS_LINE.match(ln)]
    assert r.returncode == 1, r.stderr
    assert lines == [f"distroless: error: {full}/rootfs.tar: No space left on device"], r.stderr
    # the cache itself on a full disk: the download's file is named
    r = _in_tiny_fs(full, cli("image", "build-minirootfs", "image.yaml", str(tmp_path / "rootfs.tar"),
                              "--cache-dir", str(full / "cache")), tmp_path)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and not PROGRESS_LINE.match(ln)]
    assert r.returncode == 1, r.stderr
    assert "No space left on device" in lines[0] and str(full / "cache") in lines[0], r.stderr
    assert lines[1:] == ["cache"], r.stderr  # nothing but the (cleaned) cache left on the full disk


# the head of the scripts below: fill(d) fills the disk d is on, as another process might
_FILL = """
import sys
from pathlib import Path
def fill(directory):
    with open(Path(directory) / "filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"x" * 4096)
        except OSError:
            pass
"""

_REF_ON_A_FULL_DISK = _FILL + """
from distroless.store.cache import Cache
cache = Cache(sys.argv[1])
fill(sys.argv[1])  # another expansion, say
try:
    cache.record_local("Q1" + "A" * 26 + "A=", "0" * 64, 1)
except OSError as e:
    print(e.filename, e.strerror)
print(sorted(p.name for p in (Path(sys.argv[1]) / "tmp").iterdir()))
"""


def test_a_cache_ref_that_does_not_fit_names_its_file(tmp_path: Path) -> None:
    full = tmp_path / "full"
    r = _in_tiny_fs(full, [sys.executable, "-c", _REF_ON_A_FULL_DISK, str(full / "cache")], tmp_path)
    assert r.returncode == 0, r.stderr
    named, left = r.stdout.splitlines()
    assert named == f"{full}/cache/refs/local/{'0' * 40} No space left on device", r.stdout
    assert left == "[]", "the ref's temp file is removed"


_LEAVES_ON_A_FULL_DISK = _FILL + """
from distroless.rootfs.tree import Node, TarRef, Tree
tree = Tree(memory_leaves=0)
def place(i):
    children, name = tree.slot(f"usr/share/d{i // 1000}/file-{i}")
    children.place(name, Node("reg", 0o644, size=1, content=TarRef(Path("/dev/null"), i, 1), sha1="0" * 40,
                              package="p"))
place(0)  # the store is open
fill(sys.argv[1])  # and then the disk fills
try:
    for i in range(1, 40000):  # ~4 MB of rows: beyond SQLite's page cache, so its file must grow
        place(i)
    sum(1 for _ in tree.walk())
except Exception as e:
    print(type(e).__name__, e)
"""


def test_the_file_list_on_a_full_disk_says_where_it_was(tmp_path: Path) -> None:
    full = tmp_path / "full"
    r = _in_tiny_fs(full, ["env", f"TMPDIR={full}", sys.executable, "-c", _LEAVES_ON_A_FULL_DISK, str(full)], tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ("LeafStoreError the build's file list (a temporary SQLite database in "
                                f"{full}): database or disk is full"), r.stdout
