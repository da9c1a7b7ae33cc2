"""Resolver benchmark: the Alpine v3.16 index (largest closure in it) and a 50,000-package
synthetic index. Prints figures only.

    .venv/bin/python bench/bench_resolve.py
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

from distroless.apk import index as apkindex
from distroless.apk.model import Package
from distroless.errors import ResolveError
from distroless.resolve import Index, Resolver

ALPINE = Path(__file__).resolve().parents[1] / "tests/fixtures/apk/alpine-v3.16-main-x86_64/APKINDEX.tar.gz"


def read_packages(path: Path) -> list[Package]:
    return apkindex.read_file(path, verify=False).packages


def synthetic(n: int, seed: int = 1, layers: int = 8) -> list[Package]:
    """n packages in `layers` layers; each depends on two packages (or their so: names) of the
    layer below, so a world in layer k pulls in up to 2**(k+1) - 1 packages, as real indexes
    (wide, shallow) do. One package in ten also has an older version to choose against."""
    rng = random.Random(seed)
    per = n // layers
    pkgs = []
    for i in range(n):
        layer = i // per
        deps = []
        if layer > 0:
            for j in rng.sample(range((layer - 1) * per, layer * per), k=2):
                deps.append(f"so:libp{j}.so.1" if j % 3 == 0 else f"p{j}")
        provides = [f"so:libp{i}.so.1=1"] if i % 3 == 0 else []
        pkgs.append(Package(f"p{i}", f"1.{i % 7}-r0", depends=deps, provides=provides))
        if i % 10 == 0:
            pkgs.append(Package(f"p{i}", "0.9-r0", depends=deps[:1], provides=provides))
    return pkgs


def timed(fn, *args):
    t = time.perf_counter()
    r = fn(*args)
    return r, time.perf_counter() - t


def main() -> int:
    sys.setrecursionlimit(10000)
    pkgs, t_parse = timed(read_packages, ALPINE)
    index, t_index = timed(lambda: Index.build(pkgs, arch="x86_64"))
    print(f"alpine v3.16: parsed {len(pkgs)} packages in {t_parse * 1000:.0f} ms, indexed in {t_index * 1000:.0f} ms")

    resolver = Resolver(index)
    sizes: list[tuple[int, str]] = []
    t0 = time.perf_counter()
    for name in sorted(index.by_name):
        try:
            sizes.append((len(resolver.resolve([name])), name))
        except ResolveError:
            pass
    t_all = time.perf_counter() - t0
    print(f"  resolved every name alone ({len(sizes)} ok) in {t_all:.2f} s, {len(sizes) / t_all:.0f} worlds/s")
    sizes.sort(reverse=True)
    for size, name in sizes[:3]:
        fresh = Resolver(index)  # cold caches, as a first build would see them
        res, t = timed(fresh.resolve, [name])
        _, t_warm = timed(fresh.resolve, [name])
        print(f"  largest closure: {name}: {size} packages, {t * 1000:.1f} ms cold, {t_warm * 1000:.1f} ms warm, {len(res) / t:.0f} packages/s")
    hundred = min((s for s in sizes if s[0] >= 100), default=None)
    if hundred:
        res, t = timed(Resolver(index).resolve, [hundred[1]])
        print(f"  ~100-package closure ({hundred[1]}, {len(res)}): {t * 1000:.1f} ms cold (goal < 100 ms)")

    spkgs, t_gen = timed(synthetic, 50_000)
    sindex, t_sidx = timed(lambda: Index.build(spkgs))
    print(f"synthetic: {len(spkgs)} packages generated in {t_gen * 1000:.0f} ms, indexed in {t_sidx * 1000:.0f} ms")
    per = 50_000 // 8
    for layer in (2, 4, 6, 7):
        for top in (layer * per + 1, layer * per + 2):
            res, t = timed(Resolver(sindex).resolve, [f"p{top}"])
            print(f"  world p{top} (layer {layer}): {len(res)} packages in {t * 1000:.1f} ms, {len(res) / t:.0f} packages/s")
    world = [f"p{7 * per + k}" for k in range(1, 11)]
    res, t = timed(Resolver(sindex).resolve, world)
    print(f"  world of 10 top-layer packages: {len(res)} packages in {t * 1000:.0f} ms, {len(res) / t:.0f} packages/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
