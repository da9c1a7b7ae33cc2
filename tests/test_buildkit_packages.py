"""The frontend's packages mode on dockerd 26 + buildx: a melange recipe behind `# syntax=` gives
signed APKs byte-identical to `distroless package build`, one cached ExecOp per step."""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from distroless.buildkit.recipes import KEY_ID_STEP
from httpserver import StaticServer
from test_buildkit_frontend import uncached

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "examples" / "recipes"
SDE = "1700000000"
# demo-hello needs gcc, which the frontend's image (the host-toolchain environment) does not have
HOST_TOOL_RECIPES = ("demo-baselayout", "ca-certificates-bundle")


@pytest.fixture(scope="module")
def key(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bkkey")
    subprocess.run([sys.executable, "-m", "distroless", "keygen", str(d / "melange.rsa"), "--key-size", "2048"],
                   check=True, capture_output=True)
    return d / "melange.rsa"


def with_syntax(src: Path, dest: Path, frontend_ref: str) -> Path:
    dest.write_text(f"# syntax={frontend_ref}\n" + src.read_text())
    return dest


def buildx_packages(docker, recipe: Path, ctx: Path, out: Path, key: Path | None, *args: str,
                    check: bool = True) -> subprocess.CompletedProcess:
    secret = ["--secret", f"id=signing-key,src={key}"] if key else ["--build-arg", "DISTROLESS_UNSIGNED=true"]
    return docker.run("buildx", "build", "-f", str(recipe), "--progress=plain", "--build-arg",
                      f"SOURCE_DATE_EPOCH={SDE}", *secret, *args, "-o", f"type=local,dest={out}", str(ctx),
                      check=check, timeout=600)


def cli_build(recipe: Path, source: Path, out: Path, key: Path) -> None:
    env = {**os.environ, "SOURCE_DATE_EPOCH": SDE}
    r = subprocess.run([sys.executable, "-m", "distroless", "package", "build", "--host-toolchain", str(recipe),
                        "--source-dir", str(source), "--out-dir", str(out), "--signing-key", str(key)],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]


def apks(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.glob("*/*.apk"))}


def verify(paths: list[Path], key: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "distroless", "package", "verify", *map(str, paths),
                        "--keyring", f"{key}.pub"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.fixture(scope="module")
def demo_repos(tmp_path_factory, frontend, peers, key) -> tuple[Path, Path, dict[str, str]]:
    """The demo recipes that need no compiler, each built by the frontend into its own repository
    (the build context is examples/recipes, as the CLI's --source-dir): the byte-identity test and
    the demo image's named contexts share them. The recipes are left as they are (the frontend is
    named by BUILDKIT_SYNTAX, as examples/bake does), so the bake test's context is the same bytes
    and its steps are found in the cache. Returns the context, the output root and each log."""
    tmp = tmp_path_factory.mktemp("demo-repos")
    ctx = tmp / "ctx"
    shutil.copytree(RECIPES, ctx, ignore=shutil.ignore_patterns("BUILD.bazel"))
    logs = {name: buildx_packages(peers.docker26, ctx / f"{name}.yaml", ctx, tmp / "bk" / name, key,
                                  "--build-arg", f"BUILDKIT_SYNTAX={frontend}").stderr
            for name in HOST_TOOL_RECIPES}
    return ctx, tmp / "bk", logs


def test_demo_recipes_byte_identical_to_the_cli(tmp_path, demo_repos, key) -> None:
    ctx, out, logs = demo_repos
    for name in HOST_TOOL_RECIPES:
        ours = out / name
        assert "pack " in logs[name] and "index" in logs[name]
        theirs = tmp_path / "cli" / name
        cli_build(ctx / f"{name}.yaml", ctx, theirs, key)
        got, want = apks(ours), apks(theirs)
        assert got.keys() == want.keys() and got, (sorted(got), sorted(want))
        for rel in got:
            assert got[rel] == want[rel], f"{name}: {rel} differs from the CLI's"
        verify([*sorted(ours.glob("*/*.apk")), ours / "x86_64" / "APKINDEX.tar.gz"], key)
        assert sorted(p.name for p in ours.iterdir()) == ["x86_64"]


def test_dockerd20_refuses_the_packages_mode_naming_the_missing_cap(tmp_path, frontend, peers) -> None:
    """dockerd 20.10's BuildKit (0.8) has every cap the image mode needs but not `source.local.differ`
    (0.9), which the recipe's sources need: the frontend refuses by the cap's name before it solves
    anything of the recipe, where BuildKit would say `failed to load LLB: unknown API capability`."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "README").write_text("sources\n")
    recipe = with_syntax(RECIPES / "demo-baselayout.yaml", tmp_path / "demo-baselayout.yaml", frontend)
    docker = peers.docker20
    r = docker.run("build", "-f", str(recipe), "--progress=plain", "--build-arg", "DISTROLESS_UNSIGNED=true",
                   "-o", f"type=local,dest={tmp_path / 'out'}", str(ctx), env=docker.env(DOCKER_BUILDKIT="1"),
                   check=False, timeout=600)
    assert r.returncode != 0
    message = ("demo-baselayout.yaml: the packages mode needs the LLB cap source.local.differ, which this daemon's "
               "BuildKit lacks: BuildKit 0.9 or newer (dockerd 23+ or a docker-container buildx builder; "
               "dockerd 20.10's BuildKit 0.8 builds images only)")
    assert message in r.stderr.splitlines()[-1], r.stderr[-3000:]
    assert "unknown API capability" not in r.stderr and "workspace from the build context" not in r.stderr
    assert not (tmp_path / "out").exists()


STEPS = """\
package:
  name: steps-demo
  version: 1.0.0
  epoch: 0
  description: one ExecOp per step
  copyright:
    - license: Apache-2.0
environment:
  contents:
    packages: []
pipeline:
  - name: first
    runs: |
      mkdir -p "${{targets.destdir}}/usr/share/steps"
      echo first > "${{targets.destdir}}/usr/share/steps/first"
  - name: second
    runs: |
      echo second > "${{targets.destdir}}/usr/share/steps/second"
  - name: last
    runs: |
      echo LAST > "${{targets.destdir}}/usr/share/steps/last"
"""


def steps_recipe(tmp: Path, frontend_ref: str, text: str) -> tuple[Path, Path]:
    """The recipe outside the context: the context is the workspace, so a recipe inside it would
    change the workspace (and re-run every step) when edited."""
    (tmp / "recipe").mkdir(exist_ok=True)
    (tmp / "ctx").mkdir(exist_ok=True)
    (tmp / "ctx" / "README").write_text("sources\n")
    recipe = tmp / "recipe" / "steps.yaml"
    recipe.write_text(f"# syntax={frontend_ref}\n{text}")
    return recipe, tmp / "ctx"


@dataclass(frozen=True)
class FirstSteps:
    recipe: Path  # outside the context
    ctx: Path
    out: Path
    log: str
    cache: Path  # the build's `--cache-to type=local,mode=max` export


@pytest.fixture(scope="module")
def steps_first(tmp_path_factory, frontend, peers, key) -> FirstSteps:
    """STEPS built once with `--no-cache` (every step and both signing stages run, whatever the
    builder holds) and its cache exported `mode=max`: the first build of the cached-rebuild test,
    and the log and cache the signing-key test searches."""
    tmp = tmp_path_factory.mktemp("steps-first")
    recipe, ctx = steps_recipe(tmp, frontend, STEPS)
    r = buildx_packages(peers.docker26, recipe, ctx, tmp / "o1", key, "--no-cache",
                        "--cache-to", f"type=local,dest={tmp / 'cache'},mode=max")
    return FirstSteps(recipe, ctx, tmp / "o1", r.stderr, tmp / "cache")


def test_cached_rebuild_and_an_edited_last_step(tmp_path, steps_first, peers, key) -> None:
    ctx = steps_first.ctx
    recipe = tmp_path / "steps.yaml"  # a copy to edit, outside the context as the first build's
    recipe.write_text(steps_first.recipe.read_text())
    docker = peers.docker26
    ran = uncached(steps_first.log)
    assert "[x86_64] steps-demo: first" in ran and "[x86_64] index" in ran, steps_first.log
    r = buildx_packages(docker, recipe, ctx, tmp_path / "o2", key)
    assert uncached(r.stderr) == [], r.stderr  # all but the key's digest, an [internal] step of milliseconds
    assert KEY_ID_STEP in r.stderr
    assert apks(steps_first.out) == apks(tmp_path / "o2")
    # an edit of this run's own: the builder's cache outlives test runs (the first build's
    # --no-cache runs every step, but an edit made before would be found cached)
    edited = f"last, edited {uuid.uuid4().hex}"
    recipe.write_text(recipe.read_text().replace("echo LAST", f"echo {edited}"))
    r = buildx_packages(docker, recipe, ctx, tmp_path / "o3", key)
    assert sorted(uncached(r.stderr)) == sorted(["[x86_64] steps-demo: last", "[x86_64] pack steps-demo",
                                                 "[x86_64] index"]), r.stderr
    with tarfile.open(tmp_path / "o3" / "x86_64" / "steps-demo-1.0.0-r0.apk") as tf:
        assert tf.extractfile("usr/share/steps/last").read() == f"{edited}\n".encode()
        assert tf.extractfile("usr/share/steps/first").read() == b"first\n"
    # another key under the same name: BuildKit keeps secrets out of cache keys, so the key's
    # public digest (a step that runs every build) is what re-runs pack and index
    other = tmp_path / "other" / "melange.rsa"
    other.parent.mkdir()
    subprocess.run([sys.executable, "-m", "distroless", "keygen", str(other), "--key-size", "2048"], check=True,
                   capture_output=True)
    r = buildx_packages(docker, recipe, ctx, tmp_path / "o4", other)
    assert KEY_ID_STEP in r.stderr
    assert sorted(uncached(r.stderr)) == sorted(["[x86_64] pack steps-demo", "[x86_64] index"]), r.stderr
    verify([*sorted((tmp_path / "o4" / "x86_64").glob("*.apk")), tmp_path / "o4" / "x86_64" / "APKINDEX.tar.gz"],
           other)


FETCH = """\
package:
  name: fetched
  version: 2.0.0
  epoch: 0
  description: a pinned source over loopback http
  copyright:
    - license: Apache-2.0
environment:
  contents:
    packages: []
pipeline:
  - uses: fetch
    with:
      uri: {url}
      expected-sha256: {sha}
  - name: install
    runs: |
      mkdir -p "${{{{targets.destdir}}}}/usr/share/fetched"
      cp hello.txt "${{{{targets.destdir}}}}/usr/share/fetched/"
"""


@pytest.fixture(scope="module")
def source_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("srcs")
    tree = root / "tree" / "fetched-2.0.0"
    tree.mkdir(parents=True)
    (tree / "hello.txt").write_text("hello from a pinned source\n")
    with tarfile.open(root / "fetched-2.0.0.tar.gz", "w:gz") as tf:
        tf.add(tree, arcname="fetched-2.0.0")
    server = StaticServer(root).start()
    yield server, hashlib.sha256((root / "fetched-2.0.0.tar.gz").read_bytes()).hexdigest()
    server.stop()


def test_pinned_fetch_builds_and_a_wrong_checksum_fails(tmp_path, frontend, peers, key, source_server) -> None:
    server, sha = source_server
    url = f"{server.url}/fetched-2.0.0.tar.gz"
    recipe, ctx = steps_recipe(tmp_path, frontend, FETCH.format(url=url, sha=sha))
    buildx_packages(peers.docker26, recipe, ctx, tmp_path / "ok", key)
    with tarfile.open(tmp_path / "ok" / "x86_64" / "fetched-2.0.0-r0.apk") as tf:
        assert tf.extractfile("usr/share/fetched/hello.txt").read() == b"hello from a pinned source\n"
    wrong = "0" * 63 + "1"
    recipe.write_text(recipe.read_text().replace(sha, wrong))
    r = buildx_packages(peers.docker26, recipe, ctx, tmp_path / "bad", key, check=False)
    assert r.returncode != 0
    assert url in r.stderr and wrong in r.stderr and sha in r.stderr, r.stderr[-3000:]


def test_unpinned_fetch_is_refused(tmp_path, frontend, peers) -> None:
    text = FETCH.format(url="http://127.0.0.1:9/x.tar.gz", sha="0" * 64).replace(
        f"expected-sha256: {'0' * 64}", "expected-none: 'true'")
    recipe, ctx = steps_recipe(tmp_path, frontend, text)
    r = buildx_packages(peers.docker26, recipe, ctx, tmp_path / "o", None, check=False)
    assert r.returncode != 0 and "no expected-sha256 or expected-sha512" in r.stderr, r.stderr[-3000:]


NETWORK = STEPS.replace('echo second > "${{targets.destdir}}/usr/share/steps/second"',
                        "exec 3<>/dev/tcp/192.0.2.1/80")


def test_a_step_cannot_reach_the_network(tmp_path, frontend, peers) -> None:
    recipe, ctx = steps_recipe(tmp_path, frontend, NETWORK)
    r = buildx_packages(peers.docker26, recipe, ctx, tmp_path / "o", None, check=False)
    assert r.returncode != 0
    assert "Network is unreachable" in r.stderr, r.stderr[-3000:]


def key_fragments(key: Path) -> list[bytes]:
    """Lines of the PEM body: any of them in a blob or a log would leak the key."""
    lines = [ln for ln in key.read_bytes().splitlines() if ln and not ln.startswith(b"-----")]
    return [ln for ln in lines if len(ln) >= 40]


def blob_texts(cache: Path):
    for p in sorted(cache.rglob("*")):
        if not p.is_file():
            continue
        data = p.read_bytes()
        yield p, data
        if data[:2] == b"\x1f\x8b":
            try:
                yield p, gzip.decompress(data)
            except (OSError, EOFError):
                pass


def test_signing_key_never_in_cache_or_log(steps_first, key) -> None:
    frags = key_fragments(key)
    assert frags
    assert not any(f in steps_first.log.encode() for f in frags)
    assert "signing-key" in steps_first.log or (steps_first.out / "x86_64" / "APKINDEX.tar.gz").exists()
    seen = 0
    for path, data in blob_texts(steps_first.cache):
        seen += 1
        leaked = [f for f in frags if f in data]
        assert not leaked, f"{path} holds the signing key"
    assert seen > 3
    verify([*sorted((steps_first.out / "x86_64").glob("*.apk"))], key)


SANDBOX = STEPS.replace('      echo second > "${{targets.destdir}}/usr/share/steps/second"\n', """\
      d="${{targets.destdir}}/usr/share/steps"
      { id -u; id -g; umask; pwd; echo "HOME=$HOME PATH=$PATH"; ls -ld /tmp | cut -c1-10; } > "$d/sandbox"
      env | LC_ALL=C sort | grep -v -E '^(HOSTNAME|SHLVL|_|OLDPWD)=' > "$d/env"
""")


def test_runc_and_bubblewrap_give_steps_the_same_sandbox(tmp_path, frontend, peers, key) -> None:
    """uid/gid, umask, working directory, HOME, PATH and the whole environment a step sees are the
    same under BuildKit's runc and the CLI's bubblewrap (the package records them). Left out:
    HOSTNAME (runc sets `buildkitsandbox`, bubblewrap none) and the shell's own SHLVL/_/OLDPWD."""
    recipe, ctx = steps_recipe(tmp_path, frontend, SANDBOX)
    buildx_packages(peers.docker26, recipe, ctx, tmp_path / "bk", key)
    cli_build(recipe, ctx, tmp_path / "cli", key)
    name = "x86_64/steps-demo-1.0.0-r0.apk"
    with tarfile.open(tmp_path / "bk" / name) as tf:
        sandbox = tf.extractfile("usr/share/steps/sandbox").read().decode()
    assert sandbox.splitlines()[:4] == ["1000", "1000", "0022", "/home/build"], sandbox
    assert apks(tmp_path / "bk") == apks(tmp_path / "cli")


def bake_uncached(log: str, targets: tuple[str, ...]) -> list[str]:
    """`uncached` over a bake's log, whose vertex names carry their target (`[image x86_64] pack
    …`, `[certs internal] …`, `[hello] resolve image config …`): the target is taken out first."""
    alt = "|".join(map(re.escape, targets))

    def untarget(m: re.Match) -> str:
        rest = m.group("rest")
        return f"{m.group('num')} [{rest}] " if rest else f"{m.group('num')} "

    return uncached(re.sub(rf"^(?P<num>#\d+) \[(?:{alt})(?: (?P<rest>[^\]]+))?\] ", untarget, log, flags=re.M))


def test_one_bake_builds_the_packages_and_the_image_that_runs(tmp_path, frontend, toolchain, peers) -> None:
    """examples/bake in ONE `docker buildx bake`: the three recipes are `target:` contexts of the
    image target, so the packages and the image are one graph (BuildKit's default provenance
    attestation on); the image runs, and a second bake is all cached. `bake packages` writes the
    same recipes out as signed repositories."""
    import io

    root = tmp_path / "examples"
    shutil.copytree(ROOT / "examples" / "recipes", root / "recipes", ignore=shutil.ignore_patterns("BUILD.bazel"))
    shutil.copytree(ROOT / "examples" / "bake", root / "bake")
    bake = root / "bake"
    subprocess.run([sys.executable, "-m", "distroless", "keygen", str(bake / "melange.rsa"), "--key-size", "2048"],
                   check=True, capture_output=True)
    docker = peers.docker26
    tag = f"distroless/demo-bake:14-{os.getpid()}"

    # an epoch of this run's own: the daemon's cache outlives test runs, and the first bake must
    # run every step (SOURCE_DATE_EPOCH is in each step's environment)
    sde = str(1700000000 + os.getpid())

    def run_bake(*args: str) -> str:
        r = subprocess.run([docker.cli, "buildx", "bake", "--progress=plain", *args], cwd=bake,
                           env=docker.env(FRONTEND=frontend, TOOLCHAIN=toolchain, SOURCE_DATE_EPOCH=sde),
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-4000:]
        return r.stderr

    targets = ("baselayout", "certs", "hello", "image")
    log = run_bake("--load", "--set", f"image.tags={tag}")
    ran = bake_uncached(log, targets)
    # the recipes' steps ran in the image's build (bake evaluates a `target:` context there)
    for step in ("[x86_64] pack demo-baselayout", "[x86_64] pack ca-certificates-bundle",
                 "[x86_64] demo-hello: compile", "[x86_64] pack demo-hello", "metadata step: 3 packages (amd64)"):
        assert step in ran, (step, ran)
    assert "[image x86_64] demo-hello: compile" in log
    try:
        r = docker.run("run", "--rm", "--network", "none", tag)
        assert "Hello from distroless" in r.stdout
        cid = docker.run("create", tag).stdout.strip()
        try:
            data = subprocess.run([docker.cli, "export", cid], env=docker.env(), capture_output=True,
                                  check=True).stdout
        finally:
            docker.run("rm", cid, check=False)
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            installed = tf.extractfile("usr/lib/apk/db/installed").read().decode()
        for pkg in ("demo-baselayout", "ca-certificates-bundle", "demo-hello"):
            assert f"P:{pkg}\n" in installed
        again = run_bake("--load", "--set", f"image.tags={tag}")
        assert bake_uncached(again, targets) == [], again
    finally:
        docker.run("rmi", "-f", tag, check=False)
    run_bake("packages")
    verify([*sorted((bake / "out").glob("*/x86_64/*.apk")), *sorted((bake / "out").glob("*/x86_64/APKINDEX.tar.gz"))],
           bake / "melange.rsa")
    assert sorted(p.name for p in (bake / "out").iterdir()) == ["baselayout", "certs", "hello"]


ENV_RECIPE = """\
package:
  name: env-demo
  version: 1.0.0
  epoch: 0
  description: built in an environment installed from packages
  copyright:
    - license: Apache-2.0
environment:
  contents:
    repositories: [{repo}]
    keyring: [{repo}/repo.rsa.pub]
    packages: [busybox]
pipeline:
  - name: probe
    runs: |
      d="${{{{targets.destdir}}}}/usr/share/env-demo"
      mkdir -p "$d"
      readlink /proc/$$/exe > "$d/shell"
      cat /etc/os-release > "$d/os-release"
      cat /etc/apk/world > "$d/world"
"""


@pytest.fixture(scope="module")
def env_repo(tmp_path_factory, peers):
    """The image tests' signed repository (test-base, a static busybox), its key served beside it."""
    from imagerepo import make_repo

    root = tmp_path_factory.mktemp("envrepo")
    repo_dir, pub = make_repo(root, peers.busybox, ("x86_64",), fixed_key=True)
    shutil.copy(pub, repo_dir / "repo.rsa.pub")
    server = StaticServer(repo_dir).start()
    yield server
    server.stop()


def test_an_environment_from_packages_is_the_image_modes_nodes(tmp_path, frontend, peers, key, env_repo) -> None:
    """`environment.contents.repositories`: the steps run in busybox's environment (its shell, the
    base package's os-release), installed by the image mode's nodes; the APK equals the CLI's
    (bubblewrap in the same environment) and a second build is all cached."""
    recipe, ctx = steps_recipe(tmp_path, frontend, ENV_RECIPE.format(repo=env_repo.url))
    docker = peers.docker26
    r = buildx_packages(docker, recipe, ctx, tmp_path / "bk", key)
    ran = uncached(r.stderr)
    for name in ("expand busybox-1.36.1-r0", "expand test-base-1.0-r0",
                 "[x86_64] build environment: metadata step: 2 packages (x86_64)", "[x86_64] env-demo: probe"):
        assert name in ran, (name, ran)
    apk = tmp_path / "bk" / "x86_64" / "env-demo-1.0.0-r0.apk"
    with tarfile.open(apk) as tf:
        probe = {n: tf.extractfile(f"usr/share/env-demo/{n}").read().decode() for n in ("shell", "os-release", "world")}
    assert probe == {"shell": "/bin/busybox\n", "os-release": 'ID=testos\nNAME="Test OS"\nVERSION_ID=1.0\n',
                     "world": "busybox\n"}, probe
    again = buildx_packages(docker, recipe, ctx, tmp_path / "bk2", key)
    assert uncached(again.stderr) == [], again.stderr
    env = {**os.environ, "SOURCE_DATE_EPOCH": SDE}
    cli = subprocess.run([sys.executable, "-m", "distroless", "package", "build", str(recipe), "--source-dir", str(ctx),
                          "--out-dir", str(tmp_path / "cli"), "--signing-key", str(key),
                          "--apk-cache-dir", str(tmp_path / "apk-cache")], env=env, capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr[-3000:]
    assert apks(tmp_path / "bk") == apks(tmp_path / "cli")

    # a second recipe whose environment also has the package the first build made, its repository
    # a named build context (the first build's output directory)
    second = tmp_path / "second"
    (second / "ctx").mkdir(parents=True)
    shutil.copy(f"{key}.pub", second / "ctx" / "melange.rsa.pub")
    text = (ENV_RECIPE.replace("env-demo", "env-user")
            .replace("repositories: [{repo}]", "repositories: [{repo}, built]")
            .replace("keyring: [{repo}/repo.rsa.pub]", "keyring: [{repo}/repo.rsa.pub, melange.rsa.pub]")
            .replace("packages: [busybox]", "packages: [busybox, env-demo]")
            .replace('cat /etc/apk/world > "$d/world"', 'cp /usr/share/env-demo/shell "$d/from-env-demo"'))
    (second / "user.yaml").write_text(f"# syntax={frontend}\n" + text.format(repo=env_repo.url))
    r = buildx_packages(docker, second / "user.yaml", second / "ctx", second / "out", key, "--build-context",
                        f"built={tmp_path / 'bk'}")
    assert "[x86_64] build environment: metadata step: 3 packages (x86_64)" in uncached(r.stderr), r.stderr
    with tarfile.open(second / "out" / "x86_64" / "env-user-1.0.0-r0.apk") as tf:
        assert tf.extractfile("usr/share/env-user/from-env-demo").read() == b"/bin/busybox\n"


def test_demo_hello_with_a_toolchain_image_matches_the_cli_and_the_image_runs(
        tmp_path, frontend, toolchain, peers, key, demo_repos) -> None:
    ctx, repos, _ = demo_repos
    out = tmp_path / "bk"
    recipe = ctx / "demo-hello.yaml"
    buildx_packages(peers.docker26, recipe, ctx, out / "demo-hello", key, "--build-arg",
                    f"DISTROLESS_TOOLCHAIN={toolchain}", "--build-arg", f"BUILDKIT_SYNTAX={frontend}")
    cli_build(recipe, ctx, tmp_path / "cli", key)
    got, want = apks(out / "demo-hello"), apks(tmp_path / "cli")
    assert got.keys() == want.keys() == {"x86_64/demo-hello-0.1.0-r0.apk"}
    assert got == want, "demo-hello differs from the CLI's (toolchain image vs host gcc)"
    # the demo image from those three repositories, each a named build context
    img = tmp_path / "img"
    img.mkdir()
    shutil.copy(f"{key}.pub", img / "melange.rsa.pub")
    (img / "image.yaml").write_text(f"""# syntax={frontend}
contents:
  repositories: [baselayout, certs, hello]
  keyring: [melange.rsa.pub]
  packages: [demo-hello, ca-certificates-bundle]
entrypoint:
  command: /usr/bin/demo-hello
accounts:
  run-as: nonroot
archs: [x86_64]
""")
    docker = peers.docker26
    tag = f"bk-demo:{os.getpid()}"
    docker.run("buildx", "build", "-f", str(img / "image.yaml"), "--progress=plain", "--build-arg",
               f"SOURCE_DATE_EPOCH={SDE}", "--build-context", f"baselayout={repos / 'demo-baselayout'}",
               "--build-context", f"certs={repos / 'ca-certificates-bundle'}", "--build-context",
               f"hello={out / 'demo-hello'}", "-t", tag, "--load", str(img), timeout=600)
    try:
        r = docker.run("run", "--rm", "--network", "none", tag)
        assert "Hello from distroless" in r.stdout
    finally:
        docker.run("rmi", "-f", tag, check=False)
