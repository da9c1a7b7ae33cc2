"""Image build, cold and warm cache, against the floor measured in the same run.

Synthetic repositories of 30, 120 and 480 packages (≈ 70 MB, 271 MB and 1.07 GB uncompressed: a
realistic mix of many small text files, some medium binaries and a few large blobs) are generated
once per run (or kept in `--repo-cache DIR` between runs; the same seed gives the same files).
Then, per size and per run:
  cold  = `distroless image build` as a fresh process with an empty cache (start-up, resolve,
          verify, expand, install, layer, compress);
  warm  = the same command again (packages and their expansions come from the cache);
  floor = read every data member once (decompress) + compress the final layer tar once with the
          same compressor, in this process.
Each timed step starts after `sync`, so that a gigabyte of the previous build's expansions
(or of the cache just removed) being written back is not charged to the next one.
Every time is printed as a ratio against the floor of the same run, next to the 1-minute load
average (os.getloadavg) before and after it; CPU seconds (user + sys) and the peak RSS come from
the child's rusage. Also: our gzip against `pigz -p 2 -6` on the same tar. The package is
byte-compiled first, as an installed wheel is, so that start-up never includes compiling the
sources (an environment with PYTHONDONTWRITEBYTECODE would otherwise add ~0.1 s to every build).

    python bench/bench_image.py [--sizes 30,120,480] [--runs 3] [--repo-cache DIR]
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from distroless.apk import index, keys, pack  # noqa: E402
from distroless.apk.gzmember import MemberReader  # noqa: E402
from distroless.apk.model import Package  # noqa: E402
from distroless.oci.gzip import gzip_compress  # noqa: E402

ARCH = "x86_64"
EPOCH = "1700000000"
WORDS = [w.encode() for w in "the quick brown fox jumps over lazy dog lorem ipsum dolor sit amet config value".split()]
GOALS = {"cold": 1.3, "warm": 1.1}  # × floor, at 120 and 480 packages
SMALL_COLD_GOAL = 1.6  # × floor at 30 packages, where start-up weighs most
RSS_GOAL_MB = 64


def text(rng: random.Random, size: int) -> bytes:
    out = bytearray()
    while len(out) < size:
        out += b" ".join(rng.choice(WORDS) for _ in range(12)) + b"\n"
    return bytes(out[:size])


def binary(rng: random.Random, size: int) -> bytes:
    # half incompressible, half structured, like real executables
    half = size // 2
    return rng.randbytes(half) + bytes((i * 7) & 0xFF for i in range(size - half))


def make_repo(work: Path, n: int) -> tuple[Path, Path, int]:
    """The repository (and its public key) of `n` packages; the file contents depend on `n` only."""
    rng = random.Random(42)
    keys.write_keypair(work / "bench.rsa", keys.generate(2048))
    key = keys.load_private(work / "bench.rsa")
    repo = work / "repo" / ARCH
    repo.mkdir(parents=True)
    built, total = [], 0
    for i in range(n):
        tree = work / "trees" / f"p{i}"
        for j in range(40):  # small config/text files
            f = tree / "usr/share" / f"p{i}" / f"doc{j}.txt"
            f.parent.mkdir(parents=True, exist_ok=True)
            data = text(rng, rng.randint(200, 8000))
            f.write_bytes(data)
            total += len(data)
        for j in range(3):  # medium binaries
            f = tree / "usr/lib" / f"libp{i}_{j}.so"
            f.parent.mkdir(parents=True, exist_ok=True)
            data = binary(rng, rng.randint(200_000, 900_000))
            f.write_bytes(data)
            total += len(data)
        if i % 20 == 0:  # a few large blobs
            f = tree / "usr/share" / f"p{i}" / "big.dat"
            data = binary(rng, 8_000_000)
            f.write_bytes(data)
            total += len(data)
        meta = Package(name=f"p{i}", version="1.0-r0", arch=ARCH, license="MIT",
                       depends=[f"p{i + 1}"] if i + 1 < n else [])
        built.append(pack.pack(tree, meta, repo / f"p{i}-1.0-r0.apk", signing_key=key).package)
        shutil.rmtree(tree)
    (repo / "APKINDEX.tar.gz").write_bytes(index.build(built, signing_key=key))
    shutil.rmtree(work / "trees", ignore_errors=True)
    (work / "total").write_text(str(total))
    return repo.parent, work / "bench.rsa.pub", total


def repository(n: int, cache: Path | None, scratch: Path) -> tuple[Path, Path, int, float]:
    """A generated repository of `n` packages, reused from `cache` when it holds a complete one."""
    work = (cache / str(n)) if cache else scratch / f"gen-{n}"
    if cache and (work / "total").exists():
        return work / "repo", work / "bench.rsa.pub", int((work / "total").read_text()), 0.0
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    t = time.perf_counter()
    repo, pub, total = make_repo(work, n)
    return repo, pub, total, time.perf_counter() - t


@dataclass(frozen=True)
class Run:
    wall: float
    cpu: float  # user + sys of the child
    rss_mb: float  # the child's peak RSS
    load: tuple[float, float]  # 1-minute load average before and after
    digest: str


def build(cfg: Path, out: Path, cache: Path, sbom: Path) -> Run:
    """`distroless image build` as its own process (so start-up counts), with its rusage."""
    out.mkdir()
    env = dict(os.environ, SOURCE_DATE_EPOCH=EPOCH, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "distroless", "image", "build", str(cfg), "bench:latest", str(out),
           "--cache-dir", str(cache), "--sbom-path", str(sbom)]
    os.sync()  # the previous build's writes (and the removal of its cache) are not this one's
    load0 = os.getloadavg()[0]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode:
        raise SystemExit(f"image build failed ({proc.returncode}): {err}")
    digest = json.loads((out / "index.json").read_text())["manifests"][0]["digest"]
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, (load0, os.getloadavg()[0]), digest)


def floor(repo: Path, tar: Path) -> tuple[float, float, tuple[float, float]]:
    """(wall, cpu, load) of: decompress every data member once, then compress the layer tar once."""
    os.sync()
    load0 = os.getloadavg()[0]
    t, c = time.perf_counter(), time.process_time()
    for apk in sorted((repo / ARCH).glob("*.apk")):
        with open(apk, "rb") as f:
            r = MemberReader(f, str(apk))
            while not r.at_end():
                m = r.next("member", 1 << 40)
                m.drain()
    with open(tar, "rb") as src, open(os.devnull, "wb") as out:
        gzip_compress(src, out)
    return time.perf_counter() - t, time.process_time() - c, (load0, os.getloadavg()[0])


def span(values: list[float], fmt: str = "{:.2f}") -> str:
    lo, hi = min(values), max(values)
    return fmt.format(lo) if fmt.format(lo) == fmt.format(hi) else f"{fmt.format(lo)}–{fmt.format(hi)}"


def bench_size(n: int, runs: int, repo_cache: Path | None, scratch: Path) -> dict:
    repo, pub, total, generated = repository(n, repo_cache, scratch)
    note = f"generated in {generated:.0f} s" if generated else "from the repository cache"
    print(f"-- {n} packages, {total / 1e6:.0f} MB uncompressed ({note})", flush=True)
    work = scratch / f"run-{n}"
    work.mkdir()
    cfg = work / "image.yaml"
    cfg.write_text(f"contents:\n  repositories: [{repo}]\n  keyring: [{pub}]\n  packages: [p0]\narchs: [x86_64]\n")
    tar = work / "rootfs.tar"
    env = dict(os.environ, SOURCE_DATE_EPOCH=EPOCH, PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-m", "distroless", "image", "build-minirootfs", str(cfg), str(tar),
                    "--cache-dir", str(work / "tar-cache"), "--build-arch", "amd64"], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shutil.rmtree(work / "tar-cache")
    rows: list[dict] = []
    for r in range(runs):
        cache, sbom = work / f"cache-{r}", work / f"sbom-{r}"
        cold = build(cfg, work / f"cold-{r}", cache, sbom)
        warm = build(cfg, work / f"warm-{r}", cache, sbom)
        fl, fl_cpu, fl_load = floor(repo, tar)
        if cold.digest != warm.digest:
            raise SystemExit(f"{n} packages: cold and warm builds differ ({cold.digest} vs {warm.digest})")
        rows.append({"cold": cold, "warm": warm, "floor": fl, "floor_cpu": fl_cpu, "floor_load": fl_load})
        print(f"   run {r + 1}: cold {cold.wall:.2f} s = {cold.wall / fl:.2f}× floor (load {cold.load[0]:.1f}→{cold.load[1]:.1f}, "
              f"cpu {cold.cpu:.2f} s = {cold.cpu / fl_cpu:.2f}× floor cpu, rss {cold.rss_mb:.0f} MB); "
              f"warm {warm.wall:.2f} s = {warm.wall / fl:.2f}× (load {warm.load[0]:.1f}→{warm.load[1]:.1f}, "
              f"cpu {warm.cpu / fl_cpu:.2f}×, rss {warm.rss_mb:.0f} MB); "
              f"floor {fl:.2f} s, cpu {fl_cpu:.2f} s (load {fl_load[0]:.1f}→{fl_load[1]:.1f})", flush=True)
        shutil.rmtree(cache)
    ratios = {k: [row[k].wall / row["floor"] for row in rows] for k in ("cold", "warm")}
    cpu_ratios = {k: [row[k].cpu / row["floor_cpu"] for row in rows] for k in ("cold", "warm")}
    rss = [max(row["cold"].rss_mb, row["warm"].rss_mb) for row in rows]
    loads = [x for row in rows for x in (*row["cold"].load, *row["warm"].load, *row["floor_load"])]
    cold_goal = SMALL_COLD_GOAL if n < 100 else GOALS["cold"]
    print(f"   {n} packages: cold {span(ratios['cold'])}× floor (goal ≤ {cold_goal}), "
          f"warm {span(ratios['warm'])}× floor" + (f" (goal ≤ {GOALS['warm']})" if n >= 100 else "")
          + f"; cpu cold {span(cpu_ratios['cold'])}×, warm {span(cpu_ratios['warm'])}× floor cpu; "
          f"floor {span([row['floor'] for row in rows])} s; peak RSS {span(rss, '{:.0f}')} MB"
          + (f" (goal ≤ {RSS_GOAL_MB})" if n == 120 else "") + f"; load {span(loads, '{:.1f}')}; "
          f"image {rows[0]['cold'].digest}", flush=True)
    size = tar.stat().st_size
    t = time.perf_counter()
    with open(tar, "rb") as src, open(work / "ours.gz", "wb") as dst:
        gzip_compress(src, dst)
    ours = time.perf_counter() - t
    t = time.perf_counter()
    with open(tar, "rb") as src, open(work / "pigz.gz", "wb") as dst:
        subprocess.run(["pigz", "-p", "2", "-6", "-c"], stdin=src, stdout=dst, check=True)
    pigz = time.perf_counter() - t
    ours_size, pigz_size = (work / "ours.gz").stat().st_size, (work / "pigz.gz").stat().st_size
    print(f"   layer tar {size / 1e6:.0f} MB: ours {size / ours / 1e6:.0f} MB/s, pigz -p 2 -6 {size / pigz / 1e6:.0f} MB/s; "
          f"speed ratio {pigz / ours:.2f}× (goal ≥ 1), size {ours_size / pigz_size - 1:+.1%} (goal within 5 %)", flush=True)
    shutil.rmtree(work)
    return {"n": n, "ratios": ratios, "rss": rss}


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="30,120,480", help="package counts, comma-separated")
    ap.add_argument("--runs", type=int, default=3, help="cold + warm + floor rounds per size")
    ap.add_argument("--repo-cache", type=Path, default=None, help="keep generated repositories here between runs")
    args = ap.parse_args(argv)
    compileall.compile_dir(str(ROOT / "distroless"), quiet=1)
    scratch = Path(tempfile.mkdtemp(prefix="bench-image-"))
    try:
        for n in (int(s) for s in args.sizes.split(",") if s):
            bench_size(n, max(1, args.runs), args.repo_cache, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    # under bench/run.py, argv holds run.py's bench filter, not ours
    main(sys.argv[1:] if Path(sys.argv[0]).name == "bench_image.py" else [])
