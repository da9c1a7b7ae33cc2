"""The Bazel rules with the real Bazel 4.2.3 (Debian's bazel-bootstrap): offline builds, the
image digest against the CLI's, disk and HTTP remote caches, incremental action counts, and the
verification test rule on good and tampered signatures.

The tests share one copy of the workspace (a temporary directory, so bazel-* links and re-written
locks never touch the checkout), one output_user_root and one repository cache, and the expensive
first build through session fixtures: each test asks for what it needs and runs in any order.
Output bases: A (warm: packages, lock, fetch, incremental), B (fresh, disk cache, downloads
disabled), D (fresh, HTTP remote cache only), E (fresh, disk cache, the interpreter at another
path), M (examples/monorepo, its own workspace).

Remote-execution readiness: `bazel aquery` finds no client path in any action, layouts hold
regular files under linux-sandbox, and an edit of the BuildKit front door re-runs no image action
(tests/remote builds the example through a real Remote Execution API service).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
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
COPY = ["WORKSPACE", ".bazelrc", ".bazelignore", "bazel", "distroless", "examples/bazel", "examples/recipes",
        "examples/monorepo"]
ALL_IMAGE = "//examples/bazel:all"
HERMETIC = "//examples/bazel/hermetic:demo-motd"
MOTD = Path("examples/bazel/hermetic/x86_64/demo-motd-0.1.0-r0.apk")
# the example's files that name its repository's port (moved to a free port in the copy)
PORTED = ("examples/bazel/image.yaml", "examples/bazel/demo.lock.json", "examples/bazel/hermetic/demo-motd.yaml",
          "examples/bazel/hermetic/demo-motd.env.lock.json")

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

    def run(self, base: str, command: str, *args: str, check: bool = True, timeout: int = 600,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        ob = self.tmp / "bases" / base
        self.bases.add(ob)
        cmd = [BAZEL, f"--output_user_root={self.user_root}", f"--output_base={ob}", "--max_idle_secs=60",
               command]
        if command in ("build", "test", "run"):
            # no bazel-* links: //... would wander into another output base's execroot
            cmd += [f"--repository_cache={self.repo_cache}", "--symlink_prefix=/"]
        elif command in ("aquery", "fetch"):  # fetch what they need: from this run's repository cache
            cmd += [f"--repository_cache={self.repo_cache}"]
        cmd += list(args)
        proc = subprocess.run(cmd, cwd=self.ws, env=dict(self.env, **(env or {})), capture_output=True, text=True,
                              timeout=timeout)
        if check and proc.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-6000:]}\n{proc.stdout[-2000:]}")
        return proc

    def shutdown(self) -> None:
        """Every output base's server at once (each takes seconds to stop)."""
        procs = [subprocess.Popen([BAZEL, f"--output_user_root={self.user_root}", f"--output_base={ob}", "shutdown"],
                                  cwd=self.ws, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for ob in self.bases]
        for p in procs:
            try:
                p.wait(timeout=120)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

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
    for rel in PORTED:
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
    cli: Path  # `distroless image build` of the same config + lock: layout/, sbom/; packages/ (package build)
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
        lock_environment(bz, "A")
        lock = json.loads((bz.ws / "examples/bazel/demo.lock.json").read_text())
        # the CLI from the same config + lock + SOURCE_DATE_EPOCH, against the same repository
        cli = bz.tmp / "cli"
        (cli / "layout").mkdir(parents=True)
        env = dict(os.environ, SOURCE_DATE_EPOCH=SDE)
        proc = subprocess.run([sys.executable, "-m", "distroless", "image", "build", "examples/bazel/image.yaml",
                               "distroless/demo:latest", str(cli / "layout"), "--lockfile", "examples/bazel/demo.lock.json",
                               "--cache-dir", str(cli / "cache"), "--sbom-path", str(cli / "sbom")],
                              cwd=bz.ws, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        # the hermetic recipe as `distroless package build` builds it: resolving its environment
        proc = subprocess.run([sys.executable, "-m", "distroless", "package", "build", "examples/bazel/hermetic/demo-motd.yaml",
                               "--signing-key", "examples/bazel/demo.rsa", "--out-dir", str(cli / "packages"),
                               "--apk-cache-dir", str(cli / "cache")],
                              cwd=bz.ws, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        bz.run("A", "fetch", "//...")  # every locked APK into the repository cache
    finally:
        server.stop()
    # offline from here: the repository is gone, and Bazel may not download
    log_a = bz.tmp / "exec-A.json"
    bz.run("A", "build", "//...", *caches, "--experimental_repository_disable_download",
           f"--execution_log_json_file={log_a}")
    out = bz.tmp / "first-build-out"
    shutil.copytree(bz.bin("A") / "examples" / "bazel", out, ignore=shutil.ignore_patterns("*.runfiles*", "packages"))
    return FirstBuild(spawns(log_a0) + spawns(log_a), lock, out, cli, remote)


def lock_environment(bz: Bazel, base: str) -> None:
    """`bazel run //examples/bazel/hermetic:lock`: demo-motd's build environment against the
    served repository, into the workspace's demo-motd.env.lock.json."""
    bz.run(base, "run", "//examples/bazel/hermetic:lock", "--", "--cache-dir", str(bz.tmp / f"env-lock-cache-{base}"))


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


# --------------------------------------------------------------------------- hermetic package builds


def test_hermetic_package_built_offline_equals_cli(first_build):
    """demo-motd from its locked environment (the APK server stopped, downloads disabled) in
    Bazel's linux-sandbox is byte-identical to `distroless package build`, which resolves it."""
    built = first_build.out / MOTD.relative_to("examples/bazel")
    cli = first_build.cli / "packages" / "x86_64" / MOTD.name
    assert built.read_bytes() == cli.read_bytes()
    (spawn,) = [e for e in first_build.spawns if MOTD.as_posix() in " ".join(e.get("listedOutputs", []))]
    assert spawn.get("runner") == "linux-sandbox" and not spawn.get("remoteCacheHit"), spawn.get("runner")
    print(f"\n{MOTD.name}: {len(built.read_bytes())} bytes, equal to `package build`'s; runner {spawn['runner']}")


def test_an_environment_package_change_rekeys_the_hermetic_build(bz, first_build):
    """A new demo-busybox (the environment's one package) re-locked: the action re-runs."""
    recipe = bz.ws / "examples/recipes/demo-busybox.yaml"
    env_lock = bz.ws / "examples/bazel/hermetic/demo-motd.env.lock.json"
    with restored(recipe, env_lock):
        before = json.loads(env_lock.read_text())["contents"]["packages"][0]["sha256"]
        recipe.write_text(recipe.read_text().replace("(a build environment for the demo)", "(a build environment, changed)"))
        bz.run("A", "build", "//examples/bazel/packages:repository")
        server = serve_packages(bz)
        try:
            lock_environment(bz, "A")
            after = json.loads(env_lock.read_text())["contents"]["packages"][0]["sha256"]
            bz.run("A", "fetch", HERMETIC)
        finally:
            server.stop()
        log = bz.tmp / "exec-A5.json"
        bz.run("A", "build", HERMETIC, "--experimental_repository_disable_download", f"--execution_log_json_file={log}")
    ran = executed(spawns(log))
    assert before != after
    assert [e.get("mnemonic") for e in ran] == ["DistrolessMelange"], describe(ran)
    print(f"\ndemo-busybox changed ({before[:12]} -> {after[:12]}): the hermetic build re-ran")


NO_ENVIRONMENT_BUILD = """load("//bazel:defs.bzl", "melange_package")

melange_package(name = "bare", recipe = "//examples/bazel/hermetic:demo-motd.yaml", version = "0.1.0-r0")
"""


def test_a_package_build_names_where_its_environment_comes_from(bz, first_build):
    """Neither a locked environment nor the host toolchain: refused at analysis, so no action
    ever downloads its build environment."""
    pkg = bz.ws / "noenvcheck"
    try:
        pkg.mkdir()
        (pkg / "BUILD.bazel").write_text(NO_ENVIRONMENT_BUILD)
        proc = bz.run("A", "build", "//noenvcheck:bare", check=False)
    finally:  # other tests build //... in this workspace
        shutil.rmtree(pkg, ignore_errors=True)
    assert proc.returncode != 0
    assert "//noenvcheck:bare: give the build environment as a lock" in proc.stderr, proc.stderr[-3000:]


# --------------------------------------------------------------------------- remote-execution readiness


def aquery_actions(bz: Bazel, base: str, expr: str) -> list[dict]:
    """`bazel aquery --output=jsonproto`: each action's arguments, env, requirements, input paths."""
    proc = bz.run(base, "aquery", "--output=jsonproto", expr)
    doc = json.loads(proc.stdout)
    frags = {f["id"]: f for f in doc.get("pathFragments", [])}

    def path(fid: int) -> str:
        parts = []
        while fid:
            parts.append(frags[fid]["label"])
            fid = frags[fid].get("parentId", 0)
        return "/".join(reversed(parts))

    arts = {a["id"]: path(a["pathFragmentId"]) for a in doc.get("artifacts", [])}
    sets = {d["id"]: d for d in doc.get("depSetOfFiles", [])}

    def inputs(ids: list[int]) -> set[str]:
        out, todo, seen = set(), list(ids), set()
        while todo:
            d = todo.pop()
            if d in seen:
                continue
            seen.add(d)
            out |= {arts[a] for a in sets[d].get("directArtifactIds", [])}
            todo.extend(sets[d].get("transitiveDepSetIds", []))
        return out

    return [{"mnemonic": a["mnemonic"], "arguments": a.get("arguments", []),
             "env": {e["key"]: e["value"] for e in a.get("environmentVariables", [])},
             "requirements": {e["key"]: e["value"] for e in a.get("executionInfo", [])},
             "inputs": inputs(a.get("inputDepSetIds", []))} for a in doc.get("actions", [])]


def client_path_hits(bz: Bazel, action: dict) -> list[str]:
    """Absolute paths in an action's arguments, env or inputs that name the client: homes, the
    checkout, this run's workspace copy and output bases, the interpreter."""
    exe = os.path.realpath(sys.executable)
    bad = ["/root", "/home", str(ROOT), str(bz.ws), str(bz.tmp), exe, os.path.dirname(exe), sys.prefix]
    words = action["arguments"] + [f"{k}={v}" for k, v in action["env"].items()] + sorted(action["inputs"])
    paths = [t for w in words for t in re.split(r"[=:,\s]", w) if t.startswith("/")]
    return [t for t in paths for b in bad if t == b or t.startswith(b.rstrip("/") + "/")]


def test_actions_name_no_client_path(bz, first_build):
    actions = aquery_actions(bz, "A", 'mnemonic("Distroless.*", deps(//examples/bazel/...))')
    assert len(actions) >= 15, [a["mnemonic"] for a in actions]
    for a in actions:
        assert not client_path_hits(bz, a), (a["mnemonic"], client_path_hits(bz, a)[:5])
        # the interpreter is the flag's default, looked up on a fixed PATH; inputs are relative
        assert a["arguments"][:2] == ["bazel/private/python.sh", "python3"], a["arguments"][:3]
        assert a["env"] == {"LC_ALL": "C.UTF-8", "PATH": "/usr/local/bin:/usr/bin:/bin"}, a["env"]
        assert not [i for i in a["inputs"] if i.startswith("/")]
        # the step's own engine files, not the whole engine: the BuildKit front door is never one
        assert not [i for i in a["inputs"] if i.startswith("distroless/buildkit/")], a["mnemonic"]
    # host-toolchain package builds: local only, and the host compiler/libc identity is in the key
    melange = [a for a in actions if a["mnemonic"] == "DistrolessMelange" and "--env-lock" not in a["arguments"]]
    identity = "external/distroless_host_toolchain/identity.txt"
    assert len(melange) == 4
    for a in melange:
        assert a["requirements"].get("no-remote-exec") == "1" and identity in a["inputs"], a["requirements"]
    # the hermetic one: its environment's APKs (and lock) are inputs; remotable, sandboxed, no network
    (hermetic,) = [a for a in actions if "--env-lock" in a["arguments"]]
    apks = sorted(i for i in hermetic["inputs"] if i.startswith("external/motd_env__") and i.endswith("/pkg.apk"))
    assert apks == ["external/motd_env__x86_64__demo-busybox__0.1.0-r0/pkg.apk"], sorted(hermetic["inputs"])
    assert "examples/bazel/hermetic/demo-motd.env.lock.json" not in hermetic["inputs"]  # the hub's copy is
    assert "external/motd_env/lock.json" in hermetic["inputs"]
    assert hermetic["requirements"] == {"block-network": "1"}, hermetic["requirements"]
    others = [a for a in actions if a not in melange]
    assert not [a for a in others if "no-remote-exec" in a["requirements"] or identity in a["inputs"]]
    recorded = (bz.tmp / "bases" / "A" / identity).read_text()
    assert recorded.startswith("cc: ") and "\nlibc: " in recorded, recorded
    print(f"\naquery: {len(actions)} actions, no client path in arguments, env or inputs; "
          f"{len(melange)} host-toolchain builds keyed by {recorded.splitlines()}; 1 hermetic build "
          f"over {apks} ({hermetic['requirements']})")


def test_monorepo_lock_set_shares_packages_and_names_no_client_path(bz):
    """examples/monorepo, its own workspace over @distroless: one hub for 12 locks holds one
    repository per distinct package; its package actions name no client path either."""
    mono = Bazel(bz.ws / "examples" / "monorepo", bz.tmp, bz.repo_port)
    try:
        targets = mono.run("M", "query", "@mono_locks//:all").stdout.split()
        locks = sorted(p.name.removesuffix(".lock.json") for p in (mono.ws / "locks").glob("*.lock.json"))
        assert len(locks) == 12
        assert {f"@mono_locks//:{l}_x86_64" for l in locks} <= set(targets), targets
        pinned = [(p["name"], p["version"]) for l in locks
                  for p in json.loads((mono.ws / "locks" / f"{l}.lock.json").read_text())["contents"]["packages"]]
        repos = (bz.tmp / "bases" / "M" / "external" / "mono_locks" / "repositories.bzl").read_text()
        assert repos.count("apk_archive(name") == len(set(pinned)) < len(pinned), (len(set(pinned)), len(pinned))
        actions = aquery_actions(mono, "M", 'mnemonic("Distroless.*", deps(//packages:repository))')
        assert len(actions) == 24  # 23 synthetic packages + the index
        for a in actions:
            assert not client_path_hits(bz, a), (a["mnemonic"], client_path_hits(bz, a)[:5])
    finally:
        mono.shutdown()
    print(f"\nmonorepo: {len(locks)} locks pin {len(pinned)} packages, {len(set(pinned))} repositories; "
          f"{len(actions)} package actions without client paths")


def test_layouts_hold_regular_files_under_linux_sandbox(bz, first_build):
    runners = {e.get("runner") for e in first_build.spawns if e.get("mnemonic") in ("DistrolessImage", "DistrolessIndex")}
    assert runners == {"linux-sandbox"}, runners
    out = bz.bin("A") / "examples" / "bazel"  # not first_build.out: a copy would follow links
    for name in ("demo/layout", "demo_index/layout", "demo_signed/layout"):
        files = [p for p in (out / name).rglob("*") if not p.is_dir()]
        assert files, name
        links = [str(p) for p in files if p.is_symlink()]
        assert not links, links[:3]


def other_interpreter(tmp: Path) -> Path:
    """The same interpreter and modules at another path (another realpath too): a copy of the
    executable beside a venv config whose lib/ is this venv's."""
    if sys.prefix == sys.base_prefix:
        pytest.fail("run the tests from the project's venv (make .venv/.installed)")
    root = tmp / "elsewhere" / "py"
    if not (root / "bin" / "python3").exists():
        (root / "bin").mkdir(parents=True)
        shutil.copy2(os.path.realpath(sys.executable), root / "bin" / "python3")
        shutil.copy2(Path(sys.prefix) / "pyvenv.cfg", root / "pyvenv.cfg")
        (root / "lib").symlink_to(Path(sys.prefix) / "lib")
    exe = root / "bin" / "python3"
    assert os.path.realpath(exe) != os.path.realpath(sys.executable)
    return exe


def test_client_with_interpreter_elsewhere_shares_the_cache(bz, first_build):
    """Another client (output base E) whose interpreter lives at another path: every action is a
    disk-cache hit, so no interpreter path is part of any action key."""
    exe = other_interpreter(bz.tmp)
    log = bz.tmp / "exec-E.json"
    bz.run("E", "build", ALL_IMAGE, "--experimental_repository_disable_download", f"--disk_cache={bz.disk_cache}",
           f"--execution_log_json_file={log}", env={"DISTROLESS_PYTHON": str(exe)})
    site = bz.tmp / "bases" / "E" / "external" / "distroless_python" / "site"
    assert str(exe.parent.parent) in os.readlink(next(site.iterdir())), "E did not take the other interpreter's modules"
    e = spawns(log)
    assert e and executed(e) == [], describe(executed(e))
    print(f"\ninterpreter at {exe}: {len(e)} spawns, all disk-cache hits")


def test_editing_the_buildkit_front_door_reruns_no_image_action(bz, first_build):
    frontend = bz.ws / "distroless" / "buildkit" / "frontend.py"
    gz = bz.ws / "distroless" / "oci" / "gzip.py"
    server = serve_packages(bz)
    try:
        bz.run("A", "build", ALL_IMAGE)  # up to date whatever ran before in this session
        with restored(frontend, gz):
            frontend.write_text(frontend.read_text() + "\n# an edit of the BuildKit front door\n")
            log = bz.tmp / "exec-A3.json"
            bz.run("A", "build", ALL_IMAGE, f"--execution_log_json_file={log}")
            ran = spawns(log)
            assert ran == [], describe(ran)
            # the inputs are real: an edit of the compression code re-runs the steps that import it
            gz.write_text(gz.read_text() + "\n# an edit of the layer compression\n")
            log = bz.tmp / "exec-A4.json"
            bz.run("A", "build", ALL_IMAGE, f"--execution_log_json_file={log}")
            mnemonics = {e.get("mnemonic") for e in executed(spawns(log))}
            assert "DistrolessLayer" in mnemonics and "DistrolessExpand" not in mnemonics, mnemonics
    finally:
        server.stop()
    print(f"\nBuildKit front door edited: 0 actions; oci/gzip.py edited: {sorted(mnemonics)}")


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
