"""Every key the image configuration accepts either works or fails with "not supported" and its
line: one test per row of docs/config-audit.md, and the table itself must list exactly the keys
the reader accepts."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from auditrepo import AuditRepos, build_in_process, header, image_config, make_repos
from distroless.config import reader
from distroless.errors import DistrolessError
from distroless.rootfs.tree import Tree
from distroless import imagebuild

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "config-audit.md"


@pytest.fixture(scope="module")
def repos(tmp_path_factory) -> AuditRepos:
    return make_repos(tmp_path_factory.mktemp("audit"))


@dataclass
class Result:
    tree: Tree
    config: dict      # the OCI image config
    apko_json: dict   # /etc/apko.json
    layers: int
    archs: list[str]
    trees: dict       # arch -> Tree


def run(tmp: Path, text: str, extra_files: dict[str, str] | None = None) -> Result:
    (tmp / "image.yaml").write_text(text)
    for name, body in (extra_files or {}).items():
        (tmp / name).write_text(body)
    loaded, built = build_in_process(tmp)
    first = built[0]
    layers = len(imagebuild.layer_groups(loaded, first))
    return Result(first.rootfs.tree, image_config(loaded, first)["config"],
                  json.loads(first.rootfs.tree.get("etc/apko.json").data()), layers,
                  [a.arch for a in built], {a.arch: a.rootfs.tree for a in built})


def text(tree: Tree, path: str) -> str:
    node = tree.get(path, follow=True)
    assert node is not None, path
    return node.data().decode()


def installed(tree: Tree) -> list[str]:
    return re.findall(r"^P:(.*)$", text(tree, "usr/lib/apk/db/installed"), re.M)


# --- one check per row ------------------------------------------------------------------------

Check = Callable[[Path, AuditRepos], None]
ROWS: dict[str, Check] = {}


def row(name: str) -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        ROWS[name] = fn
        return fn
    return register


@row("contents.repositories")
def _(tmp, repos):
    r = run(tmp, header(repos))
    assert installed(r.tree) == ["base", "tool"]
    assert text(r.tree, "etc/apk/repositories") == f"{repos.main}\n"


@row("contents.build_repositories")
def _(tmp, repos):
    r = run(tmp, header(repos, "[tool, buildonly]").replace(
        "  keyring:", f"  build_repositories: [{repos.build}]\n  keyring:"))
    assert "buildonly" in installed(r.tree)
    assert text(r.tree, "etc/apk/repositories") == f"{repos.main}\n"  # build-only: not at runtime


@row("contents.runtime_repositories")
def _(tmp, repos):
    r = run(tmp, header(repos).replace("  keyring:", f"  runtime_repositories: [{repos.runtime}]\n  keyring:"))
    assert text(r.tree, "etc/apk/repositories") == "\n".join(sorted([str(repos.main), str(repos.runtime)])) + "\n"
    with pytest.raises(DistrolessError, match="runtimeonly"):  # never used to resolve
        run(tmp, header(repos, "[runtimeonly]").replace(
            "  keyring:", f"  runtime_repositories: [{repos.runtime}]\n  keyring:"))


@row("contents.keyring")
def _(tmp, repos):
    r = run(tmp, header(repos))
    assert text(r.tree, "etc/apk/keys/audit.rsa.pub") == repos.pub.read_text()
    (tmp / "nokey").mkdir()
    with pytest.raises(DistrolessError, match="no known key|signature|key"):
        run(tmp / "nokey", header(repos).replace(f"keyring: [{repos.pub}]", "keyring: []"))


@row("contents.runtime_keyring[].name")
def _(tmp, repos):
    cfg = header(repos).replace("archs: [x86_64]\n", "") + \
        "  runtime_keyring:\n    - {name: mirror.rsa.pub, content: \"K\\n\"}\narchs: [x86_64]\n"
    assert run(tmp, cfg).tree.get("etc/apk/keys/mirror.rsa.pub") is not None
    with pytest.raises(DistrolessError, match=r"image\.yaml:6:\d+: .*runtime key name '../x' must match"):
        run(tmp, cfg.replace("mirror.rsa.pub", "../x"))


@row("contents.runtime_keyring[].content")
def _(tmp, repos):
    cfg = header(repos).replace("archs: [x86_64]\n", "") + \
        "  runtime_keyring:\n    - {name: k.pub, content: \"KEYDATA\\n\"}\narchs: [x86_64]\n"
    r = run(tmp, cfg)
    assert text(r.tree, "etc/apk/keys/k.pub") == "KEYDATA\n"


@row("contents.packages")
def _(tmp, repos):
    r = run(tmp, header(repos, "[tool, s6]"))
    assert installed(r.tree) == ["base", "tool", "s6"] or sorted(installed(r.tree)) == ["base", "s6", "tool"]
    assert "s6=2.11-r0" in text(r.tree, "etc/apk/world")


@row("contents.baseimage.image")
def _(tmp, repos):
    # proven end to end in tests/test_baseimage.py; here: the key is read and must be paired
    with pytest.raises(DistrolessError, match=r"image\.yaml:\d+:\d+: contents\.baseimage: .*needs both"):
        run(tmp, header(repos).replace("  keyring:", "  baseimage: {image: ./base}\n  keyring:"))


@row("contents.baseimage.apkindex")
def _(tmp, repos):
    with pytest.raises(DistrolessError, match=r"image\.yaml:\d+:\d+: contents\.baseimage: .*needs both"):
        run(tmp, header(repos).replace("  keyring:", "  baseimage: {apkindex: ./meta}\n  keyring:"))


@row("entrypoint.type")
def _(tmp, repos):
    r = run(tmp, header(repos) + "entrypoint:\n  type: service-bundle\n  services: {web: /usr/bin/tool}\n")
    assert "s6" in installed(r.tree)
    assert r.config["Entrypoint"] == ["/bin/s6-svscan", "/sv"]


@row("entrypoint.services")
def _(tmp, repos):
    r = run(tmp, header(repos) + "entrypoint:\n  type: service-bundle\n  services: {web: /usr/bin/tool -x}\n")
    node = r.tree.get("sv/web/run")
    assert node.data() == b"#!/bin/execlineb\n/usr/bin/tool -x\n" and node.mode == 0o755


@row("entrypoint.command")
def _(tmp, repos):
    assert run(tmp, header(repos) + "entrypoint: {command: /usr/bin/tool 'a b'}\n").config["Entrypoint"] == \
        ["/usr/bin/tool", "a b"]


@row("entrypoint.shell-fragment")
def _(tmp, repos):
    assert run(tmp, header(repos) + "entrypoint: {shell-fragment: 'echo hi'}\n").config["Entrypoint"] == \
        ["/bin/sh", "-c", "echo hi"]


@row("cmd")
def _(tmp, repos):
    assert run(tmp, header(repos) + "cmd: --flag 'x y'\n").config["Cmd"] == ["--flag", "x y"]


@row("stop-signal")
def _(tmp, repos):
    assert run(tmp, header(repos) + "stop-signal: SIGQUIT\n").config["StopSignal"] == "SIGQUIT"


@row("work-dir")
def _(tmp, repos):
    assert run(tmp, header(repos) + "work-dir: /srv\n").config["WorkingDir"] == "/srv"


ACCOUNTS = ("accounts:\n  run-as: app\n  users:\n    - {username: app, uid: 1000, gid: 2000, shell: /bin/false, "
            "homedir: /srv/app}\n  groups:\n    - {groupname: staff, gid: 2000, members: [app]}\n")


@row("accounts.run-as")
def _(tmp, repos):
    assert run(tmp, header(repos) + ACCOUNTS).config["User"] == "1000"


@row("accounts.users[].username")
def _(tmp, repos):
    assert "app:x:1000:2000:Account created by apko:/srv/app:/bin/false\n" in \
        text(run(tmp, header(repos) + ACCOUNTS).tree, "etc/passwd")


@row("accounts.users[].uid")
def _(tmp, repos):
    r = run(tmp, header(repos) + ACCOUNTS)
    assert r.tree.get("srv/app").uid == 1000
    assert text(r.tree, "etc/shadow").startswith("app:!:")


@row("accounts.users[].gid")
def _(tmp, repos):
    r = run(tmp, header(repos) + "accounts:\n  users:\n    - {username: u, uid: 7}\n    - {username: v, uid: 8, gid: 0}\n")
    assert "u:x:7:7:" in text(r.tree, "etc/passwd") and "v:x:8:0:" in text(r.tree, "etc/passwd")


@row("accounts.users[].shell")
def _(tmp, repos):
    r = run(tmp, header(repos) + "accounts:\n  users:\n    - {username: u, uid: 7}\n")
    assert ":/home/u:/bin/sh\n" in text(r.tree, "etc/passwd")
    assert text(run(tmp, header(repos) + ACCOUNTS).tree, "etc/passwd").endswith(":/bin/false\n")


@row("accounts.users[].homedir")
def _(tmp, repos):
    r = run(tmp, header(repos) + ACCOUNTS)
    home = r.tree.get("srv/app")
    assert home.type == "dir" and home.mode == 0o700 and (home.uid, home.gid) == (1000, 2000)


@row("accounts.groups[].groupname")
def _(tmp, repos):
    assert "staff:x:2000:app\n" in text(run(tmp, header(repos) + ACCOUNTS).tree, "etc/group")


@row("accounts.groups[].gid")
def _(tmp, repos):
    assert ":x:2000:" in text(run(tmp, header(repos) + ACCOUNTS).tree, "etc/group")


@row("accounts.groups[].members")
def _(tmp, repos):
    cfg = header(repos) + "accounts:\n  groups:\n    - {groupname: g, gid: 5, members: [a, b]}\n"
    assert "g:x:5:a,b\n" in text(run(tmp, cfg).tree, "etc/group")


@row("archs")
def _(tmp, repos):
    r = run(tmp, header(repos, archs="[x86_64, aarch64]"))
    assert r.archs == ["amd64", "arm64"]
    assert text(r.trees["arm64"], "etc/apk/arch") == "aarch64\n"
    assert re.search(r"^A:aarch64$", text(r.trees["arm64"], "usr/lib/apk/db/installed"), re.M)


@row("environment")
def _(tmp, repos):
    env = run(tmp, header(repos) + "environment: {FOO: bar, PATH: /bin}\n").config["Env"]
    assert env == ["FOO=bar", "PATH=/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"]


PATHS_DIR = "paths:\n  - {path: /data/new, type: directory, permissions: 0o750, uid: 10, gid: 20}\n"


@row("paths[].path")
def _(tmp, repos):
    assert run(tmp, header(repos) + PATHS_DIR).tree.get("data/new").type == "dir"


@row("paths[].type")
def _(tmp, repos):
    cfg = header(repos) + ("paths:\n  - {path: /e/f, type: empty-file, permissions: 0o600}\n"
                           "  - {path: /e/h, type: hardlink, source: /usr/bin/tool, permissions: 0o755}\n"
                           "  - {path: /e/s, type: symlink, source: /usr/bin/tool, permissions: 0o700}\n"
                           "  - {path: /data/sub/file, type: permissions, permissions: 0o400}\n")
    t = run(tmp, cfg).tree
    assert t.get("e/f").type == "reg" and t.get("e/f").size == 0 and t.get("e/f").mode == 0o600
    assert t.get("e/h").data() == b"#!/bin/sh\n"
    assert t.get("e/s").type == "sym" and t.get("e/s").linkname == "/usr/bin/tool"
    assert t.get("usr/bin/tool").mode == 0o700  # chmod follows the symlink, as apko's
    assert t.get("data/sub/file").mode == 0o400


@row("paths[].uid")
def _(tmp, repos):
    # an explicit 0 is not "unset": the earlier chown to 1000 is undone (apko's pointer semantics)
    cfg = header(repos) + ("paths:\n  - {path: /data/sub, type: permissions, permissions: 0o755, uid: 1000, gid: 1000}\n"
                           "  - {path: /data/sub, type: permissions, permissions: 0o755, uid: 0}\n"
                           "  - {path: /data/new, type: directory, permissions: 0o755, uid: 7}\n"
                           "  - {path: /data/keep, type: directory, permissions: 0o755}\n")
    r = run(tmp, cfg)
    assert (r.tree.get("data/sub").uid, r.tree.get("data/sub").gid) == (0, 0)
    assert (r.tree.get("data/new").uid, r.tree.get("data/new").gid) == (7, 0)
    assert [p.get("uid") for p in r.apko_json["paths"]] == [1000, 0, 7, None]


@row("paths[].gid")
def _(tmp, repos):
    cfg = header(repos) + ("paths:\n  - {path: /data/sub, type: permissions, permissions: 0o755, uid: 5, gid: 5}\n"
                           "  - {path: /data/sub, type: permissions, permissions: 0o755, gid: 0}\n"
                           "  - {path: /data/sub/file, type: permissions, permissions: 0o644, gid: 9}\n")
    r = run(tmp, cfg)
    assert (r.tree.get("data/sub").uid, r.tree.get("data/sub").gid) == (0, 0)
    assert (r.tree.get("data/sub/file").uid, r.tree.get("data/sub/file").gid) == (0, 9)
    assert [p.get("gid") for p in r.apko_json["paths"]] == [5, 0, 9]


@row("paths[].permissions")
def _(tmp, repos):
    t = run(tmp, header(repos) + PATHS_DIR + "  - {path: /data/nomode, type: directory}\n").tree
    assert t.get("data/new").mode == 0o750
    assert t.get("data/nomode").mode == 0  # omitted permissions chmod to 0000, as apko


@row("paths[].source")
def _(tmp, repos):
    t = run(tmp, header(repos) + "paths:\n  - {path: /l, type: symlink, source: usr/bin/tool, permissions: 0o755}\n").tree
    assert t.get("l").linkname == "usr/bin/tool"


@row("paths[].recursive")
def _(tmp, repos):
    cfg = header(repos) + "paths:\n  - {path: /data, type: permissions, permissions: 0o700, uid: 3, recursive: true}\n"
    t = run(tmp, cfg).tree
    assert all((t.get(p).mode, t.get(p).uid) == (0o700, 3) for p in ("data", "data/sub", "data/sub/file"))


@row("vcs-url")
def _(tmp, repos):
    labels = run(tmp, header(repos) + "vcs-url: https://git.example/repo@abc123\n").config["Labels"]
    assert labels["org.opencontainers.image.source"] == "https://git.example/repo"
    assert labels["org.opencontainers.image.revision"] == "abc123"


@row("annotations")
def _(tmp, repos):
    assert run(tmp, header(repos) + "annotations: {org.example.team: infra}\n").config["Labels"][
        "org.example.team"] == "infra"


@row("include")
def _(tmp, repos):
    r = run(tmp, "include: base.yaml\ncontents:\n  packages: [s6]\n", {"base.yaml": header(repos)})
    assert sorted(installed(r.tree)) == ["base", "s6", "tool"]


@row("volumes")
def _(tmp, repos):
    assert run(tmp, header(repos) + "volumes: [/var/data]\n").config["Volumes"] == {"/var/data": {}}


@row("layering.strategy")
def _(tmp, repos):
    assert run(tmp, header(repos, "[tool, s6]") + "layering: {strategy: origin, budget: 10}\n").layers == 4
    with pytest.raises(DistrolessError, match=r"image\.yaml:\d+:\d+: layering\.strategy: unrecognized"):
        run(tmp, header(repos) + "layering: {strategy: size, budget: 2}\n")


@row("layering.budget")
def _(tmp, repos):
    # three origins: budget 2 keeps one, merges the other two, then the top layer
    assert run(tmp, header(repos, "[tool, s6]") + "layering: {strategy: origin, budget: 2}\n").layers == 3


@row("format")
def _(tmp, repos):
    assert run(tmp, header(repos) + "format: tar\n").layers == 1
    with pytest.raises(DistrolessError, match=r"image\.yaml:\d+:9: format: format 'erofs' is not supported"):
        run(tmp, header(repos) + "format: erofs\n")


def _additional(repos: AuditRepos, name: str = "corp") -> str:
    pem = repos.pkg_cert.decode().replace("\n", "\n        ")
    return f"certificates:\n  additional:\n    - name: {name}\n      content: |\n        {pem}\n"


@row("certificates.additional[].name")
def _(tmp, repos):
    t = run(tmp, header(repos) + _additional(repos, "corp-ca")).tree
    names = list(t.get("usr/local/share/ca-certificates").children)
    assert len(names) == 1 and re.fullmatch(r"corp-ca-[0-9a-f]{64}\.crt", names[0])


@row("certificates.additional[].content")
def _(tmp, repos):
    t = run(tmp, header(repos) + _additional(repos)).tree
    bundle = text(t, "etc/ssl/certs/ca-certificates.crt")
    assert bundle == repos.base_cert.decode() + repos.pkg_cert.decode() + "\n"
    assert text(t, "etc/ssl/certs/.ca-certificates.crt.sha256").endswith("  ca-certificates.crt\n")


@row("certificates.providers")
def _(tmp, repos):
    import hashlib
    cfg = header(repos, "[tool, certs-a]") + "certificates:\n  providers: [custom-ca-certificates]\n"
    t = run(tmp, cfg).tree
    bundle = t.get("etc/ssl/certs/ca-certificates.crt").data()
    # the .crt only (the .pem does not parse and is skipped; .txt is not a certificate file)
    assert bundle == repos.base_cert + repos.pkg_cert + b"\n"
    assert text(t, "etc/ssl/certs/.ca-certificates.crt.sha256") == \
        f"{hashlib.sha256(bundle).hexdigest()}  ca-certificates.crt\n"
    # without the key, the package's certificate stays out of the bundle
    t2 = run(tmp, header(repos, "[tool, certs-a]")).tree
    assert t2.get("etc/ssl/certs/ca-certificates.crt").data() == repos.base_cert


# --- the table and the reader agree ------------------------------------------------------------

def accepted_keys() -> set[str]:
    """Every leaf key the reader accepts, spelled as in the table."""
    nested = {
        "contents": {k: None for k in reader.CONTENTS_KEYS},
        "entrypoint": reader.ENTRYPOINT_KEYS, "layering": reader.LAYERING_KEYS,
        "accounts": {"run-as": None, "users[]": reader.USER_KEYS, "groups[]": reader.GROUP_KEYS},
        "paths[]": reader.PATH_KEYS,
        "certificates": {"additional[]": reader.NAMED_CONTENT_KEYS, "providers": None},
    }
    nested["contents"]["runtime_keyring[]"] = reader.NAMED_CONTENT_KEYS
    del nested["contents"]["runtime_keyring"]
    nested["contents"]["baseimage"] = reader.BASEIMAGE_KEYS
    out: set[str] = set()

    def walk(prefix: str, value) -> None:
        if value is None:
            out.add(prefix)
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            for k in value:
                out.add(f"{prefix}.{k}")

    for key in reader.TOP_KEYS:
        walk(key, nested.get(key) or nested.get(key + "[]"))
    return {k.replace("paths.", "paths[].") if k.startswith("paths.") else k for k in out}


def doc_rows() -> list[str]:
    return re.findall(r"^\| `([^`]+)` \|", DOC.read_text(), re.M)


def test_table_lists_every_accepted_key_once() -> None:
    rows = doc_rows()
    assert len(rows) == len(set(rows))
    assert set(rows) == accepted_keys()
    assert set(rows) == set(ROWS)


@pytest.mark.parametrize("name", sorted(ROWS))
def test_row(name: str, tmp_path: Path, repos: AuditRepos) -> None:
    ROWS[name](tmp_path, repos)
