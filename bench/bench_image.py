"""Image build, cold and warm cache, against the floor measured in the same run.

A synthetic repository of 120 packages (≈ 220 MB uncompressed: a realistic mix of many small
text files, some medium binaries and a few large blobs) is generated once. Then:
  cold  = `image build` with an empty cache (verify, expand, install, layer, compress);
  warm  = the same build again (expanded packages come from the cache);
  floor = read every data member once (decompress) + compress the final layer tar once with
          the same compressor;
and our gzip against `pigz -p 2 -6` on that same tar.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from distroless.apk import index, keys, pack  # noqa: E402
from distroless.apk.gzmember import MemberReader  # noqa: E402
from distroless.apk.model import Package  # noqa: E402
from distroless.cli import main as cli  # noqa: E402
from distroless.oci.gzip import gzip_compress  # noqa: E402

ARCH = "x86_64"
WORDS = [w.encode() for w in "the quick brown fox jumps over lazy dog lorem ipsum dolor sit amet config value".split()]


def text(rng: random.Random, size: int) -> bytes:
    out = bytearray()
    while len(out) < size:
        out += b" ".join(rng.choice(WORDS) for _ in range(12)) + b"\n"
    return bytes(out[:size])


def binary(rng: random.Random, size: int) -> bytes:
    # half incompressible, half structured, like real executables
    half = size // 2
    return rng.randbytes(half) + bytes((i * 7) & 0xFF for i in range(size - half))


def make_repo(work: Path, n: int = 120) -> tuple[Path, Path, int]:
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
    (repo / "APKINDEX.tar.gz").write_bytes(index.build(built, signing_key=key))
    shutil.rmtree(work / "trees")
    return repo.parent, work / "bench.rsa.pub", total


def floor(repo: Path, tar: Path) -> float:
    t = time.perf_counter()
    for apk in sorted((repo / ARCH).glob("*.apk")):
        with open(apk, "rb") as f:
            r = MemberReader(f, str(apk))
            while not r.at_end():
                m = r.next("member", 1 << 40)
                m.drain()
    with open(tar, "rb") as src, open(os.devnull, "wb") as out:
        gzip_compress(src, out)
    return time.perf_counter() - t


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-image-"))
    try:
        t = time.perf_counter()
        repo, pub, total = make_repo(work)
        print(f"synthetic repository: 120 packages, {total / 1e6:.0f} MB uncompressed (generated in {time.perf_counter() - t:.0f} s)")
        cfg = work / "image.yaml"
        cfg.write_text(f"contents:\n  repositories: [{repo}]\n  keyring: [{pub}]\n  packages: [p0]\narchs: [x86_64]\n")
        os.environ["SOURCE_DATE_EPOCH"] = "1700000000"
        times = {}
        for label in ("cold", "warm"):
            out = work / f"out-{label}"
            out.mkdir()
            t = time.perf_counter()
            assert cli(["image", "build", str(cfg), "bench:latest", str(out), "--cache-dir", str(work / "cache"),
                        "--sbom-path", str(work / "sbom")]) == 0
            times[label] = time.perf_counter() - t
        tar = work / "rootfs.tar"
        assert cli(["image", "build-minirootfs", str(cfg), str(tar), "--cache-dir", str(work / "cache"),
                    "--build-arch", "amd64"]) == 0
        size = tar.stat().st_size
        fl = floor(repo, tar)
        t = time.perf_counter()
        with open(tar, "rb") as src, open(work / "ours.gz", "wb") as dst:
            gzip_compress(src, dst)
        ours = time.perf_counter() - t
        t = time.perf_counter()
        with open(tar, "rb") as src, open(work / "pigz.gz", "wb") as dst:
            subprocess.run(["pigz", "-p", "2", "-6", "-c"], stdin=src, stdout=dst, check=True)
        pigz = time.perf_counter() - t
        ours_size, pigz_size = (work / "ours.gz").stat().st_size, (work / "pigz.gz").stat().st_size
        print(f"layer tar: {size / 1e6:.0f} MB")
        print(f"cold build {times['cold']:.1f} s, warm build {times['warm']:.1f} s, floor {fl:.1f} s; "
              f"warm/floor {times['warm'] / fl:.2f}x (goal <= 1.3x); cold/floor {times['cold'] / fl:.2f}x")
        print(f"layer compression: ours {size / ours / 1e6:.0f} MB/s, pigz -p 2 -6 {size / pigz / 1e6:.0f} MB/s; "
              f"speed ratio {pigz / ours:.2f}x (goal >= 1), size {ours_size / pigz_size - 1:+.1%} (goal within 5 %)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
