"""The CLI's own speed, as ratios against `python -c pass` measured in the same run.

World: the 20 packages of Alpine v3.16 main (x86_64) with the largest closures, plus busybox,
resolved from a local copy of the real, signed index. Figures (best of N, CPU milliseconds of the process and its children, which a loaded machine
disturbs far less than wall time):

* start-up: `distroless --help` (goal: <= 3x `python -c pass`);
* index read+verify of a known index through the parsed-index cache (goal: <= 10 ms), next to
  a cold read (parse and RSA verification);
* solving the world on a built index (goal: <= 30 ms), next to building the index;
* the whole warm `distroless image show-packages` (goal: <= 3x `python -c pass` + 40 ms): answered
  from the resolve step's cache, and (for comparison) with that entry removed before each run,
  so that the parsed-index cache, the index build and the solve run.

Also prints the 1-minute load average before and after: CPU time is disturbed less than wall
time by neighbours, but not nothing.

    .venv/bin/python bench/bench_cli.py
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from distroless.apk import index as apkindex  # noqa: E402
from distroless.errors import ResolveError  # noqa: E402
from distroless.store.cache import Cache  # noqa: E402
from distroless.fetch.fetcher import Fetcher  # noqa: E402
from distroless.fetch.repository import Repository  # noqa: E402
from distroless.resolve import Index, Resolver  # noqa: E402

FIX = ROOT / "tests" / "fixtures" / "apk"
INDEX = FIX / "alpine-v3.16-main-x86_64" / "APKINDEX.tar.gz"
KEY = FIX / "keys" / "alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub"
ENTRY = [sys.executable, "-m", "distroless"]


def best(fn, n: int) -> float:
    """Best of n, in CPU milliseconds (this process's, plus its children's): on a shared,
    loaded machine wall time mostly measures the neighbours."""
    times = []
    for _ in range(n):
        t = _cpu()
        fn()
        times.append(_cpu() - t)
    return min(times) * 1000


def _cpu() -> float:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + kids.ru_utime + kids.ru_stime


ENV = dict(os.environ)


def run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)


def largest_closures(packages, count: int = 20) -> list[str]:
    index = Index.build(packages, arch="x86_64")
    sizes = []
    for name in sorted(index.by_name):
        try:
            sizes.append((-len(Resolver(index).resolve([name])), name))
        except ResolveError:
            pass
    return [name for _, name in sorted(sizes)[:count]]


def main() -> int:
    n = int(os.environ.get("BENCH_RUNS", "15"))
    work = Path(tempfile.mkdtemp(prefix="bench-cli-"))
    try:
        (work / "repo" / "x86_64").mkdir(parents=True)
        shutil.copy(INDEX, work / "repo" / "x86_64" / "APKINDEX.tar.gz")
        packages = apkindex.read_file(INDEX, verify=False).packages
        world = largest_closures(packages) + ["busybox"]
        (work / "image.yaml").write_text(
            f"contents:\n  repositories: [{work / 'repo'}]\n  keyring: [{KEY}]\n"
            f"  packages: [{', '.join(world)}]\narchs: [x86_64]\n")
        cache = work / "cache"
        # as an installed package runs: bytecode written once and reused (kept out of the tree)
        ENV.pop("PYTHONDONTWRITEBYTECODE", None)
        ENV["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
        show = [*ENTRY, "image", "show-packages", str(work / "image.yaml"), "--cache-dir", str(cache)]
        run(*show)  # warm the caches (and the bytecode)
        run(*ENTRY, "--help")

        load0 = os.getloadavg()[0]
        t_pass = best(lambda: run(sys.executable, "-c", "pass"), n)
        t_help = best(lambda: run(*ENTRY, "--help"), n)
        t_show = best(lambda: run(*show), n)

        def without_step_cache() -> None:
            shutil.rmtree(cache / "steps", ignore_errors=True)
            run(*show)

        t_nostep = best(without_step_cache, n)

        fetcher = Fetcher(Cache(cache))
        ring = fetcher.keyring([str(KEY)])
        repo = Repository.parse(str(work / "repo"))
        t_warm = best(lambda: fetcher.index(repo, "x86_64", ring), n)
        t_cold = best(lambda: apkindex.read(INDEX.read_bytes(), str(INDEX), ring), max(3, n // 3))
        pkgs = fetcher.index(repo, "x86_64", ring)
        t_build = best(lambda: Index.build(pkgs, arch="x86_64"), max(3, n // 3))
        index = Index.build(pkgs, arch="x86_64")
        solved = len(Resolver(index).resolve(world))
        t_solve = best(lambda: Resolver(index).resolve(world), n)
        load1 = os.getloadavg()[0]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"world: {len(world) - 1} largest closures of Alpine v3.16 main + busybox = {solved} packages")
    print(f"python -c pass:            {t_pass:7.1f} ms (baseline)")
    print(f"distroless --help:         {t_help:7.1f} ms = {t_help / t_pass:.2f}x pass (goal <= 3x)")
    print(f"index read+verify, cold:   {t_cold:7.1f} ms")
    print(f"index read+verify, cached: {t_warm:7.1f} ms = {t_warm / t_cold:.2f}x cold (goal <= 10 ms)")
    print(f"index build (resolver):    {t_build:7.1f} ms")
    print(f"solve the world:           {t_solve:7.1f} ms (goal <= 30 ms)")
    print(f"show-packages, warm:       {t_show:7.1f} ms = {t_show / t_pass:.2f}x pass, "
          f"{t_show - 3 * t_pass:+.1f} ms over 3x pass (goal <= +40 ms)")
    print(f"  without the step cache:  {t_nostep:7.1f} ms = {t_nostep / t_pass:.2f}x pass, "
          f"{t_nostep - 3 * t_pass:+.1f} ms over 3x pass")
    print(f"load average (1 min):      {load0:.1f} before, {load1:.1f} after; CPU ms, best of {n}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
