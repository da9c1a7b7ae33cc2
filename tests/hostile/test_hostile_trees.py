"""Items 1 and 3: materialised trees and layer tars never follow a link out of the tree.

Item 1: a build-environment package ships `a -> <host dir>`, the same path as a regular file
inside the tree, and a hard link `zz -> a/secret`; plus `home -> <other host dir>`. Exporting
the sandbox root must link `zz` to the tree's own file and create `/home/build` inside the tree.

Item 3: `..` in `paths:` is a located config error; a hard link through a symlink, or one that
precedes its target, comes out of the layer tar naming an earlier regular entry by its real path.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import textwrap
from pathlib import Path

import pytest

from distroless.melange.build import BuildOptions, build
from hostile.apkcraft import dir_, hardlink, new_key, reg, simple_apk, sym, write_repo
from hostile.harness import cli, run_bounded


def _dirs_for(path: str) -> list:
    parts = path.strip("/").split("/")
    return [dir_("/".join(parts[:i])) for i in range(1, len(parts))]


@pytest.fixture()
def hostile_env(tmp_path: Path):
    host = tmp_path / "host"
    host.mkdir()
    secret = host / "secret"
    secret.write_text("HOST-SECRET\n")
    secret.chmod(0o400)
    host2 = tmp_path / "host2"
    host2.mkdir()
    key, pub = new_key(tmp_path)
    repo = tmp_path / "repo"
    (repo / "x86_64").mkdir(parents=True)
    in_tree = str(secret).lstrip("/")
    entries = [sym("a", str(host)), sym("home", str(host2)), *_dirs_for(in_tree),
               reg(in_tree, b"PACKAGE-COPY\n"), hardlink("zz", "a/secret")]
    pkg = simple_apk(repo / "x86_64" / "evil-1.0-r0.apk", "evil", entries, key)
    write_repo(repo, [pkg], key)
    return repo, pub, host, host2


def test_environment_package_cannot_link_or_mkdir_on_the_host(tmp_path: Path, hostile_env) -> None:
    repo, pub, host, host2 = hostile_env
    recipe = tmp_path / "probe.yaml"
    recipe.write_text(textwrap.dedent(f"""\
        package: {{name: probe, version: 1.0.0, epoch: 0}}
        environment:
          contents:
            repositories: [{repo}]
            keyring: [{pub}]
            packages: [evil]
        pipeline:
          - runs: |
              mkdir -p ${{{{targets.destdir}}}}
              cat /zz > ${{{{targets.destdir}}}}/leak
        """))
    out = tmp_path / "out"
    build(recipe, BuildOptions(out_dir=out, host_toolchain=True, log=io.StringIO(), apk_cache_dir=tmp_path / "cache"))
    with tarfile.open(out / "x86_64" / "probe-1.0.0-r0.apk") as tar:
        leaked = tar.extractfile("leak").read()
    assert leaked == b"PACKAGE-COPY\n"  # the tree's own file, not the host's
    assert list(host2.iterdir()) == []  # no /home/build made through `home -> host2`
    assert sorted(p.name for p in host.iterdir()) == ["secret"]
    assert (host / "secret").stat().st_nlink == 1  # never hard-linked into a sandbox root


def test_dotdot_in_paths_is_a_located_config_error(tmp_path: Path) -> None:
    (tmp_path / "image.yaml").write_text("contents: {packages: []}\narchs: [x86_64]\npaths:\n"
                                         "  - path: /etc/../../escape\n    type: empty-file\n")
    out = run_bounded(cli("image", "build-minirootfs", "image.yaml", "rootfs.tar"), mem_mb=600, cpu_s=30,
                      cwd=tmp_path)
    out.assert_one_line_error("image.yaml:4:", "paths[0].path", "'..'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image.yaml"]


def test_layer_hard_links_name_earlier_entries_by_real_path(tmp_path: Path) -> None:
    key, pub = new_key(tmp_path)
    repo = tmp_path / "repo"
    (repo / "x86_64").mkdir(parents=True)
    entries = [dir_("real"), reg("real/secret", b"in-image\n"), sym("a", "/real"),
               hardlink("zz", "a/secret"),                       # through a symlink
               dir_("b"), reg("b/target", b"later\n"), hardlink("a0", "b/target")]  # precedes its target
    pkg = simple_apk(repo / "x86_64" / "links-1.0-r0.apk", "links", entries, key)
    write_repo(repo, [pkg], key)
    (tmp_path / "image.yaml").write_text(f"contents:\n  repositories: [{repo}]\n  keyring: [{pub}]\n"
                                         "  packages: [links]\narchs: [x86_64]\n")
    out = run_bounded(cli("image", "build-minirootfs", "image.yaml", "rootfs.tar", "--cache-dir",
                          str(tmp_path / "cache")), mem_mb=600, cpu_s=30, cwd=tmp_path)
    assert out.status == 0, out.stderr
    with tarfile.open(tmp_path / "rootfs.tar") as tar:
        members = {m.name: m for m in tar.getmembers()}
        order = [m.name for m in tar.getmembers()]
    for m in members.values():
        assert not m.name.startswith("/") and ".." not in m.name.split("/")
        if m.islnk():
            assert members[m.linkname].isreg() and order.index(m.linkname) < order.index(m.name), m.name
    assert members["zz"].islnk() and members["zz"].linkname == "real/secret"
    assert members["a0"].isreg()  # the link came first: it carries the contents
    dest = tmp_path / "x"
    dest.mkdir()
    subprocess.run(["tar", "-xf", str(tmp_path / "rootfs.tar"), "-C", str(dest)], check=True)
    assert (dest / "zz").read_bytes() == b"in-image\n" and (dest / "a0").read_bytes() == b"later\n"
