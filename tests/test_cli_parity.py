"""docs/cli-parity.md is the data: every upstream flag has a row, every row behaves as it says,
and the invocations copied from apko's, melange's and cosign's docs run (end to end where marked).
cosign's flags are read from the real cosign 2.5 peer's `--help`."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from distroless.apk import pack
from distroless.apk.model import Package
from distroless.cli import build_parser
from distroless.cli.flags import GoBool, leaves
from test_image_lock import repo  # noqa: F401 - the loopback repository fixture

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "cli-parity.md"

# Each upstream command's flags, as registered in apko d1b5d5ec internal/cli/*.go (plus the
# persistent --log-level and -C/--workdir, and flags.go's --max-*) and melange 2043d30b
# pkg/cli/*.go (plus the persistent --log-level).
LIMITS = ["max-apkindex-decompressed-size", "max-apk-control-size", "max-apk-data-size", "max-http-response-size"]
APKO_COMMON = ["keyring-append", "build-repository-append", "repository-append"]
UPSTREAM: dict[str, list[str]] = {
    "apko build": ["vcs", "build-date", "sbom", "sbom-path", "arch", *APKO_COMMON, "sbom-formats", "package-append",
                   "annotations", "cache-dir", "offline", "lockfile", "include-paths", "ignore-signatures", "format",
                   *LIMITS, "log-level", "workdir"],
    "apko publish": ["vcs", "build-date", "sbom", "sbom-path", "arch", *APKO_COMMON, "sbom-formats", "package-append",
                     "annotations", "cache-dir", "offline", "lockfile", "ignore-signatures", "format", "local",
                     "image-refs"],
    "apko lock": [*APKO_COMMON, "arch", "output", "include-paths", "ignore-signatures", "cache-dir"],
    "apko show-packages": [*APKO_COMMON, "arch", "format", "cache-dir", "offline"],
    "apko show-config": [*APKO_COMMON, "cache-dir", "offline"],
    "apko dot": [*APKO_COMMON, "arch", "spanning-tree", "web", "cache-dir", "offline", "registry-explorer"],
    "apko build-minirootfs": ["build-date", "build-arch", "sbom-path", "ignore-signatures", *APKO_COMMON,
                              "package-append", "max-apk-data-size"],
    "melange build": ["arch", "build-date", "workspace-dir", "pipeline-dir", "pipeline-dirs", "source-dir",
                      "cache-dir", "cache-source", "apk-cache-dir", "signing-key", "env-file", "vars-file",
                      "generate-index", "empty-workspace", "strip-origin-name", "out-dir", "dependency-log",
                      "namespace", "override-host-triplet-libc-substitution-flavor", "build-option", "runner",
                      "keyring-append", "repository-append", "package-append", "create-build-log",
                      "persist-lint-results", "debug", "debug-runner", "interactive", "rm", "cpu", "cpumodel",
                      "disk", "memory", "timeout", "trace", "lint-require", "lint-warn", "ignore-signatures",
                      "cleanup", "git-commit", "git-repo-url", "license", "generate-provenance",
                      "fail-on-lint-warning", "log-level"],
    "melange test": ["workspace-dir", "pipeline-dirs", "source-dir", "cache-dir", "cache-source", "apk-cache-dir",
                     "arch", "test-option", "runner", "keyring-append", "env-file", "debug", "debug-runner",
                     "interactive", "repository-append", "test-package-append", "rm", "ignore-signatures", "cpu",
                     "cpumodel", "disk", "memory", "timeout"],
    "melange keygen": ["key-size"],
    "melange index": ["output", "source", "arch", "signing-key", "merge"],
    "melange sign": ["signing-key"],
    "melange sign-index": ["signing-key", "force"],
    "melange lint": ["lint-require", "lint-warn", "persist-lint-results", "out-dir"],
}
# distroless's command path and positional fillers for each upstream command
COMMANDS: dict[str, tuple[list[str], list[str]]] = {
    "apko build": (["image", "build"], ["c.yaml", "t:1", "out.tar"]),
    "apko publish": (["image", "publish"], ["c.yaml", "reg.example/r:1"]),
    "apko lock": (["image", "lock"], ["c.yaml"]),
    "apko resolve": (["image", "resolve"], ["c.yaml"]),
    "apko show-packages": (["image", "show-packages"], ["c.yaml"]),
    "apko show-config": (["image", "show-config"], ["c.yaml"]),
    "apko dot": (["image", "dot"], ["c.yaml"]),
    "apko build-minirootfs": (["image", "build-minirootfs"], ["c.yaml", "o.tar"]),
    "apko version": (["version"], []),
    "melange build": (["package", "build"], ["r.yaml"]),
    "melange test": (["package", "test"], ["r.yaml"]),
    "melange keygen": (["keygen"], []),
    "melange index": (["package", "index"], ["a.apk"]),
    "melange sign": (["package", "sign"], ["a.apk"]),
    "melange sign-index": (["package", "sign-index"], ["APKINDEX.tar.gz"]),
    "melange lint": (["package", "lint"], ["a.apk"]),
    "melange version": (["version"], []),
    # cosign 2.5: required options go with the positionals so that every row parses on its own
    "cosign sign": (["sign"], ["--key", "k", "reg.example/r:1"]),
    "cosign attest": (["attest"], ["--key", "k", "reg.example/r:1"]),
    "cosign verify": (["verify"], ["--key", "k.pub", "reg.example/r:1"]),
    "cosign verify-attestation": (["verify-attestation"], ["--key", "k.pub", "reg.example/r:1"]),
    "cosign generate-key-pair": (["generate-key-pair"], []),
    "cosign sign-blob": (["sign-blob"], ["--key", "k", "f"]),
    "cosign verify-blob": (["verify-blob"], ["--key", "k.pub", "f"]),
    "cosign public-key": (["public-key"], ["--key", "k"]),
    "cosign copy": (["copy"], ["reg.example/a:1", "reg.example/b:1"]),
    "cosign save": (["save"], ["--dir", "d", "reg.example/r:1"]),
    "cosign load": (["load"], ["--dir", "d", "reg.example/r:1"]),
    "cosign tree": (["tree"], ["reg.example/r:1"]),
    "cosign triangulate": (["triangulate"], ["reg.example/r:1"]),
    "cosign download": (["download"], ["signature", "reg.example/r:1"]),
    "cosign download signature": (["download", "signature"], ["reg.example/r:1"]),
    "cosign download attestation": (["download", "attestation"], ["reg.example/r:1"]),
    "cosign download sbom": (["download", "sbom"], ["reg.example/r:1"]),
    "cosign version": (["version"], []),
    "cosign completion": (["completion"], ["bash"]),
    "melange completion": (["completion"], ["bash"]),
}
TOOL_PREFIX = {"apko": ["image"], "melange": ["package"], "cosign": []}
SAMPLE = {"--output": "json", "-o": "json", "--type": "signature", "--arch": "x86_64", "--build-date": "2024-01-01T00:00:00Z", "--timeout": "1m", "--format": "tar",
          "--sbom-formats": "spdx", "--runner": "bubblewrap", "--key-size": "4096", "--annotations": "a:b",
          "--build-arch": "x86_64", "--log-level": "info", "-a": "x86_64", "--lint-require": "dev",
          "--lint-warn": "strip"}
PARSER = build_parser()
LEAVES = {path: p for path, p in leaves(PARSER)}


def table(section: str) -> list[list[str]]:
    text = DOC.read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    rows = [ln for ln in body.splitlines() if ln.startswith("| ") and not ln.startswith("| ---")]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", r)[1:-1]] for r in rows[1:]]


def quoted(text: str) -> str:
    m = re.search(r"`([^`]+)`", text)
    assert m, f"no quoted message in {text!r}"
    return m.group(1)


def parse(argv: list[str]) -> tuple[argparse.Namespace | None, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            return PARSER.parse_args(argv), err.getvalue()
        except SystemExit:
            return None, err.getvalue()


def spellings(flag_cell: str) -> list[str]:
    return flag_cell.split("/")


FLAG_ROWS = table("Flags")
COMMAND_ROWS = table("Commands")
INVOCATIONS = table("Invocations")


def test_every_upstream_flag_has_one_row() -> None:
    have: dict[str, set[str]] = {}
    for cmd, flag, _status, _text in FLAG_ROWS:
        longs = {s.lstrip("-") for s in spellings(flag) if s.startswith("--")}
        if cmd.startswith("cosign "):
            continue  # checked against the real cosign below
        assert cmd in UPSTREAM, cmd
        assert not longs & have.get(cmd, set()), f"{cmd} {flag}: two rows"
        have.setdefault(cmd, set()).update(longs)
    for cmd, flags in UPSTREAM.items():
        missing = set(flags) - have.get(cmd, set())
        assert not missing, f"{cmd}: no row for {sorted(missing)}"
    statuses = {r[2] for r in FLAG_ROWS} | {r[1] for r in COMMAND_ROWS}
    assert statuses <= {"supported", "accepted", "refused", "n/a"}, statuses


def cosign_flags(peers, command: str) -> list[str]:
    """The flags the real cosign 2.5 (the peer) lists for `command` (its own, not the global ones)."""
    out = subprocess.run([peers.cosign, *command.split(), "--help"], capture_output=True, text=True,
                         check=True).stdout
    section = out.split("\nFlags:", 1)[1].split("Global Flags:", 1)[0]
    return [m.group(1) for m in re.finditer(r"^\s+(?:-\w, )?--([\w-]+)=", section, re.M) if m.group(1) != "help"]


def test_every_cosign_flag_has_one_row(peers) -> None:
    rows: dict[str, list[str]] = {}
    for cmd, flag, _status, _text in FLAG_ROWS:
        if cmd.startswith("cosign "):
            rows.setdefault(cmd[len("cosign "):], []).extend(s.lstrip("-") for s in spellings(flag) if s.startswith("--"))
    assert len(rows) >= 16
    for command, flags in rows.items():
        assert sorted(flags) == sorted(cosign_flags(peers, command)), command


@pytest.mark.parametrize("cmd,flag,status,text", FLAG_ROWS, ids=[f"{r[0]} {r[1]}" for r in FLAG_ROWS])
def test_flag_row(cmd: str, flag: str, status: str, text: str) -> None:
    path, positionals = COMMANDS[cmd]
    leaf = LEAVES[tuple(path)]
    for spelling in spellings(flag):
        if status == "refused":
            ns, err = parse([*path, *positionals, spelling])
            assert ns is None and quoted(text).split(": ", 1)[0] in err, (spelling, err)
            continue
        if status == "n/a":
            continue
        action = leaf._option_string_actions.get(spelling)
        assert action is not None, f"{cmd} {spelling}: the row says {status}, the parser lacks it"
        value = "1000" if action.type is int else SAMPLE.get(spelling, "x")
        words = [spelling] if isinstance(action, GoBool) else [spelling, value]
        ns, err = parse([*path, *positionals, *words])
        assert ns is not None, (words, err)
        if isinstance(action, GoBool):
            ns, err = parse([*path, *positionals, f"{spelling}=false"])
            assert ns is not None and getattr(ns, action.dest) is False, err


@pytest.mark.parametrize("upstream,status,text", COMMAND_ROWS, ids=[r[0] for r in COMMAND_ROWS])
def test_command_row(upstream: str, status: str, text: str) -> None:
    tool, verb = upstream.split(" ", 1)
    if status == "supported":
        path, positionals = COMMANDS[upstream]
        ns, err = parse([*path, *positionals])
        assert ns is not None and callable(ns.func), (upstream, err)
    elif status == "refused":
        ns, err = parse([*TOOL_PREFIX[tool], verb])
        assert ns is None and quoted(text) in err, err


# --- the invocations --------------------------------------------------------------------------

def distroless_argv(invocation: str) -> list[str]:
    words = shlex.split(quoted(invocation))
    tool, verb, rest = words[0], words[1], words[2:]
    return [*COMMANDS[f"{tool} {verb}"][0], *rest] if f"{tool} {verb}" in COMMANDS else \
        [*TOOL_PREFIX[tool], verb, *rest]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, repo):  # noqa: F811
    server, root, _ = repo
    d = tmp_path_factory.mktemp("parity")
    config = ("contents:\n"
              f"  repositories: [{server.url}]\n"
              f"  keyring: [{root / 'repo.rsa.pub'}]\n"
              "  packages: [app]\n"
              "archs: [x86_64]\n")
    for rel in ("examples/alpine-base.yaml", "testdata/apko.yaml", "erofs-demo.yaml"):
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_text(config)
    (d / "testdata" / "golden").mkdir()  # update-golden.sh's `mkdir -p ./testdata/golden/sboms`
    tree = d / "pkgtree" / "usr" / "share" / "p"
    tree.mkdir(parents=True)
    (tree / "f").write_text("x\n")
    pack.pack(d / "pkgtree", Package(name="p", version="1.0-r0", arch="x86_64", license="MIT"), d / "package.apk")
    return d


CHECKS = {
    "apko-alpine.tar": lambda d, out: (d / "apko-alpine.tar").is_file(),
    "golden:latest": lambda d, out: (json.loads((d / "testdata/golden/index.json").read_text())["manifests"]
                                     and (d / "testdata/golden/sboms/sbom-index.spdx.json").is_file()),
    "apko lock": lambda d, out: json.loads((d / "testdata/apko.lock.json").read_text())["version"] == "v1",
    "--offline": lambda d, out: (d / "alpine.tar").is_file(),
    "packagelock-source": lambda d, out: out.splitlines()[0].startswith("- base=1.0-r0 # http"),
    "show-packages examples/alpine-base.yaml`": lambda d, out: out.splitlines() == ["base 1.0-r0", "libfoo 2.1-r0", "app 3.0-r1"],
    "show-config": lambda d, out: "packages:\n  - app" in out,
    "apko dot": lambda d, out: out.startswith("digraph images {"),
    "build-minirootfs": lambda d, out: (d / "rootfs.tar").is_file(),
    "apko resolve": lambda d, out: (d / "examples/alpine-base.lock.json").is_file(),
    "version": lambda d, out: out.startswith("distroless "),
    "keygen": lambda d, out: (d / "melange.rsa").is_file() and (d / "melange.rsa.pub").is_file(),
    "melange sign ": lambda d, out: "signed by melange.rsa.pub" in out,
    "melange index": lambda d, out: (d / "APKINDEX.tar.gz").is_file(),
    "--force": lambda d, out: "signed by melange.rsa.pub" in out,
    "sign-index --signing-key=melange.rsa APKINDEX.tar.gz`": lambda d, out: "signed by" in out or "already" in out,
    "melange lint": lambda d, out: "package.apk: OK" in out,
}


@pytest.mark.parametrize("source,invocation,run", INVOCATIONS, ids=[quoted(r[1])[:60] for r in INVOCATIONS])
def test_invocation(source: str, invocation: str, run: str, workdir: Path) -> None:
    argv = distroless_argv(invocation)
    ns, err = parse(argv)
    if run.startswith("refused"):
        want = quoted(run)
        if ns is None:
            assert want in err
            return
    else:
        assert ns is not None, f"{source}: {argv}: {err}"
        if run == "parse":
            return
    env = {**os.environ, "XDG_CACHE_HOME": str(workdir / "cache"), "SOURCE_DATE_EPOCH": "1700000000"}
    r = subprocess.run([sys.executable, "-m", "distroless", *argv], cwd=workdir, env=env, capture_output=True,
                       text=True, timeout=600)
    if run.startswith("refused"):
        assert r.returncode != 0 and quoted(run) in r.stderr and "Traceback" not in r.stderr, r.stderr
        return
    assert r.returncode == 0, f"{source}: {argv}\n{r.stderr}"
    checks = [check for key, check in CHECKS.items() if key in invocation]
    assert checks, f"no check for {invocation}"
    for check in checks:
        assert check(workdir, r.stdout), f"{invocation}\nstdout: {r.stdout}\nstderr: {r.stderr}"
