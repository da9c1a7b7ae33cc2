"""Parse and verify the Alpine v3.16 index; compare with `gzip -dc` of the same file in the same run.

Prints packages/s and the ratio (ours / gzip -dc). Both sides are timed as the best of N runs;
gzip runs as a process (it is one), ours in-process with the interpreter already started.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from distroless.apk import index  # noqa: E402
from distroless.apk.keys import Keyring  # noqa: E402

FIX = ROOT / "tests" / "fixtures" / "apk"
INDEX = FIX / "alpine-v3.16-main-x86_64" / "APKINDEX.tar.gz"


def best(fn, n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(runs: int = 15) -> dict[str, float]:
    data = INDEX.read_bytes()
    ring = Keyring.load([FIX / "keys"])
    count = len(index.read(data, str(INDEX), ring).packages)
    ours = best(lambda: index.read(data, str(INDEX), ring), runs)
    gz = best(lambda: subprocess.run(["gzip", "-dc", str(INDEX)], stdout=subprocess.DEVNULL, check=True), runs)
    result = {"packages": count, "ours_ms": ours * 1e3, "gzip_ms": gz * 1e3, "pkgs_per_s": count / ours, "ratio": ours / gz}
    print(f"index: {count} packages parsed+verified in {ours * 1e3:.1f} ms ({count / ours:,.0f} packages/s); "
          f"gzip -dc {gz * 1e3:.1f} ms; ratio {ours / gz:.2f}x (goal <= 3x)")
    return result


if __name__ == "__main__":
    main()
