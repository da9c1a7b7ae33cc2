"""The build is a pipeline: packages are installed while later ones are still being fetched and
expanded, an installed package keeps no per-file entries, and the result is the same tree."""

from __future__ import annotations

import io
from pathlib import Path

from distroless.apk import index, keys, pack
from distroless.apk.model import Package
from distroless.assembly import assemble_arch, build_rootfs
from distroless.config import load_image_config
from distroless.events import Events, PhaseAdvanced
from distroless.fetch.fetcher import Fetcher
from distroless.packages import resolve_config
from distroless.rootfs.layer import write_rootfs_tar
from distroless.store.cache import Cache
from distroless.store.expand import expand

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
    # one worker, two packages ahead: the fourth package is only fetched after the first is installed
    assert installed[0] < fetched[3], order
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
