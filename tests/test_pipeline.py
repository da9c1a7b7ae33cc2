"""The build is a pipeline: packages are installed while later ones are still being fetched and
expanded, an installed package keeps no per-file entries, and the result is the same tree."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from distroless.apk import index, keys, pack
from distroless.apk.model import Package
from distroless.assembly import assemble_arch, build_rootfs
from distroless.config import load_image_config
from distroless.events import Events, PhaseAdvanced
from distroless.fetch.fetcher import Fetcher
from distroless.packages import resolve_config
from distroless.rootfs.layer import write_rootfs_tar
from distroless.store.cache import Cache
from distroless.errors import DistrolessError, LimitError, VerificationError
from distroless.store import expandpool
from distroless.store.expand import expand
from distroless.store.expandpool import ExpandPool
from shared import ROOT

N = 8


def _repo(root: Path) -> Path:
    key = keys.generate(2048)
    keys.write_keypair(root / "k.rsa", key)
    out = root / "repo" / "x86_64"
    out.mkdir(parents=True)
    built = []
    for i in range(N):
        tree = root / "trees" / f"p{i}"
        (tree / "usr/share" / f"p{i}").mkdir(parents=True)
        for j in range(5):
            (tree / "usr/share" / f"p{i}" / f"f{j}").write_text(f"{i} {j}\n" * (i + j + 1))
        (tree / "usr/lib").mkdir(parents=True)
        (tree / "usr/lib" / f"lib{i}.so").write_bytes(bytes(range(256)) * (i + 1))
        meta = Package(name=f"p{i}", version="1.0-r0", arch="x86_64", license="MIT",
                       depends=[f"p{i + 1}"] if i + 1 < N else [])
        built.append(pack.pack(tree, meta, out / f"p{i}-1.0-r0.apk", signing_key=keys.load_private(root / "k.rsa")).package)
    (out / "APKINDEX.tar.gz").write_bytes(index.build(built, signing_key=keys.load_private(root / "k.rsa")))
    (root / "image.yaml").write_text(f"contents:\n  repositories: [{out.parent}]\n  keyring: [{root / 'k.rsa.pub'}]\n"
                                     f"  packages: [p0]\narchs: [x86_64]\n")
    return root / "image.yaml"


def test_packages_are_installed_while_later_ones_are_fetched(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    cfg = _repo(tmp_path)
    order: list[str] = []
    done: dict[int, int] = {}

    def sink(event) -> None:  # one item per package done (downloads also advance by bytes)
        ph = event.phase if isinstance(event, PhaseAdvanced) else None
        if ph is not None and ph.name.startswith(("fetching", "installing")) and ph.done > done.get(ph.id, 0):
            done[ph.id] = ph.done
            order.append(ph.name.split()[0])

    events = Events(sink)
    loaded = load_image_config(cfg.name, cwd=tmp_path)
    fetcher = Fetcher(Cache(tmp_path / "cache"), events=events)
    ps = resolve_config(loaded, fetcher)
    (arch_fs,) = build_rootfs(loaded, ps, fetcher, jobs=1, events=events)

    fetched = [i for i, what in enumerate(order) if what == "fetching"]
    installed = [i for i, what in enumerate(order) if what == "installing"]
    assert len(fetched) == N and len(installed) == N
    # one worker, four packages ahead: the fifth package is only fetched after the first is installed
    assert installed[0] < fetched[4], order
    assert all(not e.apk.entries and not e.apk.scripts for e in arch_fs.expanded), "installed packages keep no entries"
    assert [e.apk.package.name for e in arch_fs.expanded] == [p.package.name for p in ps.archs["amd64"]]

    # the same tree as installing the expansions from a list, entries and all
    listed = [expand(f.path, fetcher.cache, expected_checksum=p.package.checksum, expected_sha256=f.sha256)
              for p, f in zip(ps.archs["amd64"], fetcher.packages([p.package for p in ps.archs["amd64"]], "x86_64"))]
    again = assemble_arch(loaded, ps, "amd64", listed)
    assert all(e.apk.entries for e in again.expanded)
    a, b = io.BytesIO(), io.BytesIO()
    assert write_rootfs_tar(arch_fs.rootfs.tree, a) == write_rootfs_tar(again.rootfs.tree, b)
    assert a.getvalue() == b.getvalue() and arch_fs.bde == again.bde


def _setup(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    cfg = _repo(tmp_path)
    loaded = load_image_config(cfg.name, cwd=tmp_path)
    fetcher = Fetcher(Cache(tmp_path / "cache"))
    return loaded, fetcher, resolve_config(loaded, fetcher)


def _tar(arch_fs) -> bytes:
    out = io.BytesIO()
    write_rootfs_tar(arch_fs.rootfs.tree, out)
    return out.getvalue()


def test_local_packages_are_expanded_in_place(tmp_path, monkeypatch) -> None:
    loaded, fetcher, ps = _setup(tmp_path, monkeypatch)
    (first,) = build_rootfs(loaded, ps, fetcher, jobs=2)
    # nothing copied: the local .apk files are read where they are; their expansions are kept
    assert not any((tmp_path / "cache/blobs/sha256").iterdir())
    assert len(list((tmp_path / "cache/expanded").iterdir())) == N
    # the same tree as one thread expanding in this process
    (threaded,) = build_rootfs(loaded, ps, Fetcher(Cache(tmp_path / "cache2")), jobs=1)
    assert _tar(first) == _tar(threaded)

    # a second build is served from those expansions: nothing is expanded again
    def refuse(*_a, **_k):
        raise AssertionError("expanded again")

    monkeypatch.setattr(expandpool, "expand", refuse)
    (again,) = build_rootfs(loaded, ps, fetcher, jobs=1)
    assert _tar(again) == _tar(first)


# A fresh process, as the CLI is: no thread runs yet, so the pool forks its workers.
_IN_A_WORKER = """
import sys
from pathlib import Path
from distroless.errors import DistrolessError
from distroless.store.cache import Cache
from distroless.store.expandpool import ExpandPool
with ExpandPool(2) as pool:
    assert pool.forked
    apk = Path(sys.argv[1])
    try:
        pool(apk, Cache(sys.argv[2]), source=str(apk))
    except DistrolessError as e:
        print(type(e).__name__, e)
"""


def test_a_worker_process_reports_a_bad_package_as_this_process_would(tmp_path, monkeypatch) -> None:
    _setup(tmp_path, monkeypatch)
    apk = tmp_path / "repo/x86_64/p3-1.0-r0.apk"
    data = bytearray(apk.read_bytes())
    data[-40] ^= 0xFF  # inside the data member
    apk.write_bytes(bytes(data))
    with pytest.raises(DistrolessError) as here:
        expand(apk, Cache(tmp_path / "cache2"), source=str(apk))
    assert "p3-1.0-r0.apk: data member: " in str(here.value)
    there = subprocess.run([sys.executable, "-c", _IN_A_WORKER, str(apk), str(tmp_path / "cache3")],
                           capture_output=True, text=True, check=True, cwd=ROOT)
    assert there.stdout.strip() == f"{type(here.value).__name__} {here.value}"
    assert not any((tmp_path / "cache3/expanded").iterdir()), "nothing kept of a bad package"


_WORKER_DIES = """
import os, sys
from pathlib import Path
from distroless.errors import DistrolessError
from distroless.store import expandpool
from distroless.store.cache import Cache
def die(*_a, **_k):
    os._exit(9)
expandpool.expand = die  # what the workers run: they are forked after this
with expandpool.ExpandPool(2) as pool:
    try:
        pool(Path(sys.argv[1]), Cache(sys.argv[2]), source=sys.argv[1])
    except DistrolessError as e:
        print(e)
"""


def test_a_worker_that_dies_is_a_clear_error_naming_the_package(tmp_path, monkeypatch) -> None:
    _setup(tmp_path, monkeypatch)
    apk = tmp_path / "repo/x86_64/p1-1.0-r0.apk"
    out = subprocess.run([sys.executable, "-c", _WORKER_DIES, str(apk), str(tmp_path / "cache3")],
                         capture_output=True, text=True, check=True, cwd=ROOT, timeout=60)
    assert out.stdout.strip() == f"{apk}: the process expanding it died (killed, or out of memory?); nothing of it was kept"


_NO_FORK = """
import errno, os, sys
from pathlib import Path
from distroless.store.cache import Cache
from distroless.store.expandpool import ExpandPool
def refuse():
    raise OSError(errno.EAGAIN, "Resource temporarily unavailable")
os.fork = refuse
with ExpandPool(2) as pool:
    assert not pool.forked
    print(pool(Path(sys.argv[1]), Cache(sys.argv[2])).apk.package.name)
"""


def test_a_pool_that_cannot_fork_expands_in_this_process(tmp_path, monkeypatch) -> None:
    _setup(tmp_path, monkeypatch)
    apk = tmp_path / "repo/x86_64/p1-1.0-r0.apk"
    out = subprocess.run([sys.executable, "-c", _NO_FORK, str(apk), str(tmp_path / "cache3")],
                         capture_output=True, text=True, check=True, cwd=ROOT, timeout=60)
    assert out.stdout.strip() == "p1"


def test_the_pool_expands_in_this_thread_once_another_thread_runs() -> None:
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        with ExpandPool(2) as pool:
            assert not pool.forked, "forking a threaded process could copy a held lock"
    finally:
        stop.set()
        t.join()


def test_a_local_package_replaced_after_a_build_is_read_again(tmp_path, monkeypatch) -> None:
    loaded, fetcher, ps = _setup(tmp_path, monkeypatch)
    build_rootfs(loaded, ps, fetcher, jobs=2)
    # rebuilt with other contents under the same name: its control checksum is not the index's
    tree = tmp_path / "other/usr/share/p3"
    tree.mkdir(parents=True)
    (tree / "f0").write_text("other\n")
    meta = Package(name="p3", version="1.0-r0", arch="x86_64", license="MIT", depends=["p4"])
    pack.pack(tmp_path / "other", meta, tmp_path / "repo/x86_64/p3-1.0-r0.apk",
              signing_key=keys.load_private(tmp_path / "k.rsa"))
    with pytest.raises(VerificationError, match=r"p3-1\.0-r0\.apk: control member: checksum .* does not match"):
        build_rootfs(loaded, ps, fetcher, jobs=2)


def test_a_local_package_larger_than_the_index_says_is_refused_unread(tmp_path, monkeypatch) -> None:
    loaded, fetcher, ps = _setup(tmp_path, monkeypatch)
    apk = tmp_path / "repo/x86_64/p2-1.0-r0.apk"
    size = apk.stat().st_size
    with apk.open("ab") as f:
        f.write(b"\0" * 4096)
    def only_others(path, *a, **k):
        assert path != apk, "read a file over its cap"
        return expand(path, *a, **k)

    monkeypatch.setattr(expandpool, "expand", only_others)
    with pytest.raises(LimitError, match=rf"p2-1\.0-r0\.apk: larger than the cap of {size} bytes"):
        build_rootfs(loaded, ps, fetcher, jobs=1)
