"""A `git clone` carries everything its tests read: no tracked test, bench, product, Bazel or build
file names a path outside the checkout, and every vendored fixture has its licence beside it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
SELF = Path(__file__).resolve().relative_to(ROOT).as_posix()

# What is checked: tests (not the vendored data), benchmarks, product code, Bazel files, build files.
FOLDERS = ("tests/", "bench/", "distroless/", "frontend/", "proto/", "bazel/", "examples/", ".ci/")
TOP_FILES = {"Makefile", "WORKSPACE", "MODULE.bazel", ".bazelrc", ".bazelignore", "pyproject.toml"}

# Spelled in parts, so that a plain grep of the tree for escapes does not find the checker's own words.
SHARED_DIR = "../" + "shared"
WORKSPACE = "/" + "work/"

# (pattern, why it cannot be in the repository)
FORBIDDEN = [
    (re.compile(re.escape(SHARED_DIR) + r"\b"), "the fixtures' old home beside the checkout"),
    (re.compile(r"(?<![\w.])" + re.escape(WORKSPACE)), "this machine's workspace"),
]
# Home directories of the machine running the tests; melange's /home/build is a path inside the
# build sandbox, /root/linuxrc where busybox puts linuxrc inside an image.
HOMES = [
    (re.compile(r"(?<![\w.])/(?:home|Users)/(?!build\b)[\w.-]+/"), "a home directory"),
    # (a bare "/root/" prefix, as a checker that forbids such paths lists it, names no file)
    (re.compile(r"(?<![\w.])/root/(?!linuxrc\b)[\w.-]"), "root's home directory"),
]
# Scripts and tables about paths inside the build sandbox or the image, never on the host.
IN_SANDBOX = ("distroless/melange/pipelines/", "distroless/rootfs/busybox_paths.txt")
FILE_PARENTS = re.compile(r"__file__\)?(?:\.resolve\(\))?\.parents\[(\d+)\]")
FILE_PARENT_CHAIN = re.compile(r"__file__\)?(?:\.resolve\(\))?((?:\.parent)+)\b")


def checked_files() -> list[str]:
    if (ROOT / ".git").exists() and shutil.which("git"):
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
        names = [n for n in out.decode().split("\0") if n]
    else:  # an export without git metadata: the same folders from the file system
        names = [p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*") if p.is_file()]
    return sorted(n for n in names
                  if (n.startswith(FOLDERS) or n in TOP_FILES or n.endswith((".bzl", "BUILD.bazel", "BUILD")))
                  and not n.startswith("tests/fixtures/") and n != SELF and "/.venv/" not in f"/{n}")


def climbs_out(rel: str, line: str) -> bool:
    """`Path(__file__).parents[n]` or `.parent` chains that leave the repository."""
    depth = len(Path(rel).parts)  # parents[depth - 1] is the repository root
    if any(int(n) >= depth for n in FILE_PARENTS.findall(line)):
        return True
    return any(chain.count(".parent") > depth for chain in FILE_PARENT_CHAIN.findall(line))


def offences(rel: str, text: str, checkout: str) -> list[str]:
    found = []
    patterns = FORBIDDEN if rel.startswith(IN_SANDBOX) else FORBIDDEN + HOMES
    for no, line in enumerate(text.splitlines(), 1):
        for pattern, why in patterns:
            if pattern.search(line):
                found.append(f"{rel}:{no}: {why}: {line.strip()}")
        if checkout in line:
            found.append(f"{rel}:{no}: this checkout's absolute path: {line.strip()}")
        if climbs_out(rel, line):
            found.append(f"{rel}:{no}: climbs out of the repository: {line.strip()}")
    return found


def test_no_path_outside_the_checkout() -> None:
    files = checked_files()
    assert len(files) > 100 and "Makefile" in files and "tests/shared.py" in files
    bad = []
    for rel in files:
        data = (ROOT / rel).read_bytes()
        if b"\0" in data:
            continue  # binary
        bad += offences(rel, data.decode("utf-8", "replace"), str(ROOT))
    assert bad == [], "\n".join(bad)


def test_the_checker_sees_each_kind_of_escape() -> None:
    """The patterns themselves: each escape is reported, the in-image paths are not."""
    checkout = "/src/checkout"
    for line in (f'FIXTURES = ROOT.parent / "{SHARED_DIR}/fixtures"', f'x = "{WORKSPACE}shared/fixtures/a"',
                 'p = "/home/alice/src/a.apk"', 'p = "/root/distroless/tests"',
                 'p = "/src/checkout/tests/fixtures"',
                 'ROOT = Path(__file__).resolve().parents[2]',
                 'ROOT = Path(__file__).resolve().parent.parent.parent'):
        assert offences("tests/test_x.py", line, checkout), line
    for line in ('WORKDIR = "/home/build"', 'env HOME=/home/build/x', 'p = "/root/linuxrc"',
                 'ROOT = Path(__file__).resolve().parents[1]', 'ROOT = Path(__file__).resolve().parent.parent',
                 'mkdir -p "$out/root"', 'homedir=f"/home/{u.username}"'):
        assert offences("tests/test_x.py", line, checkout) == [], line
    assert offences("bench/deep/x.py", "Path(__file__).parents[2]", checkout) == []
    sandbox = "distroless/melange/pipelines/maven/x.yaml"
    assert offences(sandbox, "for d in /root/.m2; do", checkout) == []
    assert offences(sandbox, f"cp {SHARED_DIR}/x .", checkout) and offences(sandbox, f"cd {WORKSPACE}x", checkout)


def _licence_table() -> dict[str, tuple[str, str]]:
    """README's rows: repository -> (SPDX id, licence text path)."""
    rows = {}
    for m in re.finditer(r"^\| ([\w.-]+/[\w.-]+) \| ([\w.+-]+) \| `(LICENSES/[^`]+)` \|",
                         (FIXTURES / "README.md").read_text(), re.M):
        rows[m.group(1)] = (m.group(2), m.group(3))
    return rows


def test_every_fixture_has_provenance_and_a_licence() -> None:
    provenance: dict[str, str] = {}
    for line in (FIXTURES / "PROVENANCE.tsv").read_text().splitlines():
        path, source, *_ = line.split("\t")
        if not source.startswith("("):  # "(edited: …)" notes sit on their own rows
            provenance[path] = source
    on_disk = {p.relative_to(FIXTURES).as_posix() for p in FIXTURES.rglob("*") if p.is_file()}
    vendored = {p for p in on_disk if not p.startswith("LICENSES/") and p not in ("PROVENANCE.tsv", "README.md")}
    assert vendored == set(provenance), "every vendored file has exactly one provenance row"
    table = _licence_table()
    assert set(provenance.values()) <= set(table), set(provenance.values()) - set(table)
    for spdx_id, text in table.values():
        body = (FIXTURES / text).read_text()
        version = re.search(r"-(\d)\.0", spdx_id).group(1)
        assert f"Version {version}" in body and ("Apache" in body) == spdx_id.startswith("Apache"), text
