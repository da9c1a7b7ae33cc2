"""One of each basic: the SOURCE_DATE_EPOCH parser and the architecture table (with its
generated Starlark copy)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from distroless import arch, epoch
from distroless.config import arch_to_apk, parse_architecture
from distroless.errors import ConfigError
from distroless.oci.image import Platform

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------ SOURCE_DATE_EPOCH


@pytest.mark.parametrize("blank", [None, "", " ", "\t\n"])
def test_blank_epoch_means_unset(blank):
    assert epoch.parse(blank) is None
    assert epoch.parse_or(blank, 7) == 7


@pytest.mark.parametrize("text, seconds", [("0", 0), ("1700000000", 1700000000), ("007", 7),
                                           (str(epoch.INT64_MAX), epoch.INT64_MAX)])
def test_epoch_digits(text, seconds):
    assert epoch.parse(text) == seconds


@pytest.mark.parametrize("bad", ["-1", "-5", "+5", "1_000", "1.5", "abc", "0x10", " 12", "12 ", "１２",
                                 str(epoch.INT64_MAX + 1)])
def test_bad_epoch_is_an_error_naming_the_variable(bad):
    with pytest.raises(ConfigError, match=r"^SOURCE_DATE_EPOCH="):
        epoch.parse(bad)
    with pytest.raises(ConfigError, match=r"^build-arg:SOURCE_DATE_EPOCH="):
        epoch.parse(bad, "build-arg:SOURCE_DATE_EPOCH")


def test_every_front_door_uses_the_one_parser(tmp_path):
    """The CLI's three readers (image, package, sign) and the steps flag agree on the four
    spellings the issue lists: blank is unset, negative, `1_000` and non-digits fail."""
    script = ("import sys\nfrom distroless import hostenv, steps\n"
              "from distroless.cli import apk\n"
              "print(hostenv.source_date_epoch(), apk.source_date_epoch())\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    ok = subprocess.run([sys.executable, "-c", script], env={**env, "SOURCE_DATE_EPOCH": ""},
                        capture_output=True, text=True, cwd=ROOT)
    assert ok.stdout.split() == ["None", "0"], ok.stderr
    for bad in ("-1", "1_000", "soon"):
        r = subprocess.run([sys.executable, "-m", "distroless", "image", "lock", str(tmp_path / "x.yaml")],
                           env={**env, "SOURCE_DATE_EPOCH": bad}, capture_output=True, text=True, cwd=ROOT)
        assert r.returncode == 1 and f"SOURCE_DATE_EPOCH={bad!r}" in r.stderr, r.stderr


def test_no_other_module_parses_the_epoch():
    """Only distroless/epoch.py turns a SOURCE_DATE_EPOCH string into a number."""
    offenders = []
    for path in (ROOT / "distroless").rglob("*.py"):
        if path.name == "epoch.py" or "_pb" in path.parts:
            continue
        text = path.read_text()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Constant) and node.value == "SOURCE_DATE_EPOCH":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    # naming the variable in an environment handed to a sandbox is fine; reading it is not
    allowed = {"distroless/melange/build.py"}
    assert {o.split(":")[0] for o in offenders} <= allowed, offenders


# ------------------------------------------------------------------ architectures


def test_arch_spellings():
    assert [arch.parse(n) for n in ("x86_64", "aarch64", "armhf", "armv7", "x86", "loongarch64", "mips")] == \
        ["amd64", "arm64", "arm/v6", "arm/v7", "386", "loong64", "mips"]
    assert [arch.to_apk(n) for n in ("amd64", "x86_64", "arm/v6", "386", "loong64", "s390x", "mips")] == \
        ["x86_64", "x86_64", "armhf", "x86", "loongarch64", "s390x", "mips"]
    assert arch.from_machine("AARCH64") == "arm64" and arch.from_machine("armv7l") == "arm"
    # the config and OCI spellings are the table's, not copies
    assert parse_architecture is arch.parse and arch_to_apk is arch.to_apk
    assert Platform.from_arch("arm/v7").apk_arch == "armv7"


def test_starlark_table_is_generated_from_the_python_one():
    bzl = ROOT / "bazel" / "private" / "arch.bzl"
    assert bzl.read_text() == arch.starlark(), "run `make bazel/private/arch.bzl`"
    # and it is the table Bazel's rules load
    assert 'load(":arch.bzl"' in (ROOT / "bazel" / "private" / "image.bzl").read_text()


def test_no_other_arch_table():
    """`armhf` is spelled only by the table: a second mapping would have to spell it too."""
    hits = []
    for path in [*(ROOT / "distroless").rglob("*.py"), *(ROOT / "bazel").rglob("*.bzl")]:
        if path.name in ("arch.py", "arch.bzl") or "_pb" in path.parts:
            continue
        if '"armhf"' in path.read_text():
            hits.append(str(path.relative_to(ROOT)))
    assert not hits, hits


# ------------------------------------------------------------------ the YAML struct-field reader


def test_one_struct_field_reader_strict_or_lenient():
    from distroless.config import reader as apko_reader
    from distroless.config.yaml12 import field_of, load, struct_fields
    from distroless.melange import reader as melange_reader

    data, loc = load("name: x\nnmae: y\n", "r.yaml")
    with pytest.raises(ConfigError, match=r"^r\.yaml:2:1: .*unknown key 'nmae' \(did you mean 'name'\?\)"):
        struct_fields(loc, data, (), ("name", "version"))
    fields = struct_fields(loc, data, (), ("name", "version"), strict=False)
    assert field_of(fields, "name", ()) == (("name",), "x")
    assert field_of(fields, "version", ()) == (("version",), None)
    # both readers are this one function, with their own flag
    assert apko_reader._get is field_of and melange_reader._get is field_of
    strict = melange_reader.Reader(loc, strict=True)
    lenient = melange_reader.Reader(loc, strict=False)
    with pytest.raises(ConfigError, match="unknown key 'nmae'"):
        strict.mapping(data, (), ("name",))
    assert set(lenient.mapping(data, (), ("name",))) == {"name"}
