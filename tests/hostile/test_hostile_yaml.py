"""Item 5: YAML and recipe bombs, and named input files that are not regular files.

Every case runs the real CLI in a child under RLIMIT_AS / RLIMIT_CPU (see harness.py): a case
the engine failed to refuse would be killed by the kernel and fail the exit-status assert.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hostile.harness import cli, run_bounded

MEM_MB = 400  # address space of the child, Python and its libraries included
CPU_S = 10


def _image(tmp_path: Path, text: str, name: str = "image.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _show(tmp_path: Path, config: Path, *extra: str):
    return run_bounded(cli("image", "show-packages", str(config), "--cache-dir", str(tmp_path / "cache"), *extra),
                       mem_mb=MEM_MB, cpu_s=CPU_S, cwd=tmp_path)


def _recipe_build(tmp_path: Path, recipe: Path, *extra: str):
    return run_bounded(cli("package", "build", str(recipe), "--out-dir", str(tmp_path / "out"), *extra),
                       mem_mb=MEM_MB, cpu_s=CPU_S, cwd=tmp_path)


def _nothing_outside(tmp_path: Path, allowed: set[str]) -> None:
    assert {p.name for p in tmp_path.iterdir()} <= allowed


def merge_bomb(levels: int) -> str:
    """Each level merges the previous one twice: the merged pair list doubles per level."""
    lines = ["l0: &l0 {k: v}"]
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} {{<<: [*l{i - 1}, *l{i - 1}], k{i}: v}}")
    return "\n".join(lines) + "\n"


def list_bomb(levels: int, width: int = 10) -> str:
    lines = ["a0: &a0 [" + ", ".join(["xxxxxxxxxxxxxxxx"] * width) + "]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def test_merge_key_bomb_is_refused(tmp_path: Path) -> None:
    config = _image(tmp_path, merge_bomb(40))
    assert config.stat().st_size < 2000
    out = _show(tmp_path, config)
    out.assert_one_line_error("image.yaml:", "more than 100000 nodes")
    print(f"\nmerge-key bomb ({config.stat().st_size} B, 2^40 pairs): refused in {out.cpu_s:.2f} s CPU, "
          f"peak RSS {out.peak_rss_mb:.0f} MB")


def test_alias_list_bomb_is_refused_small(tmp_path: Path) -> None:
    config = _image(tmp_path, list_bomb(9))
    out = _show(tmp_path, config)
    out.assert_one_line_error("image.yaml:", "more than 100000 nodes")
    print(f"\nalias list bomb ({config.stat().st_size} B, 10^9 nodes): refused in {out.cpu_s:.2f} s CPU, "
          f"peak RSS {out.peak_rss_mb:.0f} MB")


def test_aliased_long_scalar_is_refused_by_text_size(tmp_path: Path) -> None:
    # 1 MiB of text used 64 times at few nodes: the node cap alone would let 64 MiB through.
    big = "x" * (1 << 20)
    config = _image(tmp_path, f"s: &s {big}\nl: [" + ", ".join(["*s"] * 64) + "]\n")
    out = _show(tmp_path, config)
    out.assert_one_line_error("image.yaml:", "characters of text")


def test_var_doubling_recipe_is_refused(tmp_path: Path) -> None:
    lines = ["package: {name: bomb, version: 1.0.0, epoch: 0}", "vars:", "  v0: xxxxxxxxxxxxxxxx"]
    lines += [f"  v{i}: ${{{{vars.v{i - 1}}}}}${{{{vars.v{i - 1}}}}}" for i in range(1, 31)]
    lines += ["pipeline:", "  - runs: echo ${{vars.v30}}"]
    recipe = tmp_path / "bomb.yaml"
    recipe.write_text("\n".join(lines) + "\n")
    out = _recipe_build(tmp_path, recipe)
    out.assert_one_line_error("bomb.yaml", "exceeds 1048576 characters")
    _nothing_outside(tmp_path, {"bomb.yaml"})
    print(f"\nvars doubling 30 times: refused in {out.cpu_s:.2f} s CPU, peak RSS {out.peak_rss_mb:.0f} MB")


def test_huge_integer_is_a_clean_error(tmp_path: Path) -> None:
    config = _image(tmp_path, "accounts:\n  run-as: " + "9" * 5000 + "\n")
    _show(tmp_path, config).assert_one_line_error("image.yaml:2:", "digits")
    recipe = tmp_path / "int.yaml"
    recipe.write_text("package: {name: n, version: 1.0.0, epoch: " + "9" * 5000 + "}\npipeline: [{runs: 'true'}]\n")
    _recipe_build(tmp_path, recipe).assert_one_line_error("int.yaml:1:", "digits")


@pytest.fixture()
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("target", ["/dev/zero", "fifo", "dir"])
def test_include_of_a_non_regular_file_is_refused(tmp_path: Path, fifo: Path, target: str) -> None:
    (tmp_path / "dir").mkdir()
    name = target if target.startswith("/") else str(tmp_path / target)
    config = _image(tmp_path, f"include: {name}\ncontents: {{packages: [x]}}\n")
    out = _show(tmp_path, config)
    out.assert_one_line_error(name, "not a regular file")


@pytest.mark.parametrize("target", ["/dev/zero", "fifo"])
def test_keyring_and_keys_of_non_regular_files_are_refused(tmp_path: Path, fifo: Path, target: str) -> None:
    name = target if target.startswith("/") else str(fifo)
    repo = tmp_path / "repo"
    (repo / "x86_64").mkdir(parents=True)
    config = _image(tmp_path, f"contents:\n  repositories: [{repo}]\n  keyring: [{name}]\n  packages: [x]\n"
                              "archs: [x86_64]\n")
    _show(tmp_path, config).assert_one_line_error(name, "not a regular file")
    out = run_bounded(cli("sign", "--key", name, "--layout", str(tmp_path)), mem_mb=MEM_MB, cpu_s=CPU_S,
                      cwd=tmp_path)
    out.assert_one_line_error(name, "not a regular file")
    out = run_bounded(cli("package", "sign", name, str(tmp_path / "nothing.apk")), mem_mb=MEM_MB, cpu_s=CPU_S,
                      cwd=tmp_path)
    out.assert_one_line_error(name, "not a regular file")


def test_oversized_include_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with open(big, "wb") as f:
        f.truncate(64 << 20)  # sparse: costs no disk
    config = _image(tmp_path, f"include: {big}\n")
    _show(tmp_path, config).assert_one_line_error("big.yaml", "larger than the cap")


def test_include_of_a_secret_file_does_not_echo_it(tmp_path: Path) -> None:
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$S3CRETHASHxyz:20228:0:99999:7:::\ndaemon:*:20228:0:99999:7:::\n")
    secret.chmod(0o400)
    config = _image(tmp_path, f"include: {secret}\n")
    line = _show(tmp_path, config).assert_one_line_error("shadow:1:1", "unknown key")
    assert "S3CRET" not in line and "20228" not in line and "daemon" not in line
