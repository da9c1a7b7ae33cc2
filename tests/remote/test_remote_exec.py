"""The Bazel example built through a real Remote Execution API service: BuildGrid (PyPI) with
PostgreSQL on loopback and two workers of ours (tests/remote/worker.py) that run each command in
a fresh directory, with only its environment, under bubblewrap hiding the client's home and
checkout. Not part of `make test` (BuildGrid's first install takes ~10 minutes): `make test-remote`.

Proves: every remotable action runs remotely (host-toolchain package builds stay local, as their
`no-remote-exec` tag says; the hermetic one, from its locked environment, runs on a worker) and
the image digest and the hermetic package equal a local build's; after `bazel clean` the
rebuild is served entirely from the remote action cache; a second client whose interpreter lives
at another path gets remote cache hits for the same actions.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.remote import services
from tests.httpserver import free_port
from tests.test_bazel import (ALL_IMAGE, BAZEL, COPY, HERMETIC, MOTD, PORTED, REPO_PORT, ROOT, Bazel, describe, executed,
                              other_interpreter, serve_packages, spawns)

IMAGE_DIGEST = Path("examples/bazel/demo.digest")
TARGETS = ("//examples/bazel/packages:repository", ALL_IMAGE, HERMETIC)


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    try:
        services.check_installed()
    except services.ServiceError as e:
        pytest.fail(str(e))
    root = tmp_path_factory.mktemp("rexec")
    started: list = []
    try:
        pg = services.Postgres()
        started.append(pg)
        pg.start()
        bgd = services.BuildGrid(root / "bgd", pg.url).start()
        started.append(bgd)
        # the workers see neither the client's home nor its checkout (nor /tmp, where the test's
        # workspace copy and output bases live)
        hide = ["/root", "/home", str(ROOT)]
        for i in range(2):
            started.append(services.Worker(root / "workers", bgd.address, f"w{i}", hide).start())
    except services.ServiceError as e:
        for s in reversed(started):
            s.stop()
        pytest.fail(str(e))
    yield bgd, [s for s in started if isinstance(s, services.Worker)]
    for s in reversed(started):
        s.stop()


@pytest.fixture(scope="module")
def bz(tmp_path_factory):
    if not Path(BAZEL).exists():
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
    # the example's repository on a port of this run's own (as tests/test_bazel.py does)
    port = free_port()
    for rel in PORTED:
        f = ws / rel
        f.write_text(f.read_text().replace(f"127.0.0.1:{REPO_PORT}", f"127.0.0.1:{port}"))
    b = Bazel(ws, tmp, port)
    yield b
    b.shutdown()


def remote_flags(grid) -> list[str]:
    bgd, _ = grid
    return [f"--remote_executor=grpc://{bgd.address}", f"--remote_instance_name={services.INSTANCE}",
            "--remote_timeout=600", "--jobs=4"]


def runners(entries: list[dict]) -> Counter:
    return Counter((e.get("mnemonic"), e.get("runner"), bool(e.get("remoteCacheHit"))) for e in entries)


def test_remote_build_equals_local(bz, grid):
    # local: packages, locks, images and the hermetic package (the reference bytes)
    bz.run("A", "build", "//examples/bazel/packages:repository")
    server = serve_packages(bz)
    try:
        bz.run("A", "run", "//examples/bazel:lock", "--", "--cache-dir", str(bz.tmp / "lock-cache"))
        # the hermetic recipe's environment: `package lock` in-process (tests/test_bazel.py runs it
        # as `bazel run //examples/bazel/hermetic:lock`, which is the same function)
        proc = subprocess.run([sys.executable, "-m", "distroless", "package", "lock", "examples/bazel/hermetic/demo-motd.yaml",
                               "--apk-cache-dir", str(bz.tmp / "env-lock-cache")], cwd=bz.ws, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        # remote: a fresh output base, every action through BuildGrid, while the local reference
        # builds beside it (two output bases share nothing but the repository cache)
        log = bz.tmp / "exec-R.json"
        with ThreadPoolExecutor(max_workers=1) as pool:
            remote_build = pool.submit(bz.run, "R", "build", *TARGETS, *remote_flags(grid),
                                       f"--execution_log_json_file={log}")
            bz.run("A", "build", ALL_IMAGE, HERMETIC)
            remote_build.result()
        local = (bz.bin("A") / IMAGE_DIGEST).read_text()
        local_motd = (bz.bin("A") / MOTD).read_bytes()
    finally:
        server.stop()
    ran = spawns(log)
    remote = [e for e in ran if e.get("runner") == "remote"]
    local_only = [e for e in ran if e.get("runner") != "remote"]
    # only the host-toolchain package builds (tagged no-remote-exec) ran on this machine
    assert {e.get("mnemonic") for e in local_only} == {"DistrolessMelange"}, describe(local_only)
    assert all("/examples/bazel/packages/" in e["listedOutputs"][0] for e in local_only), describe(local_only)
    assert len(remote) >= 10 and len(remote) + len(local_only) == len(ran), runners(ran)
    assert (bz.bin("R") / IMAGE_DIGEST).read_text() == local
    # the hermetic package build ran on a worker (its environment's APKs uploaded as inputs)
    (motd,) = [e for e in ran if MOTD.as_posix() in " ".join(e.get("listedOutputs", []))]
    assert motd.get("runner") == "remote" and not motd.get("remoteCacheHit"), motd.get("runner")
    assert (bz.bin("R") / MOTD).read_bytes() == local_motd
    worked = sum(w.log.read_text().count(" exit 0 ") for w in grid[1])
    assert worked >= len(executed(remote)), (worked, len(executed(remote)))
    print(f"\nremote: {len(remote)} actions remote ({worked} run by the workers, {MOTD.name} among them), "
          f"{len(local_only)} local (no-remote-exec); digest {local.strip()} and {MOTD.name} equal the local build's")


def test_clean_rebuild_is_served_from_the_remote_cache(bz, grid):
    bz.run("R", "clean")
    log = bz.tmp / "exec-R2.json"
    bz.run("R", "build", *TARGETS, *remote_flags(grid),
           "--experimental_repository_disable_download", f"--execution_log_json_file={log}")
    ran = spawns(log)
    assert ran and executed(ran) == [], describe(executed(ran))
    print(f"\nbazel clean + rebuild: {len(ran)} spawns, all remote cache hits")


def test_client_with_interpreter_elsewhere_gets_remote_hits(bz, grid):
    exe = other_interpreter(bz.tmp)
    log = bz.tmp / "exec-S.json"
    bz.run("S", "build", *TARGETS, *remote_flags(grid),
           "--experimental_repository_disable_download", f"--execution_log_json_file={log}",
           env={"DISTROLESS_PYTHON": str(exe)})
    site = bz.tmp / "bases" / "S" / "external" / "distroless_python" / "site"
    assert str(exe.parent.parent) in os.readlink(next(site.iterdir())), "S did not take the other interpreter's modules"
    ran = spawns(log)
    assert ran and executed(ran) == [], describe(executed(ran))
    print(f"\nsecond client, interpreter at {exe}: {len(ran)} spawns, all remote cache hits")


def test_workers_saw_no_client_path(grid):
    """The workers' logs name every lease; none failed (a command naming /root or the checkout
    would have exited 127 or failed to import under the worker's bubblewrap view)."""
    for w in grid[1]:
        text = w.log.read_text()
        assert " failed: " not in text, text[-2000:]
        lines = [l for l in text.splitlines() if " exit " in l]
        assert all(" exit 0 " in l for l in lines), [l for l in lines if " exit 0 " not in l]


def test_an_action_naming_a_client_path_fails_on_the_workers(bz, grid):
    """(Last: it leaves failures in the workers' logs.) The workers' view really hides the client: the interpreter flag set to this client's own
    interpreter (under the checkout or /root) makes the first remote action fail."""
    exe = os.path.realpath(sys.executable)
    proc = bz.run("R", "build", "//examples/bazel:demo", *remote_flags(grid), f"--//bazel:python={exe}",
                  "--noremote_accept_cached", "--experimental_repository_disable_download", check=False)
    assert proc.returncode != 0, "a command naming a client path ran on a worker"
    out = (proc.stdout + proc.stderr).lower()
    assert "exit 127" in out or "not found" in out, out[-3000:]
    logs = "".join(w.log.read_text() for w in grid[1])
    assert " exit 127 " in logs, logs[-2000:]  # it did run on a worker, and failed there
    print(f"\n--//bazel:python={exe}: the remote action fails, as it must")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-s"]))
