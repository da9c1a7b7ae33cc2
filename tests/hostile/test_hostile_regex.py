"""Item 6: var-transforms run on RE2 (linear time), as melange's Go regexp does."""

from __future__ import annotations

from pathlib import Path

from hostile.harness import run_bounded

RECIPE = """\
package:
  name: redos
  version: 1.0.0
  epoch: 0
vars:
  v: "{subject}"
var-transforms:
  - from: ${{{{vars.v}}}}
    match: "{match}"
    replace: "${{1}}-x"
    to: out
pipeline:
  - runs: echo ${{{{vars.out}}}}
"""


def _compile(tmp_path: Path, match: str, subject: str):
    recipe = tmp_path / "redos.yaml"
    recipe.write_text(RECIPE.format(match=match, subject=subject))
    return run_bounded(f"""
        import sys
        from distroless.errors import DistrolessError
        from distroless.melange.recipe import load_recipe
        from distroless.melange.compile import CompileOptions, compile_recipe
        try:
            c = compile_recipe(load_recipe({str(recipe)!r}), CompileOptions(arch="x86_64", include_tests=False))
        except DistrolessError as e:
            sys.exit(f"distroless: error: {{e}}")
        print(c.recipe.pipeline[0].runs)
        """, mem_mb=1024, cpu_s=20)


def test_catastrophic_backtracking_pattern_is_linear(tmp_path: Path) -> None:
    # Python's `re` takes ~2^n steps for (a+)+$ on "aaaa…ab"; n=40 would run for days. The bound is
    # the child's RLIMIT_CPU (20 s): past it the kernel kills the child and the status check fails.
    out = _compile(tmp_path, "(a+)+$", "a" * 40 + "b")
    assert out.status == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "echo " + "a" * 40 + "b"  # no match: RE2 says so at once


def test_backreference_is_refused_as_melange_does(tmp_path: Path) -> None:
    out = _compile(tmp_path, r"(a)\\1", "aa")
    line = out.assert_one_line_error("redos.yaml", "match", "does not compile")
    assert "invalid escape sequence" in line
