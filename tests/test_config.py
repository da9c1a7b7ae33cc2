"""apko image configuration: YAML 1.2 loading with positions, strict schema, include merging,
CLI overrides, /etc/apko.json and the lock file's config checksum."""

from __future__ import annotations

import base64
import hashlib
import json
import math
from pathlib import Path

import pytest

from distroless.config import (
    ALL_ARCHS,
    ImageConfig,
    Overrides,
    User,
    arch_to_apk,
    go_yaml_int,
    image_environment,
    load,
    load_image_config,
    parse_architectures,
    parse_image_config,
    resolve_build_date,
    to_apko_json,
)
from distroless.config.model import Contents, Entrypoint
from distroless.errors import ConfigError, DistrolessError
from shared import FIXTURES

EXAMPLES_DIR = FIXTURES / "configs" / "apko-examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.yaml"))


@pytest.fixture
def examples_cwd(tmp_path: Path) -> Path:
    # apko resolves `include: examples/alpine-base.yaml` against the working directory (its
    # repository root), so give the fixtures that layout.
    (tmp_path / "examples").symlink_to(EXAMPLES_DIR)
    return tmp_path


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- every apko example loads ---------------------------------------------------------------

def test_examples_present() -> None:
    assert len(EXAMPLES) == 19


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_apko_example_loads(path: Path, examples_cwd: Path) -> None:
    loaded = load_image_config(f"examples/{path.name}", cwd=examples_cwd)
    cfg = loaded.config
    assert cfg.contents.packages, "every example installs something"
    assert cfg.archs and all(a in ALL_ARCHS for a in cfg.archs)
    assert loaded.checksum.startswith("sha256-")
    assert loaded.files[0].name == path.name
    json.loads(to_apko_json(cfg))


def test_example_nginx_details(examples_cwd: Path) -> None:
    cfg = load_image_config("examples/nginx.yaml", cwd=examples_cwd).config
    # service-bundle: apko's Validate forces the s6 command and adds s6
    assert cfg.entrypoint.command == "/bin/s6-svscan /sv"
    assert cfg.contents.packages == ("wolfi-baselayout", "nginx", "s6")
    assert dict(cfg.entrypoint.services or {}) == {
        "nginx": '/usr/sbin/nginx -c /etc/nginx/nginx.conf -g "daemon off;"'}
    assert [(p.path, p.type, p.uid, p.gid, p.permissions) for p in cfg.paths] == [
        ("/run/nginx", "directory", 10000, 10000, 0o755),
        ("/etc/nginx/http.d/default.conf", "hardlink", 10000, 10000, 0o644)]
    assert cfg.accounts.users == (User("nginx", 10000, None, "", "/home/nginx"),)
    assert cfg.accounts.users[0].primary_gid == 10000
    assert cfg.accounts.users[0].login_shell == "/bin/sh"
    assert cfg.work_dir == "/usr/share/nginx"
    assert dict(cfg.annotations) == {"foo": "bar"}


def test_example_runtime_keyring_and_certificates(examples_cwd: Path) -> None:
    cfg = load_image_config("examples/runtime-keyring.yaml", cwd=examples_cwd).config
    assert [k.name for k in cfg.contents.runtime_keyring] == ["example-mirror.rsa.pub"]
    assert cfg.contents.runtime_keyring[0].content.startswith("-----BEGIN PUBLIC KEY-----\n")
    assert cfg.contents.runtime_repositories == ("https://packages.example.com/os",)
    assert cfg.archs == ("amd64", "arm64")
    certs = load_image_config("examples/certificates.yaml", cwd=examples_cwd).config.certificates
    assert certs is not None
    assert [c.name for c in certs.additional] == ["pretend-pear-x1", "bogus-broccoli-x2"]
    providers = load_image_config("examples/package-certificates.yaml", cwd=examples_cwd).config
    assert providers.certificates is not None
    assert providers.certificates.providers == ("custom-ca-certificates",)


def test_example_overlay_merges_include(examples_cwd: Path) -> None:
    loaded = load_image_config("examples/overlay.yaml", cwd=examples_cwd)
    cfg = loaded.config
    assert cfg.contents.packages == ("alpine-base", "nano")
    assert cfg.contents.repositories == ("https://dl-cdn.alpinelinux.org/alpine/v3.22/main",)
    assert cfg.cmd == "/bin/sh -l"
    assert cfg.archs == ("amd64", "arm64")
    assert cfg.include == "examples/alpine-base.yaml"
    assert [p.name for p in loaded.files] == ["overlay.yaml", "alpine-base.yaml"]
    data = (EXAMPLES_DIR / "overlay.yaml").read_bytes() + (EXAMPLES_DIR / "alpine-base.yaml").read_bytes()
    assert loaded.checksum == "sha256-" + base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_include_not_found_without_examples_dir() -> None:
    with pytest.raises(ConfigError, match=r"include\.yaml:1:10: include: examples/alpine-base\.yaml: no such file"):
        load_image_config(EXAMPLES_DIR / "include.yaml", cwd=EXAMPLES_DIR)


# --- YAML 1.2 core schema ---------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("0o755", 493),
    ("0755", 755),          # YAML 1.2 core: decimal
    ("0x1F", 31),
    ("-12", -12),
    ("yes", "yes"),
    ("no", "no"),
    ("on", "on"),
    ("off", "off"),
    ("y", "y"),
    ("True", True),
    ("FALSE", False),
    ("1e3", 1000.0),
    ("1_000", "1_000"),
    ("~", None),
    ("null", None),
    ("Null", None),
    ("", None),
    (".inf", math.inf),
    ("-.Inf", -math.inf),
    ("2001-12-14", "2001-12-14"),  # no implicit timestamps in 1.2 core
    ("0b101", "0b101"),
    ("'0o755'", "0o755"),
    ('"true"', "true"),
])
def test_yaml12_core_scalars(text: str, expected: object) -> None:
    data, _ = load(f"v: {text}\n")
    value = data["v"]
    assert value == expected and type(value) is type(expected)


def test_yaml12_nan() -> None:
    data, _ = load("v: .NaN\n")
    assert math.isnan(data["v"])


def test_yaml12_text_mode_keeps_written_scalars() -> None:
    data, loc = load("version: 4.10\nepoch: 0755\nok: yes\nflag: true\nempty:\nq: '~'\n", "r.yaml",
                     scalars="text")
    assert data == {"version": "4.10", "epoch": "0755", "ok": "yes", "flag": "true",
                    "empty": None, "q": "~"}
    info = loc.scalar(("flag",))
    assert info is not None and info.plain and info.tag == "tag:yaml.org,2002:bool"
    quoted = loc.scalar(("q",))
    assert quoted is not None and not quoted.plain


def test_yaml12_positions() -> None:
    data, loc = load("a:\n  b:\n    - x\n    -  y\n  c: 1\n", "p.yaml")
    assert data == {"a": {"b": ["x", "y"], "c": 1}}
    assert str(loc.mark(("a", "b", 1))) == "p.yaml:4:8"
    assert str(loc.key_mark(("a", "c"))) == "p.yaml:5:3"
    assert str(loc.mark(("a", "c"))) == "p.yaml:5:6"
    # a path that is not there points at its nearest ancestor
    assert str(loc.mark(("a", "missing"))) == "p.yaml:2:3"
    assert loc.where(("a", "b", 1)) == "p.yaml:4:8: a.b[1]"


def test_yaml12_merge_keys_and_aliases() -> None:
    data, _ = load("base: &b {x: 1, y: 2}\nder:\n  <<: *b\n  y: 3\nlist: [*b]\n")
    assert data["der"] == {"y": 3, "x": 1}
    assert data["list"] == [{"x": 1, "y": 2}]


@pytest.mark.parametrize(("text", "message"), [
    ("a: 1\na: 2\n", r"d\.yaml:2:1: a: duplicate key \(first defined at line 1\)"),
    ("a: [1,\n", r"d\.yaml:2:1: "),
    ("a: &x [*x]\n", r"recursive alias"),
    ("x: !!int 1_000\n", r"d\.yaml:1:4: '1_000' is not a YAML 1\.2 integer"),
])
def test_yaml12_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(text, "d.yaml")


def test_yaml12_undecodable_input_is_one_line() -> None:
    with pytest.raises(ConfigError, match=r"^b\.yaml: character 3: invalid start byte \(0x80\)$"):
        load(b"a: \x80\n", "b.yaml")


def test_yaml12_alias_bomb_is_capped() -> None:
    text = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for level in "bcdefgh":
        prev = chr(ord(level) - 1)
        text += f"{level}: &{level} [" + ", ".join([f"*{prev}"] * 10) + "]\n"
    with pytest.raises(ConfigError, match="more than 1000 nodes"):
        load(text, "bomb.yaml", max_nodes=1000)


def test_yaml12_first_document_only_and_empty() -> None:
    data, _ = load("a: 1\n---\nb: 2\n")
    assert data == {"a": 1}
    assert load("")[0] is None
    assert parse_image_config("", "e.yaml")[0] == ImageConfig()


# --- strict schema, located errors --------------------------------------------------------

def test_unknown_key_is_located_and_lists_valid_keys() -> None:
    src = "contents:\n  packages: [a]\n  pakages: [b]\n"
    with pytest.raises(ConfigError) as err:
        parse_image_config(src, "image.yaml")
    msg = str(err.value)
    assert msg.startswith("image.yaml:3:3: contents.pakages: unknown key 'pakages'")
    assert "did you mean 'packages'?" in msg
    assert "valid keys: build_repositories, runtime_repositories, repositories, keyring, " \
           "runtime_keyring, packages, baseimage" in msg


def test_unknown_top_level_key() -> None:
    with pytest.raises(ConfigError, match=r"^i\.yaml:2:1: os-release: unknown key 'os-release'"):
        parse_image_config("cmd: x\nos-release: {}\n", "i.yaml")


def test_wrong_type_is_located() -> None:
    src = "contents:\n  packages:\n    - a\n    - b\n    - {x: 1}\n"
    with pytest.raises(ConfigError, match=r"^image\.yaml:5:7: contents\.packages\[2\]: expected a string, got a mapping$"):
        parse_image_config(src, "image.yaml")
    with pytest.raises(ConfigError, match=r"^image\.yaml:1:11: contents: expected a mapping, got a list$"):
        parse_image_config("contents: [a]\n", "image.yaml")
    with pytest.raises(ConfigError, match=r"accounts\.users\[0\]\.uid: expected an integer, got a string '10'"):
        parse_image_config("accounts:\n  users:\n    - {username: a, uid: '10'}\n", "image.yaml")


def test_scalars_fill_string_fields_with_their_text() -> None:
    cfg, _ = parse_image_config(
        "accounts: {run-as: 65532}\ncmd: 1.10\nenvironment: {A: 1, B: true, C: ~, 7: x}\n", "s.yaml")
    assert cfg.accounts.run_as == "65532"
    assert cfg.cmd == "1.10"
    assert dict(cfg.environment) == {"A": "1", "B": "true", "C": "", "7": "x"}


def test_integer_fields_follow_yaml_v3() -> None:
    src = ("paths:\n"
           "  - {path: /a, type: directory, permissions: 0755, recursive: yes}\n"
           "  - {path: /b, type: directory, permissions: 0o700, uid: 1_000, gid: 1e3}\n")
    cfg, _ = parse_image_config(src, "p.yaml")
    assert (cfg.paths[0].permissions, cfg.paths[0].recursive) == (0o755, True)
    assert (cfg.paths[1].permissions, cfg.paths[1].uid, cfg.paths[1].gid) == (0o700, 1000, 1000)
    assert go_yaml_int("0755") == 493
    assert go_yaml_int("08") == 8
    assert go_yaml_int("-0x10") == -16
    assert go_yaml_int("0b11") == 3
    assert go_yaml_int("1.5") is None
    assert go_yaml_int("yes") is None


@pytest.mark.parametrize(("src", "message"), [
    ("accounts:\n  users:\n    - username: a\n      uid: 0\n",
     r"u\.yaml:4:12: accounts\.users\[0\]\.uid: configured user 'a' has UID 0 \(to run as root, use `run-as: 0`\)"),
    ("accounts:\n  users:\n    - uid: 5\n", r"accounts\.users\[0\]: configured user has no username"),
    ("accounts:\n  users:\n    - {username: a, uid: 4294967296}\n", r"4294967296 is out of range \(0\.\.4294967295\)"),
    ("accounts:\n  users:\n    - {username: a, uid: -1}\n", r"-1 is out of range"),
    ("accounts:\n  groups:\n    - gid: 5\n", r"accounts\.groups\[0\]: configured group has no groupname"),
    ("paths:\n  - {path: /x, type: directory, permissions: 0o17777}\n",
     r"paths\[0\]\.permissions: 0o17777 is out of range \(0o0\.\.0o7777\)"),
    ("paths:\n  - {path: /x, type: dir}\n", r"u\.yaml:2:22: paths\[0\]\.type: unknown path type 'dir'"),
    ("paths:\n  - {path: /x, type: symlink}\n", r"paths\[0\]: a symlink needs a source"),
    ("paths:\n  - {type: directory}\n", r"paths\[0\]: path mutation has no path"),
    ("paths:\n  - {path: /x, type: directory, recursive: 1}\n", r"paths\[0\]\.recursive: expected a boolean"),
    ("layering: {strategy: size, budget: 3}\n", r"layering\.strategy: unrecognized layering strategy 'size'"),
    ("layering: {budget: 3}\n", r"layering: unrecognized layering strategy ''"),
    ("layering: {strategy: origin, budget: -1}\n", r"layering\.budget: -1 is out of range"),
    ("format: squashfs\n", r"u\.yaml:1:9: format: unknown format 'squashfs'"),
    ("archs: [all]\n", r"archs\[0\]: 'all' is not an architecture here"),
    ("entrypoint: {type: services}\n", r"entrypoint\.type: unsupported entrypoint type 'services'"),
    ("certificates:\n  additional:\n    - {name: 'a b', content: x}\n", r"certificate name 'a b' must match"),
    ("contents:\n  runtime_keyring:\n    - {name: k.rsa.pub}\n", r"runtime key 'k\.rsa\.pub' has no content"),
    ("contents:\n  runtime_keyring:\n    - https://x/k.rsa.pub\n", r"contents\.runtime_keyring\[0\]: expected a mapping, got a string"),
    ("contents:\n  packages: [a, ~]\n", r"contents\.packages\[1\]: expected a string, got null"),
    ("contents:\n  baseimage: {image: a, apkindex: b}\ncmd: x\n",
     r"contents\.baseimage: when using a base image, the only supported image specification are"),
])
def test_validation_errors(src: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_image_config(src, "u.yaml")


def test_config_error_is_a_distroless_error() -> None:
    assert issubclass(ConfigError, DistrolessError)


def test_empty_layering_is_single_layer_and_erofs_refused(tmp_path: Path) -> None:
    cfg, _ = parse_image_config("layering: {}\n", "l.yaml")
    assert cfg.layering is not None and not cfg.multi_layer
    assert json.loads(to_apko_json(cfg))["layering"] == {}
    write(tmp_path, "e.yaml", "cmd: x\nformat: erofs\n")
    with pytest.raises(ConfigError, match=r"e\.yaml:2:9: format: format 'erofs' is not supported"):
        load_image_config("e.yaml", cwd=tmp_path)


def test_duplicate_runtime_key_across_include(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", "contents:\n  runtime_keyring:\n    - {name: k.pub, content: A}\n")
    write(tmp_path, "top.yaml", "include: base.yaml\ncontents:\n  runtime_keyring:\n    - {name: k.pub, content: B}\n")
    with pytest.raises(ConfigError, match=r"top\.yaml:4:7: contents\.runtime_keyring: duplicate runtime key name 'k\.pub' \(first at base\.yaml:3:7\)"):
        load_image_config("top.yaml", cwd=tmp_path)


def test_repositories_lose_trailing_slashes(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", "contents:\n  repositories: [https://base/]\n")
    write(tmp_path, "r.yaml", "include: base.yaml\ncontents:\n  repositories: [https://r/os/]\n"
                              "  build_repositories: [https://b//]\n"
                              "  runtime_repositories: ['@x https://t/']\n")
    c = load_image_config("r.yaml", cwd=tmp_path).config.contents
    assert (c.repositories, c.build_repositories, c.runtime_repositories) == (
        ("https://base", "https://r/os"), ("https://b",), ("@x https://t",))


# --- include merging --------------------------------------------------------------------

BASE_YAML = """\
contents:
  keyring: [base.pub]
  repositories: [https://base/repo/]
  build_repositories: [https://base/build]
  runtime_repositories: [https://base/runtime]
  packages: [base-pkg]
entrypoint: {command: /base}
cmd: base-cmd
stop-signal: SIGTERM
work-dir: /base
accounts:
  run-as: base
  users: [{username: base, uid: 100}]
  groups: [{groupname: base, gid: 100}]
archs: [x86_64]
environment: {A: base, B: base}
annotations: {a: base, b: base}
paths: [{path: /base, type: directory, permissions: 0o755}]
volumes: [/base]
vcs-url: https://base@1
layering: {strategy: origin, budget: 3}
"""

TOP_YAML = """\
include: base.yaml
contents:
  keyring: [top.pub]
  repositories: [https://top/repo]
  packages: [top-pkg]
cmd: top-cmd
accounts:
  users: [{username: top, uid: 200, gid: 0}]
environment: {B: top, C: top}
annotations: {b: top}
paths: [{path: /top, type: empty-file}]
volumes: [/top]
"""


def test_include_merge_rules(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", BASE_YAML)
    write(tmp_path, "top.yaml", TOP_YAML)
    loaded = load_image_config("top.yaml", cwd=tmp_path)
    cfg = loaded.config
    c = cfg.contents
    # lists: base first
    assert c.keyring == ("base.pub", "top.pub")
    assert c.repositories == ("https://base/repo", "https://top/repo")
    assert c.build_repositories == ("https://base/build",)
    assert c.runtime_repositories == ("https://base/runtime",)
    assert c.packages == ("base-pkg", "top-pkg")
    assert [u.username for u in cfg.accounts.users] == ["base", "top"]
    assert [g.groupname for g in cfg.accounts.groups] == ["base"]
    assert [p.path for p in cfg.paths] == ["/base", "/top"]
    assert cfg.volumes == ("/base", "/top")
    # single values: the including file wins when set
    assert cfg.cmd == "top-cmd"
    assert cfg.entrypoint.command == "/base"
    assert (cfg.stop_signal, cfg.work_dir, cfg.accounts.run_as) == ("SIGTERM", "/base", "base")
    assert cfg.archs == ("amd64",)
    assert cfg.layering is not None and cfg.layering.budget == 3
    # maps: the including file's keys win
    assert dict(cfg.environment) == {"A": "base", "B": "top", "C": "top"}
    assert dict(cfg.annotations) == {"a": "base", "b": "top"}
    # not merged by apko
    assert cfg.vcs_url == ""
    assert cfg.include == "base.yaml"
    # a gid of 0 is kept (pointer field), and shows in apko.json
    top_user = cfg.accounts.users[1]
    assert top_user.gid == 0 and top_user.primary_gid == 0
    assert json.loads(to_apko_json(cfg))["accounts"]["users"][1] == {
        "username": "top", "uid": 200, "gid": 0, "homedir": "/home/top"}
    # checksum: main file bytes, then the included file's
    data = (tmp_path / "top.yaml").read_bytes() + (tmp_path / "base.yaml").read_bytes()
    assert loaded.checksum == "sha256-" + base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert [p.name for p in loaded.files] == ["top.yaml", "base.yaml"]


def test_include_entrypoint_replaced_as_a_whole(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", "entrypoint: {type: service-bundle, services: {a: /a}}\n")
    write(tmp_path, "top.yaml", "include: base.yaml\nentrypoint: {command: /top}\n")
    cfg = load_image_config("top.yaml", cwd=tmp_path).config
    assert cfg.entrypoint == Entrypoint(command="/top")
    assert "s6" not in cfg.contents.packages


def test_include_chain_and_include_paths(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    write(tmp_path, "lib/a.yaml", "contents: {packages: [a]}\narchs: [aarch64]\n")
    write(tmp_path, "lib/b.yaml", "include: a.yaml\ncontents: {packages: [b]}\n")
    write(tmp_path, "c.yaml", "include: b.yaml\ncontents: {packages: [c]}\n")
    loaded = load_image_config("c.yaml", Overrides(include_paths=("lib",)), cwd=tmp_path)
    assert loaded.config.contents.packages == ("a", "b", "c")
    assert loaded.config.archs == ("arm64",)
    assert [p.name for p in loaded.files] == ["c.yaml", "b.yaml", "a.yaml"]


def test_include_cycle_detected(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "include: b.yaml\n")
    write(tmp_path, "b.yaml", "contents: {packages: [x]}\ninclude: a.yaml\n")
    with pytest.raises(ConfigError, match=r"b\.yaml:2:10: include: include cycle: a\.yaml -> b\.yaml -> a\.yaml"):
        load_image_config("a.yaml", cwd=tmp_path)
    write(tmp_path, "self.yaml", "include: ./self.yaml\n")
    with pytest.raises(ConfigError, match="include cycle: self.yaml -> self.yaml"):
        load_image_config("self.yaml", cwd=tmp_path)


def test_error_in_included_file_names_that_file(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", "contents:\n  packages: [a]\nbogus: 1\n")
    write(tmp_path, "top.yaml", "include: base.yaml\n")
    with pytest.raises(ConfigError, match=r"^base\.yaml:3:1: bogus: unknown key 'bogus'"):
        load_image_config("top.yaml", cwd=tmp_path)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.yaml: no such file"):
        load_image_config("nope.yaml", cwd=tmp_path)


# --- overrides --------------------------------------------------------------------------

def test_arch_normalisation() -> None:
    assert parse_architectures(["x86_64", "aarch64", "amd64"]) == ("amd64", "arm64")
    assert parse_architectures(["armv7", "armhf", "x86", "loongarch64"]) == (
        "386", "arm/v6", "arm/v7", "loong64")
    assert parse_architectures(["all"]) == ALL_ARCHS
    assert len(ALL_ARCHS) == 9
    assert parse_architectures(["ppc64le", "riscv64", "s390x"]) == ("ppc64le", "riscv64", "s390x")
    assert arch_to_apk("amd64") == "x86_64"
    assert arch_to_apk("arm/v6") == "armhf"
    assert arch_to_apk("aarch64") == "aarch64"
    assert arch_to_apk("loong64") == "loongarch64"
    assert len(parse_architectures(["host"])) == 1


def test_arch_override_and_default(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "archs: [x86_64, aarch64]\n")
    write(tmp_path, "none.yaml", "cmd: x\n")
    assert load_image_config("a.yaml", cwd=tmp_path).config.archs == ("amd64", "arm64")
    cli = load_image_config("a.yaml", Overrides(archs=("arm64,x86",)), cwd=tmp_path)
    assert cli.config.archs == ("386", "arm64")
    assert load_image_config("none.yaml", cwd=tmp_path).config.archs == ALL_ARCHS
    assert load_image_config("a.yaml", Overrides(archs=("all",)), cwd=tmp_path).config.archs == ALL_ARCHS


def test_repository_keyring_package_appends(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "contents:\n  repositories: [https://r2, https://r1]\n"
                              "  build_repositories: [https://b1]\n"
                              "  runtime_repositories: [https://t1]\n"
                              "  keyring: [k2.pub]\n  packages: [zlib, busybox]\n")
    ov = Overrides(keyring_append=("k1.pub",), build_repository_append=("https://b0",),
                   repository_append=("https://r0,https://r1",), package_append=("apk-tools", "zlib"))
    loaded = load_image_config("a.yaml", ov, cwd=tmp_path)
    assert loaded.build_repositories() == ("https://b0", "https://b1", "https://r0", "https://r1", "https://r2")
    assert loaded.runtime_repositories() == ("https://r0", "https://r1", "https://r2", "https://t1")
    assert loaded.keyring() == ("k1.pub", "k2.pub")
    assert loaded.world() == ("apk-tools", "busybox", "zlib")
    # the configuration itself (and so /etc/apko.json) is untouched by -k/-b/-r/-p
    assert loaded.config.contents.packages == ("zlib", "busybox")


def test_annotation_overrides(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "annotations: {org.example.a: config, org.example.b: config}\n")
    ov = Overrides(annotations=("org.example.b:cli", "org.example.c:x:y"))
    cfg = load_image_config("a.yaml", ov, cwd=tmp_path).config
    assert dict(cfg.annotations) == {"org.example.a": "config", "org.example.b": "cli",
                                     "org.example.c": "x:y"}
    with pytest.raises(ConfigError, match="key must match"):
        load_image_config("a.yaml", Overrides(annotations=("Org.Example:x",)), cwd=tmp_path)
    with pytest.raises(ConfigError, match="expected key:value"):
        load_image_config("a.yaml", Overrides(annotations=("novalue",)), cwd=tmp_path)


def test_format_override(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "cmd: x\n")
    assert load_image_config("a.yaml", cwd=tmp_path).config.layer_format == "tar"
    assert load_image_config("a.yaml", Overrides(format="tar"), cwd=tmp_path).config.format == "tar"
    with pytest.raises(ConfigError, match="--format 'erofs': format 'erofs' is not supported"):
        load_image_config("a.yaml", Overrides(format="erofs"), cwd=tmp_path)
    with pytest.raises(ConfigError, match="--format 'zip'"):
        load_image_config("a.yaml", Overrides(format="zip"), cwd=tmp_path)


def test_build_date_and_source_date_epoch() -> None:
    assert resolve_build_date("", None) == (0, False)
    assert resolve_build_date("2024-01-02T03:04:05Z", None) == (1704164645, False)
    assert resolve_build_date("2024-01-02T05:04:05+02:00", None) == (1704164645, False)
    assert resolve_build_date("2024-01-02T03:04:05.75Z", None) == (1704164645, False)
    # SOURCE_DATE_EPOCH (parsed by distroless.epoch, None when unset) wins over --build-date
    assert resolve_build_date("2024-01-02T03:04:05Z", 1700000000) == (1700000000, True)
    assert resolve_build_date("2024-01-02T03:04:05Z", 0) == (0, True)


@pytest.mark.parametrize("bad", ["2024-01-02", "2024-01-02 03:04:05Z", "2024-13-02T03:04:05Z",
                                 "2024-01-02T03:04:05", "2024-01-02T03:04:05z"])
def test_bad_build_date(bad: str) -> None:
    with pytest.raises(ConfigError, match="--build-date"):
        resolve_build_date(bad, None)


def test_overrides_carry_the_parsed_epoch(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "cmd: x\n")
    ov = Overrides(source_date_epoch=1234, build_date="2024-01-02T03:04:05Z")
    loaded = load_image_config("a.yaml", ov, cwd=tmp_path)
    assert (loaded.build_date_epoch, loaded.source_date_epoch_pinned) == (1234, True)
    assert Overrides().source_date_epoch is None


# --- canonical JSON ---------------------------------------------------------------------

def test_apko_json_matches_golden_size(tmp_path: Path) -> None:
    # apko's golden build (internal/cli/testdata/apko.yaml) writes a 329-byte /etc/apko.json
    # for each arch: its pinned closure, [that arch] and the two CLI annotations.
    write(tmp_path, "apko.yaml", "contents:\n  keyring:\n    - ./testdata/melange.rsa.pub\n"
                                 "  repositories:\n    - ./testdata/packages\n  packages:\n"
                                 "    - replayout\nentrypoint:\n  command: /bin/sh -l\n"
                                 "archs:\n- x86_64\n- aarch64\n")
    ov = Overrides(annotations=("org.opencontainers.image.vendor:Vendor",
                                "org.opencontainers.image.title:Title"))
    cfg = load_image_config("apko.yaml", ov, cwd=tmp_path).config
    from dataclasses import replace
    per_arch = replace(cfg, archs=("amd64",), contents=replace(
        cfg.contents, packages=("pretend-baselayout=1.0.0-r0", "replayout=1.0.0-r0")))
    text = to_apko_json(per_arch)
    assert len(text.encode()) == 329
    assert text == (
        '{"contents":{"repositories":["./testdata/packages"],"keyring":["./testdata/melange.rsa.pub"],'
        '"packages":["pretend-baselayout=1.0.0-r0","replayout=1.0.0-r0"]},'
        '"entrypoint":{"command":"/bin/sh -l"},"accounts":{},"archs":["amd64"],'
        '"annotations":{"org.opencontainers.image.title":"Title","org.opencontainers.image.vendor":"Vendor"}}\n')


def test_apko_json_empty_and_escaping() -> None:
    assert to_apko_json(ImageConfig()) == '{"contents":{},"entrypoint":{},"accounts":{}}\n'
    cfg = ImageConfig(cmd="a<b>&c\u2028", contents=Contents(packages=("é",)))
    assert to_apko_json(cfg) == ('{"contents":{"packages":["é"]},"entrypoint":{},'
                                 '"cmd":"a\\u003cb\\u003e\\u0026c\\u2028","accounts":{}}\n')


def test_image_environment_defaults(tmp_path: Path) -> None:
    cfg, _ = parse_image_config("environment: {PATH: /bin, FOO: bar}\n", "e.yaml")
    assert image_environment(cfg) == {"PATH": "/bin", "FOO": "bar",
                                      "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt"}
    assert dict(cfg.environment) == {"PATH": "/bin", "FOO": "bar"}
