"""`image lock`, `--lockfile`, `show-packages` and `build-minirootfs` over a real HTTP repository."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from distroless import lock as lockfile
from distroless.apk import index, keys, pack
from distroless.apk.model import Package
from httpserver import StaticServer

ARCHS = ("x86_64", "aarch64")


def run(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    e = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000", **(env or {})}
    return subprocess.run([sys.executable, "-m", "distroless", *args], cwd=cwd, capture_output=True, text=True, env=e)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("repo")
    keys.write_keypair(root / "repo.rsa", keys.generate(2048))
    key = keys.load_private(root / "repo.rsa")
    srv = root / "srv"
    specs = [
        ("base", "1.0-r0", [], ["cmd:base=1.0-r0"]),
        ("libfoo", "2.1-r0", ["base"], ["so:libfoo.so.2=2.1"]),
        ("app", "3.0-r1", ["so:libfoo.so.2", "base"], []),
        ("app", "2.0-r0", ["base"], []),  # older: must not win
    ]
    for arch in ARCHS:
        (srv / arch).mkdir(parents=True)
        built = []
        for name, ver, deps, provides in specs:
            tree = root / "trees" / arch / f"{name}-{ver}"
            (tree / "usr/share" / name).mkdir(parents=True)
            (tree / "usr/share" / name / "VERSION").write_text(f"{name} {ver} {arch}\n")
            meta = Package(name=name, version=ver, arch=arch, depends=deps, provides=provides, license="MIT")
            built.append(pack.pack(tree, meta, srv / arch / f"{name}-{ver}.apk", signing_key=key,
                                   source_date_epoch=1600000000).package)
        (srv / arch / "APKINDEX.tar.gz").write_bytes(index.build(built, signing_key=key))
    server = StaticServer(srv).start()
    yield server, root, srv
    server.stop()


def write_config(d: Path, server: StaticServer, pub: Path, packages=("app",)) -> Path:
    cfg = d / "image.yaml"
    cfg.write_text(
        "contents:\n"
        f"  repositories: [{server.url}]\n"
        f"  keyring: [{pub}]\n"
        f"  packages: [{', '.join(packages)}]\n"
        "archs: [x86_64, aarch64]\n"
    )
    return cfg


def test_lock_then_offline_lockfile_build(repo, tmp_path) -> None:
    server, root, srv = repo
    cfg = write_config(tmp_path, server, root / "repo.rsa.pub")
    cache = tmp_path / "cache"
    r = run("image", "lock", str(cfg), "--cache-dir", str(cache), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lk = lockfile.load(tmp_path / "image.lock.json")
    assert [(p.name, p.version, p.architecture) for p in lk.packages] == [
        ("base", "1.0-r0", "x86_64"), ("libfoo", "2.1-r0", "x86_64"), ("app", "3.0-r1", "x86_64"),
        ("base", "1.0-r0", "aarch64"), ("libfoo", "2.1-r0", "aarch64"), ("app", "3.0-r1", "aarch64"),
    ]
    import hashlib
    for p in lk.packages:
        data = (srv / p.architecture / f"{p.name}-{p.version}.apk").read_bytes()
        assert p.sha256 == hashlib.sha256(data).hexdigest()  # checked independently of our reader
        assert p.url == f"{server.url}/{p.architecture}/{p.name}-{p.version}.apk"
    assert json.loads((tmp_path / "image.lock.json").read_text())["config"]["name"].endswith("image.yaml")

    # The lock alone, offline, with the server gone: the same packages from the cache.
    server.stop()
    try:
        r = run("image", "build-minirootfs", str(cfg), "out.tar", "--lockfile", "image.lock.json", "--offline",
                "--cache-dir", str(cache), "--build-arch", "arm64", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        with tarfile.open(tmp_path / "out.tar") as tf:
            assert tf.extractfile("usr/share/app/VERSION").read() == b"app 3.0-r1 aarch64\n"
            idb = tf.extractfile("usr/lib/apk/db/installed").read().decode()
        assert [l[2:] for l in idb.splitlines() if l.startswith("P:")] == ["base", "libfoo", "app"]
    finally:
        server.start()


def test_changed_config_refuses_stale_lock(repo, tmp_path) -> None:
    server, root, _ = repo
    cfg = write_config(tmp_path, server, root / "repo.rsa.pub")
    assert run("image", "lock", str(cfg), "--cache-dir", str(tmp_path / "c"), cwd=tmp_path).returncode == 0
    write_config(tmp_path, server, root / "repo.rsa.pub", packages=("app", "libfoo"))
    r = run("image", "build-minirootfs", str(cfg), "out.tar", "--lockfile", "image.lock.json",
            "--cache-dir", str(tmp_path / "c"), cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "configuration changed since it was locked" in r.stderr and "distroless image lock" in r.stderr
    assert not (tmp_path / "out.tar").exists()


def test_show_packages_formats(repo, tmp_path) -> None:
    server, root, _ = repo
    cfg = write_config(tmp_path, server, root / "repo.rsa.pub")
    r = run("image", "show-packages", str(cfg), "--arch", "x86_64", "--format", "name=version",
            "--cache-dir", str(tmp_path / "c"), cwd=tmp_path)
    assert r.stdout.split() == ["base=1.0-r0", "libfoo=2.1-r0", "app=3.0-r1"], r.stderr
    r = run("image", "show-packages", str(cfg), "--arch", "x86_64", "--format", "packagelock-source",
            "--cache-dir", str(tmp_path / "c"), cwd=tmp_path)
    assert r.stdout.splitlines()[0] == f"- base=1.0-r0 # {server.url}/x86_64/base-1.0-r0.apk"
    r = run("image", "show-packages", str(cfg), "--arch", "x86_64", "--format", "{{.Name}}:{{ .Version }} {x}",
            "--cache-dir", str(tmp_path / "c"), cwd=tmp_path)
    assert r.stdout.splitlines() == ["base:1.0-r0 {x}", "libfoo:2.1-r0 {x}", "app:3.0-r1 {x}"], r.stderr
    # apko's default is `{{ .Name }} {{ .Version }}` (a space, not a dash)
    r = run("image", "show-packages", str(cfg), "--arch", "x86_64", "--cache-dir", str(tmp_path / "c"), cwd=tmp_path)
    assert r.stdout.splitlines() == ["base 1.0-r0", "libfoo 2.1-r0", "app 3.0-r1"], r.stderr
    r = run("image", "show-packages", str(cfg), "--arch", "x86_64", "--format", "name-(version)",
            "--cache-dir", str(tmp_path / "c"), cwd=tmp_path)
    assert r.stdout.splitlines()[0] == "base (1.0-r0)", r.stderr
    # Go template conditionals as used in CI scripts
    tmpl = '{{if eq .Name "app"}}{{.Name}} is the app{{else if ne .Name "base"}}{{printf "%s@%s" .Name .Version}}{{else}}-{{end}}'
    r = run("image", "show-packages", str(cfg), "--arch", "x86_64", "--format", tmpl,
            "--cache-dir", str(tmp_path / "c"), cwd=tmp_path)
    assert r.stdout.splitlines() == ["-", "libfoo@2.1-r0", "app is the app"], r.stderr
    r = run("image", "show-packages", str(cfg), "--arch", "x86_64", "--format", "json",
            "--cache-dir", str(tmp_path / "c"), cwd=tmp_path)
    assert [(p["name"], p["version"], p["arch"]) for p in json.loads(r.stdout)] == \
        [("base", "1.0-r0", "x86_64"), ("libfoo", "2.1-r0", "x86_64"), ("app", "3.0-r1", "x86_64")], r.stderr
    # an unsupported construct is a one-line error before any work, not a different output
    r = run("image", "show-packages", str(cfg), "--format", "{{range .Deps}}x{{end}}", cwd=tmp_path)
    assert r.returncode == 1 and "{{range}} is not supported" in r.stderr and "Traceback" not in r.stderr


def test_unsatisfiable_world_names_the_chain(repo, tmp_path) -> None:
    server, root, _ = repo
    cfg = write_config(tmp_path, server, root / "repo.rsa.pub", packages=("app", "nosuchthing"))
    r = run("image", "show-packages", str(cfg), "--cache-dir", str(tmp_path / "c"), cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "nosuchthing" in r.stderr


def test_unknown_key_index_needs_ignore_signatures(repo, tmp_path) -> None:
    server, root, _ = repo
    other = tmp_path / "other.rsa"
    keys.write_keypair(other, keys.generate(2048))
    cfg = write_config(tmp_path, server, Path(str(other) + ".pub"))
    r = run("image", "show-packages", str(cfg), "--cache-dir", str(tmp_path / "c"), cwd=tmp_path)
    assert r.returncode == 1 and "no signature by a trusted key" in r.stderr
    r = run("image", "show-packages", str(cfg), "--ignore-signatures", "--arch", "x86_64",
            "--cache-dir", str(tmp_path / "c"), cwd=tmp_path)
    assert r.returncode == 0 and "app 3.0-r1" in r.stdout


def test_keyring_from_a_url_and_offline_reuse(repo, tmp_path) -> None:
    server, root, srv = repo
    import shutil

    shutil.copy(root / "repo.rsa.pub", srv / "repo.rsa.pub")
    cfg = write_config(tmp_path, server, f"{server.url}/repo.rsa.pub")
    r = run("image", "show-packages", str(cfg), "--arch", "x86_64", "--cache-dir", str(tmp_path / "c"), cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.splitlines() == ["base 1.0-r0", "libfoo 2.1-r0", "app 3.0-r1"], r.stderr
    # the key was cached with the index, so --offline needs neither
    r = run("image", "show-packages", str(cfg), "--arch", "x86_64", "--offline", "--cache-dir", str(tmp_path / "c"),
            cwd=tmp_path)
    assert r.returncode == 0 and "app 3.0-r1" in r.stdout, r.stderr
