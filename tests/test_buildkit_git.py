"""`git-checkout` in the frontend's packages mode on dockerd 26: with `expected-commit` a BuildKit
git source pinned at that commit (a repository `git daemon` serves on loopback; the daemon runs in
the host's network namespace), fetched by the step from where it is mounted, offline."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from httpserver import free_port
from test_buildkit_frontend import uncached
from test_buildkit_packages import SDE, apks, buildx_packages, key, steps_recipe  # noqa: F401

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.invalid", "GIT_AUTHOR_DATE": "@1600000000 +0000",
           "GIT_COMMITTER_DATE": "@1600000000 +0000", "HOME": "/nonexistent", "GIT_CONFIG_NOSYSTEM": "1"}


@dataclass(frozen=True)
class GitServer:
    url: str
    first: str  # main's first commit
    tip: str  # main's second commit
    work: Path  # a clone with both
    log: Path  # the daemon's log: one "Request upload-pack" line per fetch

    def fetches(self) -> int:
        return self.log.read_text(errors="replace").count("Request upload-pack")


def git(*args: str, cwd: Path) -> str:
    r = subprocess.run(["git", *args], cwd=cwd, env={**os.environ, **GIT_ENV}, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.fixture(scope="module")
def git_server(tmp_path_factory):
    """`src.git` with two commits on main, served by `git daemon` on a loopback port."""
    root = tmp_path_factory.mktemp("gitsrv")
    work = root / "work"
    work.mkdir()
    git("init", "-q", "-b", "main", cwd=work)
    (work / "hello.txt").write_text("hello from the first commit\n")
    git("add", ".", cwd=work)
    git("commit", "-q", "-m", "first", cwd=work)
    first = git("rev-parse", "HEAD", cwd=work)
    (work / "hello.txt").write_text("hello from the tip\n")
    git("commit", "-q", "-am", "second", cwd=work)
    tip = git("rev-parse", "HEAD", cwd=work)
    git("clone", "-q", "--bare", str(work), str(root / "src.git"), cwd=root)
    port = free_port()
    log = open(root / "daemon.log", "wb")
    proc = subprocess.Popen(["git", "daemon", "--verbose", "--reuseaddr", "--export-all", f"--base-path={root}",
                             "--listen=127.0.0.1", f"--port={port}", str(root)],
                            stdout=subprocess.DEVNULL, stderr=log)
    log.close()
    url = f"git://127.0.0.1:{port}/src.git"
    for _ in range(100):
        if subprocess.run(["git", "ls-remote", url], capture_output=True).returncode == 0:
            break
        time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("git daemon did not answer")
    yield GitServer(url, first, tip, work, root / "daemon.log")
    proc.terminate()
    proc.wait(10)


RECIPE = """\
package:
  name: from-git
  version: 1.0.0
  epoch: 0
  description: sources from a pinned git checkout
  copyright:
    - license: Apache-2.0
environment:
  contents:
    packages: []
pipeline:
  - uses: git-checkout
    with:
      repository: {url}
      branch: main
      expected-commit: {commit}
      destination: src
  - name: install
    runs: |
      d="${{{{targets.destdir}}}}/usr/share/from-git"
      mkdir -p "$d"
      cp src/hello.txt "$d/"
      git -C src rev-parse HEAD > "$d/head"
      git -C src rev-parse --abbrev-ref HEAD > "$d/branch"
"""


def test_expected_commit_is_a_pinned_git_source_fetched_once(
        tmp_path, frontend, toolchain, peers, key, git_server) -> None:
    srv = git_server
    docker = peers.docker26
    recipe, ctx = steps_recipe(tmp_path, frontend, RECIPE.format(url=srv.url, commit=srv.first))
    tc_args = ("--build-arg", f"DISTROLESS_TOOLCHAIN={toolchain}")
    r = buildx_packages(docker, recipe, ctx, tmp_path / "bk", key, *tc_args)
    assert f"git-checkout {srv.url} at {srv.first}" in r.stderr
    ran = uncached(r.stderr)
    assert "[x86_64] from-git: git-checkout > ???" in ran and "[x86_64] from-git: install" in ran, ran
    assert "from the cache" in r.stderr  # the step fetched the commit from the mounted checkout
    with tarfile.open(tmp_path / "bk" / "x86_64" / "from-git-1.0.0-r0.apk") as tf:
        got = {n: tf.extractfile(f"usr/share/from-git/{n}").read().decode() for n in ("hello.txt", "head", "branch")}
    # the expected commit, not the branch's tip; on the branch, as the CLI checks it out
    assert got == {"hello.txt": "hello from the first commit\n", "head": f"{srv.first}\n", "branch": "main\n"}, got

    fetched = srv.fetches()
    again = buildx_packages(docker, recipe, ctx, tmp_path / "bk2", key, *tc_args)
    # (the git source is an input-less vertex: BuildKit may report it done once its key, the
    # commit, is known; the daemon's log says whether anything was fetched)
    assert [n for n in uncached(again.stderr) if not n.startswith("git-checkout ")] == [], again.stderr
    assert srv.fetches() == fetched, "the second build fetched from the repository"

    # the CLI, offline, finds the same commit in its cache directory (as the frontend mounts it)
    cache = tmp_path / "melange-cache"
    git("clone", "-q", str(srv.work), str(cache / "git" / srv.first), cwd=tmp_path)
    git("checkout", "-q", srv.first, cwd=cache / "git" / srv.first)
    env = {**os.environ, "SOURCE_DATE_EPOCH": SDE}
    cli = subprocess.run([sys.executable, "-m", "distroless", "package", "build", "--host-toolchain", str(recipe),
                          "--source-dir", str(ctx), "--out-dir", str(tmp_path / "cli"), "--signing-key", str(key),
                          "--cache-dir", str(cache), "--network=false"], env=env, capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr[-3000:]
    assert apks(tmp_path / "bk") == apks(tmp_path / "cli")


def test_a_commit_the_repository_lacks_names_the_repository_and_both_commits(
        tmp_path, frontend, peers, key, git_server) -> None:
    srv = git_server
    wrong = "1" * 40
    recipe, ctx = steps_recipe(tmp_path, frontend, RECIPE.format(url=srv.url, commit=wrong))
    r = buildx_packages(peers.docker26, recipe, ctx, tmp_path / "bad", key, check=False)
    assert r.returncode != 0
    tail = r.stderr[-3000:]
    assert f"git-checkout {srv.url}: expected commit {wrong}" in tail and f"main is {srv.tip}" in tail, tail


def test_git_checkout_without_expected_commit_is_refused(tmp_path, frontend, peers, git_server) -> None:  # noqa: F811
    srv = git_server
    text = RECIPE.format(url=srv.url, commit=srv.first).replace(f"      expected-commit: {srv.first}\n", "")
    recipe, ctx = steps_recipe(tmp_path, frontend, text)
    r = buildx_packages(peers.docker26, recipe, ctx, tmp_path / "o", None, check=False)
    assert r.returncode != 0 and f"git-checkout {srv.url}: no expected-commit" in r.stderr, r.stderr[-3000:]
