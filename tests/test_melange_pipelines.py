"""The built-in pipelines added for melange parity: each loads, compiles with its documented inputs
and yields scripts `sh -n` accepts; melange's own example recipes that use them compile; and
the ones the host can run (split/debug, python/import, python/test) run in real bubblewrap."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

import pytest

from distroless.apk import package
from distroless.errors import ConfigError
from distroless.melange.build import build
from distroless.melange.compile import CompileOptions, compile_recipe
from distroless.melange.pipeline import PipelineLibrary
from distroless.melange.recipe import load_recipe, load_recipe_text
from shared import FIXTURES
from test_melange_build import options, write_recipe

# melange's pkg/build/pipelines that the first set of built-ins lacked (21)
ADDED = {
    "R/build": {"package": "cran-x", "version": "1.0"},
    "go/build/v2": {},
    "go/bump": {"deps": "golang.org/x/net@v0.30.0"},
    "go/covdata": {},
    "llvm/covreport": {},
    "maven/configure-mirror": {},
    "maven/pombump": {"dependencies": "org.x:y@1.2"},
    "npm/install": {"package": "cowsay", "version": "1.6.0", "overrides": "yargs@17.0.0, get-stdin@9.0.0"},
    "pecl/install": {"extension": "zstd"},
    "pecl/phpize": {},
    "python/import": {"imports": "import json  # inline comment\nfrom os import path"},
    "python/test": {"command": "python3 -c 'print(1)'"},
    "ruby/build": {"gem": "webrick"},
    "ruby/clean": {},
    "ruby/install": {"gem": "webrick", "version": "1.8.1"},
    "split/debug": {},
    "xcover/ensure": {"min-coverage": "50"},
    "xcover/profile": {"executable-path": "/usr/bin/crane"},
    "xcover/status": {},
    "xcover/stop": {},
    "xcover/wait": {},
}
EXAMPLES = sorted(p for p in (FIXTURES / "configs" / "melange-examples").glob("*.yaml")
                  if p.name != "conditional.yaml")  # an intentional error case


def sh_n(script: str) -> None:
    """POSIX syntax check with dash (stricter than busybox ash, which the sandboxes use)."""
    r = subprocess.run(["/bin/sh", "-n"], input=script, capture_output=True, text=True)
    assert r.returncode == 0, f"{r.stderr}\n---\n{script}"


def test_all_21_are_shipped() -> None:
    assert len(ADDED) == 21
    have = set(PipelineLibrary.create().available())
    assert set(ADDED) <= have, sorted(set(ADDED) - have)


def recipe_using(uses: str, with_: dict[str, str]) -> str:
    lines = [f"      {k}: {v!r}" if "\n" not in v else f"      {k}: |\n" + "".join(f"        {ln}\n" for ln in v.splitlines())
             for k, v in with_.items()]
    body = ("    with:\n" + "\n".join(ln.rstrip("\n") for ln in lines) + "\n") if lines else ""
    return ("package: {name: demo, version: 1.0.0, epoch: 0}\n"
            "pipeline:\n  - runs: mkdir -p ${{targets.destdir}}\n"
            "subpackages:\n  - name: demo-sub\n    pipeline:\n"
            f"      - uses: {uses}\n" + "".join("    " + ln + "\n" for ln in body.splitlines()))


@pytest.mark.parametrize("uses", sorted(ADDED))
def test_each_compiles_to_valid_shell(uses: str) -> None:
    recipe = load_recipe_text(recipe_using(uses, ADDED[uses]), "recipe.yaml")
    compiled = compile_recipe(recipe, CompileOptions(arch="x86_64"))
    steps = compiled.packages[1].steps
    assert steps, uses
    for st in steps:
        sh_n(st.script)
        assert "${{" not in st.script


# required inputs, as melange documents them (pkg/build/pipelines/*/README.md)
REQUIRED = {"R/build": {"package", "version"}, "go/bump": {"deps"}, "npm/install": {"package", "version"},
            "pecl/install": {"extension"}, "python/test": {"command"}, "ruby/build": {"gem"},
            "ruby/install": {"version"}, "xcover/profile": {"executable-path"}}


@pytest.mark.parametrize("uses", sorted(ADDED))
def test_required_inputs_match_melange_and_are_enforced(uses: str) -> None:
    step = PipelineLibrary.create().load(uses).step
    required = {k for k, v in step.inputs.items() if v.required}
    assert required == REQUIRED.get(uses, set())
    if required:
        with pytest.raises(ConfigError, match="required"):
            compile_recipe(load_recipe_text(recipe_using(uses, {}), "recipe.yaml"), CompileOptions(arch="x86_64"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_melange_examples_compile_to_valid_shell(path: Path) -> None:
    compiled = compile_recipe(load_recipe(path), CompileOptions(arch="x86_64", include_tests=True))
    for pkg in compiled.packages:
        for st in pkg.steps + pkg.test_steps:
            sh_n(st.script)


def test_examples_using_the_added_pipelines_are_covered() -> None:
    used = set()
    for path in EXAMPLES:
        text = path.read_text()
        used |= {u for u in ADDED if f"uses: {u}\n" in text}
    assert {"R/build", "go/bump", "npm/install", "ruby/build", "ruby/install", "xcover/profile"} <= used, used


# --- run where the host has the tools --------------------------------------------------------

def test_split_debug_in_bubblewrap(tmp_path: Path) -> None:
    (tmp_path / "hello.c").write_text('#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n')
    recipe = write_recipe(tmp_path, """\
        package: {name: dbgdemo, version: 1.0.0, epoch: 0, copyright: [{license: MIT}]}
        pipeline:
          - runs: |
              mkdir -p ${{targets.destdir}}/usr/bin
              gcc -g -O0 -o ${{targets.destdir}}/usr/bin/hello hello.c
              ln ${{targets.destdir}}/usr/bin/hello ${{targets.destdir}}/usr/bin/hello2
        subpackages:
          - name: dbgdemo-dbg
            pipeline:
              - uses: split/debug
        """)
    out = tmp_path / "out"
    build(recipe, options(out, lint_warn=()))
    main = out / "x86_64" / "dbgdemo-1.0.0-r0.apk"
    dbg = out / "x86_64" / "dbgdemo-dbg-1.0.0-r0.apk"
    x = tmp_path / "x"
    with tarfile.open(main) as t:
        t.extractall(x / "main", filter="data")
    with tarfile.open(dbg) as t:
        names = t.getnames()
        t.extractall(x / "dbg", filter="data")
    # one debug file for the two hard links (split once per inode)
    debug_files = [n for n in names if n.endswith(".debug")]
    assert debug_files in (["usr/lib/debug/usr/bin/hello.debug"], ["usr/lib/debug/usr/bin/hello2.debug"]), names
    sections = subprocess.run(["readelf", "-S", str(x / "main/usr/bin/hello")], capture_output=True, text=True).stdout
    assert ".gnu_debuglink" in sections and ".debug_info" not in sections
    dsections = subprocess.run(["readelf", "-S", str(x / "dbg" / debug_files[0])], capture_output=True, text=True).stdout
    assert ".debug_info" in dsections
    assert subprocess.run([str(x / "main/usr/bin/hello")], capture_output=True, text=True).stdout == "hi\n"


def test_python_import_and_test_in_bubblewrap(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, """\
        package: {name: pyprobe, version: 1.0.0, epoch: 0, copyright: [{license: MIT}]}
        pipeline:
          - uses: python/import
            with:
              python: python3
              imports: |
                # a comment line
                import json  # inline comment
                from os import path
          - uses: python/test
            with:
              command: python3 -c 'import sys; sys.exit(0)'
          - runs: mkdir -p ${{targets.destdir}}/ok && touch ${{targets.destdir}}/ok/done
        """)
    build(recipe, options(tmp_path / "out"))
    assert package.read(tmp_path / "out" / "x86_64" / "pyprobe-1.0.0-r0.apk").package.name == "pyprobe"
    failing = write_recipe(tmp_path, """\
        package: {name: pyfail, version: 1.0.0, epoch: 0}
        pipeline:
          - uses: python/import
            with:
              python: python3
              import: no_such_module_here
        """, name="fail.yaml")
    with pytest.raises(Exception, match="no_such_module_here"):
        build(failing, options(tmp_path / "out2"))
