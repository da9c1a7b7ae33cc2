"""The Bazel rules with the real Bazel 4.2.3 (Debian's bazel-bootstrap): offline builds, the
image digest against the CLI's, disk and HTTP remote caches, incremental action counts, and the
verification test rule on good and tampered signatures.

The tests share one copy of the workspace (a temporary directory, so bazel-* links and re-written
locks never touch the checkout), one output_user_root and one repository cache, and the expensive
first build through session fixtures: each test asks for what it needs and runs in any order.
Output bases: A (warm: packages, lock, fetch, incremental), B (fresh, disk cache, downloads
disabled), D (fresh, HTTP remote cache only).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.httpserver import StaticServer, free_port

ROOT = Path(__file__).resolve().parent.parent
BAZEL = shutil.which("bazel") or "/usr/bin/bazel"
REPO_PORT = 18736  # examples/bazel/image.yaml's repository (moved to a free port in the copy)
SDE = "1700000000"
COPY = ["WORKSPACE", ".bazelrc", ".bazelignore", "bazel", "distroless", "examples/bazel", "examples/recipes"]
ALL_IMAGE = "//examples/bazel:all"

# --------------------------------------------------------------------------- harness


class Bazel:
    def __init__(self, ws: Path, tmp: Path, repo_port: int):
        self.ws, self.tmp, self.repo_port = ws, tmp, repo_port
        self.user_root = tmp / "user_root"
        self.repo_cache = tmp / "repository_cache"
        self.disk_cache = tmp / "disk_cache"
        self.bases: set[Path] = set()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("BAZEL", "TEST_"))}
        # the repository rule takes the engine's third-party modules from this interpreter
        self.env["DISTROLESS_PYTHON"] = sys.executable
        self.env.pop("DISTROLESS_APK_MIRRORS", None)

    def run(self, base: str, command: str, *args: str, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
        ob = self.tmp / "bases" / base
        self.bases.add(ob)
        cmd = [BAZEL, f"--output_user_root={self.user_root}", f"--output_base={ob}", "--max_idle_secs=60",
               command]
        if command in ("build", "test", "run", "fetch"):
            # no bazel-* links: //... would wander into another output base's execroot
            cmd += [f"--repository_cache={self.repo_cache}", "--symlink_prefix=/"]
        cmd += list(args)
        proc = subprocess.run(cmd, cwd=self.ws, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-6000:]}\n{proc.stdout[-2000:]}")
        return proc

    def shutdown(self) -> None:
        for ob in self.bases:
            subprocess.run([BAZEL, f"--output_user_root={self.user_root}", f"--output_base={ob}", "shutdown"],
                           cwd=self.ws, env=self.env, capture_output=True, timeout=120)

    def bin(self, base: str) -> Path:
        return self.tmp / "bases" / base / "execroot" / "distroless" / "bazel-out" / "k8-fastbuild" / "bin"


def spawns(log: Path) -> list[dict]:
    """The execution log (Bazel 4 writes concatenated JSON objects, not an array)."""
    text, out, pos = log.read_text(), [], 0
    dec = json.JSONDecoder()
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return out
        obj, pos = dec.raw_decode(text, pos)
        out.append(obj)


def executed(entries: list[dict]) -> list[dict]:
    return [e for e in entries if not e.get("remoteCacheHit")]


def describe(entries: list[dict]) -> list[str]:
    return sorted(f"{e.get('mnemonic', '?')} {e.get('progressMessage', '') or (e.get('listedOutputs') or [''])[0]}"
                  for e in entries)


class Nginx:
    """nginx with WebDAV PUT on loopback: Bazel's HTTP remote cache protocol (GET/PUT /ac, /cas)."""

    def __init__(self, root: Path):
        self.root, self.port = root, free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Nginx":
        exe = shutil.which("nginx") or "/usr/sbin/nginx"
        if not os.path.exists(exe):
            pytest.fail("nginx is not installed (tests/peers/peers.sh installs it)")
        for d in ("data", "tmp", "logs"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        conf = self.root / "nginx.conf"
        temp = "\n".join(f"  {k}_temp_path {self.root}/tmp/{k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        conf.write_text(f"""daemon off;
user root;
worker_processes 1;
pid {self.root}/nginx.pid;
error_log {self.root}/logs/error.log;
events {{ worker_connections 256; }}
http {{
  access_log off;
{temp}
  server {{
    listen 127.0.0.1:{self.port};
    root {self.root}/data;
    client_max_body_size 0;
    location / {{
      dav_methods PUT;
      create_full_put_path on;
      dav_access user:rw group:r all:r;
    }}
  }}
}}
""")
        self.proc = subprocess.Popen([exe, "-c", str(conf), "-p", str(self.root), "-e", str(self.root / "logs/error.log")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=1).close()
            except urllib.error.HTTPError:
                return self  # 403/404 from nginx: it is up
            except OSError:
                if self.proc.poll() is not None:
                    pytest.fail(f"nginx exited: {self.proc.stderr.read().decode() if self.proc.stderr else ''}")
                time.sleep(0.1)
                continue
            return self
        pytest.fail("nginx did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def objects(self) -> int:
        return sum(1 for p in (self.root / "data").rglob("*") if p.is_file())


def serve_packages(bz: Bazel) -> StaticServer:
    """examples/bazel/image.yaml's repository: the packages Bazel built in output base A."""
    root = bz.bin("A") / "examples" / "bazel" / "packages"
    try:
        return StaticServer(root, port=bz.repo_port).start()
    except Exception as e:  # noqa: BLE001 - the reason matters more than the type here
        pytest.fail(f"cannot serve the example repository on 127.0.0.1:{bz.repo_port}: {e}")


@pytest.fixture(scope="session")
def bz(tmp_path_factory):
    if not os.path.exists(BAZEL):
        pytest.fail("bazel is not installed (tests/peers/peers.sh installs bazel-bootstrap)")
    tmp = tmp_path_factory.mktemp("bazel")
    ws = tmp / "ws"
    for rel in COPY:
        src, dst = ROOT / rel, ws / rel
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "bazel-*"))
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    # the example's repository on a port of this run's own: tests running at the same time on
    # this machine must not answer each other's downloads
    port = free_port()
    for rel in ("examples/bazel/image.yaml", "examples/bazel/demo.lock.json"):
        f = ws / rel
        f.write_text(f.read_text().replace(f"127.0.0.1:{REPO_PORT}", f"127.0.0.1:{port}"))
    b = Bazel(ws, tmp, port)
    version = b.run("A", "info", "output_base", check=False)
    if version.returncode != 0:
        pytest.fail(f"bazel cannot start: {version.stderr[-3000:]}")
    yield b
    b.shutdown()


@pytest.fixture(scope="session")
def nginx(bz):
    server = Nginx(bz.tmp / "nginx").start()
    yield server
    server.stop()


@dataclass(frozen=True)
class FirstBuild:
    """Output base A's first build, every action uploaded to the disk and HTTP caches; what the
    tests read is copied out, so a later rebuild of A cannot change it."""

    spawns: list[dict]
    lock: dict
    out: Path  # a copy of bazel-bin/examples/bazel after the build
    cli: Path  # `distroless image build` of the same config + lock: layout/, sbom/
    remote: str  # the --remote_cache flag


@pytest.fixture(scope="session")
def first_build(bz, nginx) -> FirstBuild:
    # the demo packages (melange recipes → signed .apk + APKINDEX), served, locked, built
    remote = f"--remote_cache=http://127.0.0.1:{nginx.port}"
    caches = (f"--disk_cache={bz.disk_cache}", remote)
    log_a0 = bz.tmp / "exec-A0.json"
    bz.run("A", "build", "//examples/bazel/packages:repository", *caches, f"--execution_log_json_file={log_a0}")
    server = serve_packages(bz)
    try:
        bz.run("A", "run", "//examples/bazel:lock", *caches, "--", "--cache-dir", str(bz.tmp / "lock-cache"))
        lock = json.loads((bz.ws / "examples/bazel/demo.lock.json").read_text())
        log_a = bz.tmp / "exec-A.json"
        bz.run("A", "build", "//...", *caches, f"--execution_log_json_file={log_a}")
        # the CLI from the same config + lock + SOURCE_DATE_EPOCH, against the same repository
        cli = bz.tmp / "cli"
        (cli / "layout").mkdir(parents=True)
        env = dict(os.environ, SOURCE_DATE_EPOCH=SDE)
        proc = subprocess.run([sys.executable, "-m", "distroless", "image", "build", "examples/bazel/image.yaml",
                               "distroless/demo:latest", str(cli / "layout"), "--lockfile", "examples/bazel/demo.lock.json",
                               "--cache-dir", str(cli / "cache"), "--sbom-path", str(cli / "sbom")],
                              cwd=bz.ws, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
    finally:
        server.stop()
    out = bz.tmp / "first-build-out"
    shutil.copytree(bz.bin("A") / "examples" / "bazel", out, ignore=shutil.ignore_patterns("*.runfiles*", "packages"))
    return FirstBuild(spawns(log_a0) + spawns(log_a), lock, out, cli, remote)


@pytest.fixture(scope="session")
def fresh_with_disk_cache(bz, first_build) -> list[dict]:
    """Output base B, fresh, downloads disabled: every APK from the repository cache, every
    action from the disk cache A filled. Returns B's spawns."""
    log_b = bz.tmp / "exec-B.json"
    bz.run("B", "build", "//...", "--experimental_repository_disable_download", f"--disk_cache={bz.disk_cache}",
           f"--execution_log_json_file={log_b}")
    return spawns(log_b)


# --------------------------------------------------------------------------- the tests (any order)


def test_build_and_test_offline(bz, first_build, fresh_with_disk_cache):
    assert len(first_build.lock["contents"]["packages"]) == 3
    assert len(executed(first_build.spawns)) >= 10
    proc = bz.run("B", "test", "//...", "--experimental_repository_disable_download", f"--disk_cache={bz.disk_cache}")
    assert "//examples/bazel:demo_verify" in proc.stdout + proc.stderr


def test_image_digest_equals_cli(first_build):
    out, cli = first_build.out, first_build.cli
    cli_index = "sha256:" + hashlib.sha256((cli / "layout" / "index.json").read_bytes()).hexdigest()
    assert (out / "demo.digest").read_text().strip() == cli_index
    # not just the digest: the whole layout and the SBOMs are byte-identical
    for f in (cli / "layout").rglob("*"):
        if f.is_file():
            assert (out / "demo" / "layout" / f.relative_to(cli / "layout")).read_bytes() == f.read_bytes(), f
    for f in (cli / "sbom").iterdir():
        assert (out / "demo" / "image.sbom" / f.name).read_bytes() == f.read_bytes(), f.name
    manifest = json.loads((out / "demo/layout/index.json").read_text())["manifests"][0]
    layers = json.loads((out / "demo/layout/blobs/sha256" / manifest["digest"][7:]).read_text())["layers"]
    assert len(layers) == 4  # one per package (layering: package) plus the top layer
    # the top layer names the repository's (per-run) port; the package layers are the regression check
    from tests.regression import check
    check("bazel_example_package_layers", "sha256:" + hashlib.sha256(
        json.dumps([l["digest"] for l in layers[:-1]]).encode()).hexdigest())
    print(f"\nimage index {cli_index}: {len(layers)} layers, equal to `distroless image build`")


def test_fresh_output_base_with_disk_cache_runs_no_action(first_build, fresh_with_disk_cache):
    b = fresh_with_disk_cache
    assert b, "no spawns logged"
    assert executed(b) == [], describe(executed(b))
    print(f"\nfresh output base + disk cache: {len(b)} spawns, all cache hits; "
          f"first build executed {len(executed(first_build.spawns))}")


def test_fresh_output_base_gets_everything_from_http_remote_cache(bz, nginx, first_build):
    assert nginx.objects() > 0, "nothing was uploaded to the remote cache"
    log = bz.tmp / "exec-D.json"
    bz.run("D", "build", "//...", "--experimental_repository_disable_download", first_build.remote,
           f"--execution_log_json_file={log}")
    d = spawns(log)
    assert d and executed(d) == [], describe(executed(d))
    print(f"\nfresh output base + nginx WebDAV remote cache: {len(d)} spawns, all remote hits "
          f"({nginx.objects()} objects stored)")


@contextlib.contextmanager
def restored(*files: Path):
    """Put the files' bytes back afterwards: the workspace is shared by the session's tests."""
    saved = {f: f.read_bytes() for f in files}
    try:
        yield
    finally:
        for f, data in saved.items():
            f.write_bytes(data)


def test_one_package_change_reruns_only_its_actions(bz, first_build):
    recipe = bz.ws / "examples/recipes/demo-hello.yaml"
    log = bz.tmp / "exec-A2.json"
    with restored(recipe, bz.ws / "examples/bazel/demo.lock.json"):
        recipe.write_text(recipe.read_text().replace("prints a greeting.", "prints a greeting (changed)."))
        bz.run("A", "build", "//examples/bazel/packages:repository")
        server = serve_packages(bz)  # the changed APK is downloaded (into the repository cache)
        try:
            bz.run("A", "run", "//examples/bazel:lock", "--", "--cache-dir", str(bz.tmp / "lock-cache-2"))
            bz.run("A", "build", ALL_IMAGE, f"--execution_log_json_file={log}")
        finally:
            server.stop()
    ran = executed(spawns(log))
    by = {}
    for e in ran:
        by.setdefault(e.get("mnemonic", "?"), []).append(e)
    expands = [e["listedOutputs"][0] for e in by.get("DistrolessExpand", [])]
    assert len(expands) == 1 and "demo-hello" in expands[0], describe(ran)
    assert len(by.get("DistrolessAssemble", [])) == 1, describe(ran)
    # 4 layer slots: only demo-hello's layer and the top layer (installed db, world, ...) changed
    layers = sorted(o for e in by.get("DistrolessLayer", []) for o in e["listedOutputs"] if o.endswith(".blob"))
    assert len(layers) == 2, layers
    assert not by.get("DistrolessMelange"), "package builds are not part of the image's graph"
    allowed = {"DistrolessExpand", "DistrolessAssemble", "DistrolessLayer", "DistrolessImage", "DistrolessSbom",
               "DistrolessIndex", "DistrolessSign"}
    assert set(by) <= allowed, describe(ran)
    print(f"\none package changed: {len(ran)} actions ran: "
          + ", ".join(f"{k} x{len(v)}" for k, v in sorted(by.items())))


def _tamper_signature(layout: Path) -> None:
    """Flip one byte of the cosign signature in the layout's sigs manifest; re-digest what names it."""
    index = json.loads((layout / "index.json").read_text())
    entry = next(m for m in index["manifests"] if m.get("annotations", {}).get("kind", "").endswith("/sigs"))
    blob = layout / "blobs/sha256" / entry["digest"][7:]
    manifest = json.loads(blob.read_text())
    ann = manifest["layers"][0]["annotations"]
    sig = bytearray(base64.b64decode(ann["dev.cosignproject.cosign/signature"]))
    sig[len(sig) // 2] ^= 0x01
    ann["dev.cosignproject.cosign/signature"] = base64.b64encode(bytes(sig)).decode()
    raw = json.dumps(manifest, separators=(",", ":")).encode()
    digest = hashlib.sha256(raw).hexdigest()
    (layout / "blobs/sha256" / digest).write_bytes(raw)
    entry["digest"], entry["size"] = "sha256:" + digest, len(raw)
    (layout / "index.json").write_text(json.dumps(index))


VERIFY_BUILD = """load("//bazel:defs.bzl", "distroless_verify_test")

[filegroup(name = n + "_layout", srcs = glob([n + "/**"])) for n in ("good", "bad")]

[distroless_verify_test(name = n, image = ":" + n + "_layout", key = "//examples/bazel:cosign.pub") for n in ("good", "bad")]
"""


def test_verify_test_rule_fails_on_tampered_signature(bz, first_build):
    signed = first_build.out / "demo_signed/layout"
    pkg = bz.ws / "verifycheck"
    try:
        for name in ("good", "bad"):
            shutil.copytree(signed, pkg / name)
            for p in (pkg / name).rglob("*"):
                os.chmod(p, 0o755 if p.is_dir() else 0o644)
        _tamper_signature(pkg / "bad")
        (pkg / "BUILD.bazel").write_text(VERIFY_BUILD)
        good = bz.run("A", "test", "//verifycheck:good", check=False)
        assert good.returncode == 0, good.stderr[-3000:]
        bad = bz.run("A", "test", "//verifycheck:bad", "--test_output=errors", check=False)
        assert bad.returncode == 3, bad.stderr[-3000:]  # 3: the build succeeded, a test failed
        assert "FAILED" in bad.stdout + bad.stderr
    finally:  # other tests build and test //... in this workspace
        shutil.rmtree(pkg, ignore_errors=True)
