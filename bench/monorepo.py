"""The monorepo example at scale (examples/monorepo: 12 images, 3 "languages" x 4 apps, one
lock-set): actions and wall time of a cold build, a no-op rebuild, a one-package bump and a fresh
output base with a warm disk cache; and the bytes of unique layers against the sum of the image
sizes. Figures are printed as ratios against the cold build measured in the same run.

    make bench-monorepo                  # or: .venv/bin/python bench/monorepo.py [--work DIR]

Takes ~10 minutes on 2 cores (Bazel 4.2.3, the project's .venv). It works on a copy of the
workspace under --work (default: a temporary directory), never on the checkout: the bump edits
packages/defs.bzl and re-locks. Packages are served from the copy's own output base on
127.0.0.1:18737 while locking and fetching, as the images' configs say.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COPY = ["WORKSPACE", ".bazelrc", ".bazelignore", "bazel", "distroless", "examples/monorepo"]
MONO = Path("examples/monorepo")
PORT = 18737
BUMP = ('"mono-tzdata": ("2024a-r0"', '"mono-tzdata": ("2024b-r0"')  # in every image


@dataclass
class Run:
    label: str
    seconds: float
    spawns: list[dict]

    @property
    def executed(self) -> list[dict]:
        return [s for s in self.spawns if not s.get("remoteCacheHit")]


class Bazel:
    def __init__(self, work: Path):
        self.ws = work / "ws" / MONO
        self.work = work
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("BAZEL", "TEST_"))}
        self.env["DISTROLESS_PYTHON"] = sys.executable
        self.bases: set[Path] = set()
        self.logs = 0

    def base(self, name: str) -> Path:
        return self.work / "bases" / name

    def bin(self, name: str) -> Path:
        return self.base(name) / "execroot" / "monorepo" / "bazel-out" / "k8-fastbuild" / "bin"

    def build(self, base: str, *targets: str, disk_cache: Path | None = None) -> Run:
        self.logs += 1
        log = self.work / f"exec-{self.logs}.json"
        ob = self.base(base)
        self.bases.add(ob)
        cmd = ["bazel", f"--output_user_root={self.work / 'user_root'}", f"--output_base={ob}", "--max_idle_secs=120",
               "build", f"--repository_cache={self.work / 'repository_cache'}", "--symlink_prefix=/",
               f"--execution_log_json_file={log}"]
        if disk_cache:
            cmd.append(f"--disk_cache={disk_cache}")
        start = time.monotonic()
        proc = subprocess.run(cmd + list(targets), cwd=self.ws, env=self.env, capture_output=True, text=True)
        seconds = time.monotonic() - start
        if proc.returncode:
            sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-4000:]}")
        return Run(" ".join(targets), seconds, spawns(log))

    def aquery_client_paths(self, base: str, expr: str) -> tuple[int, list[str]]:
        """(actions, absolute client paths named anywhere in them) from `bazel aquery`."""
        ob = self.base(base)
        proc = subprocess.run(["bazel", f"--output_user_root={self.work / 'user_root'}", f"--output_base={ob}",
                               "aquery", "--output=jsonproto", expr], cwd=self.ws, env=self.env,
                              capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f"aquery failed:\n{proc.stderr[-3000:]}")
        doc = json.loads(proc.stdout)
        exe = os.path.realpath(sys.executable)
        bad = ("/root/", "/home/", str(ROOT) + "/", str(self.work) + "/", exe, os.path.dirname(exe) + "/")
        words = [w for a in doc.get("actions", []) for w in a.get("arguments", [])]
        words += [e["value"] for a in doc.get("actions", []) for e in a.get("environmentVariables", [])]
        words += [f["label"] for f in doc.get("pathFragments", [])]
        return len(doc.get("actions", [])), [w for w in words if any(b in w for b in bad)]

    def shutdown(self) -> None:
        for ob in self.bases:
            subprocess.run(["bazel", f"--output_user_root={self.work / 'user_root'}", f"--output_base={ob}",
                            "shutdown"], cwd=self.ws, env=self.env, capture_output=True)


def spawns(log: Path) -> list[dict]:
    """Bazel 4's execution log: concatenated JSON objects."""
    if not log.exists():
        return []
    text, out, pos, dec = log.read_text(), [], 0, json.JSONDecoder()
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return out
        obj, pos = dec.raw_decode(text, pos)
        out.append(obj)


@contextlib.contextmanager
def serve(directory: Path):
    handler = functools.partial(QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", PORT), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def relock(bz: Bazel, base: str) -> float:
    """`distroless image lock` for every image config, in this process, against the packages the
    base built (served as the configs say)."""
    from distroless.cli import main as cli

    start = time.monotonic()
    cache = Path(tempfile.mkdtemp(prefix="lock-cache-", dir=bz.work))  # fresh: packages change
    with serve(bz.bin(base) / "packages"), contextlib.chdir(bz.ws):
        for cfg in sorted((bz.ws / "images").glob("*.yaml")):
            out = bz.ws / "locks" / (cfg.stem + ".lock.json")
            with contextlib.redirect_stdout(sys.stderr):
                if cli(["image", "lock", str(cfg.relative_to(bz.ws)), "--output", str(out), "--cache-dir", str(cache)]):
                    sys.exit(f"locking {cfg} failed")
    return time.monotonic() - start


def images_of(run: Run, apps: list[str]) -> set[str]:
    """Which images an action belongs to, from its outputs (bin/<app>/..., bin/<app>.digest)."""
    hit = set()
    for s in run.executed:
        for o in s.get("listedOutputs", []):
            rel = o.split("/bin/", 1)[-1]
            head = rel.split("/", 1)[0].removesuffix(".digest").removesuffix("_index")
            if head in apps:
                hit.add(head)
    return hit


def layer_sharing(bin_dir: Path, apps: list[str]) -> tuple[int, int, int]:
    """(sum of image sizes, bytes of unique blobs, layer count) over the images' layouts."""
    total, unique = 0, {}
    layers = 0
    for app in apps:
        layout = bin_dir / app / "layout"
        index = json.loads((layout / "index.json").read_text())
        for m in index["manifests"]:
            manifest = json.loads((layout / "blobs/sha256" / m["digest"][7:]).read_text())
            blobs = [(m["digest"], m["size"]), (manifest["config"]["digest"], manifest["config"]["size"])]
            blobs += [(l["digest"], l["size"]) for l in manifest["layers"]]
            layers += len(manifest["layers"])
            for digest, size in blobs:
                total += size
                unique[digest] = size
    return total, sum(unique.values()), layers


def by_mnemonic(run: Run) -> str:
    c = Counter(s.get("mnemonic", "?") for s in run.executed)
    return ", ".join(f"{k.removeprefix('Distroless')} {v}" for k, v in sorted(c.items()))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, help="work directory (default: a new temporary one, removed after)")
    args = p.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="distroless-monorepo-"))
    if (work / "ws").exists():
        shutil.rmtree(work / "ws")
    for rel in COPY:
        src, dst = ROOT / rel, work / "ws" / rel
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "bazel-*"))
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    sys.path.insert(0, str(ROOT))
    bz = Bazel(work)
    apps = sorted(p.stem for p in (bz.ws / "images").glob("*.yaml"))
    disk = work / "disk_cache"
    try:
        # the locks in the checkout are current when the packages build the same bytes here;
        # re-lock anyway so the bench never measures a stale lock
        bz.build("setup", "//packages:repository")
        relock(bz, "setup")
        with serve(bz.bin("setup") / "packages"):
            cold = bz.build("main", "//...", disk_cache=disk)
            noop = bz.build("main", "//...", disk_cache=disk)
        edited = bz.ws / "packages" / "defs.bzl"
        text = edited.read_text()
        if BUMP[0] not in text:
            sys.exit(f"{edited}: {BUMP[0]!r} not found")
        edited.write_text(text.replace(BUMP[0], BUMP[1]))
        bump_pkgs = bz.build("main", "//packages:repository", disk_cache=disk)
        lock_seconds = relock(bz, "main")
        with serve(bz.bin("main") / "packages"):
            bump = bz.build("main", "//...", disk_cache=disk)
            warm = bz.build("warm", "//...", disk_cache=disk)
        total, unique, layers = layer_sharing(bz.bin("warm"), apps)
        n_actions, client_paths = bz.aquery_client_paths("warm", 'mnemonic("Distroless.*", deps(//...))')
    finally:
        bz.shutdown()
    bumped = images_of(bump, apps)
    c = cold.seconds
    print(f"monorepo: {len(apps)} images ({len(apps)} indexes) over one lock-set; Bazel {bazel_version()}")
    print(f"  cold build              {len(cold.executed):4d} actions  {cold.seconds:7.1f} s  (baseline)")
    print(f"  no-op rebuild           {len(noop.executed):4d} actions  {noop.seconds:7.1f} s  ({noop.seconds / c:.3f}x cold)")
    print(f"  one-package bump        {len(bump.executed):4d} actions  {bump.seconds:7.1f} s  ({bump.seconds / c:.3f}x cold) "
          f"across {len(bumped)} of {len(apps)} images: {by_mnemonic(bump)}")
    print(f"    (+ rebuilding the package: {len(bump_pkgs.executed)} actions {bump_pkgs.seconds:.1f} s; "
          f"re-locking {len(apps)} configs {lock_seconds:.1f} s)")
    print(f"  fresh base + disk cache {len(warm.executed):4d} actions  {warm.seconds:7.1f} s  ({warm.seconds / c:.3f}x cold); "
          f"{len(warm.spawns)} cache hits")
    print(f"  layers: {layers} in {len(apps)} images; sum of image sizes {total / 1e6:.2f} MB, "
          f"unique blobs {unique / 1e6:.2f} MB ({unique / total:.3f}x: sharing saves {1 - unique / total:.0%})")
    print(f"  aquery over every image: {n_actions} actions, {len(client_paths)} naming a client path "
          f"{client_paths[:3] if client_paths else ''}")
    if not args.work:
        remove(work)
    return 0


def remove(path: Path) -> None:
    """Output bases are read-only trees: make them writable first."""
    for dirpath, dirnames, _ in os.walk(path):
        for d in dirnames:
            if not os.path.islink(os.path.join(dirpath, d)):
                with contextlib.suppress(OSError):
                    os.chmod(os.path.join(dirpath, d), 0o755)
    shutil.rmtree(path, ignore_errors=True)


def bazel_version() -> str:
    """Debian's bazel-bootstrap says `bazel no_version`: ask dpkg then."""
    proc = subprocess.run(["bazel", "--version"], capture_output=True, text=True)
    version = proc.stdout.strip().removeprefix("bazel ")
    if version in ("", "no_version"):
        pkg = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "bazel-bootstrap"], capture_output=True, text=True)
        version = f"{pkg.stdout.strip()} (bazel-bootstrap)" if pkg.returncode == 0 else "unknown"
    return version


if __name__ == "__main__":
    sys.exit(main())
