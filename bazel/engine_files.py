"""Generate `distroless/BUILD.bazel`: one file group per engine step, listing exactly the engine
files that step can import, so a Bazel action's inputs are those files and not the whole package
(editing the BuildKit frontend then re-runs no image action).

    python3 bazel/engine_files.py           # rewrite distroless/BUILD.bazel
    python3 bazel/engine_files.py --check   # exit 1 if it is not current (tests/test_engine_files.py)

The import graph is read statically (ast), never by importing the engine:
- in `distroless/steps.py`: its module-level imports, plus the imports inside the step's `cmd_*`
  function, `main`, and every function of steps.py those call (transitively);
- in every other module reached: all of its imports, module-level or inside functions (a
  function's lazy import may run whenever the module is used, so it counts);
- importing `a.b.c` also runs `a/__init__.py` and `a/b/__init__.py`;
- a package's data files (non-.py files in its directory and in sub-directories that are not
  packages themselves: `busybox_paths.txt`, melange's `pipelines/`) go with its modules.
Run it again after moving or adding engine modules; the test fails until you do.
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = "distroless"
STEPS_MODULE = f"{PKG}.steps"
OUT = Path(PKG) / "BUILD.bazel"


@dataclass
class Graph:
    root: Path
    trees: dict[str, ast.Module] = field(default_factory=dict)
    files: dict[str, Path | None] = field(default_factory=dict)
    memo: dict[tuple[str, str], object] = field(default_factory=dict)

    def file_of(self, mod: str) -> Path | None:
        if mod not in self.files:
            rel = Path(*mod.split("."))
            self.files[mod] = next((c for c in (rel.with_suffix(".py"), rel / "__init__.py")
                                    if (self.root / c).is_file()), None)
        return self.files[mod]

    def cached(self, kind: str, mod: str, make):
        if (kind, mod) not in self.memo:
            self.memo[kind, mod] = make()
        return self.memo[kind, mod]

    def is_package(self, mod: str) -> bool:
        f = self.file_of(mod)
        return f is not None and f.name == "__init__.py"

    def tree(self, mod: str) -> ast.Module:
        if mod not in self.trees:
            f = self.file_of(mod)
            assert f is not None, mod
            self.trees[mod] = ast.parse((self.root / f).read_text("utf-8"), str(f))
        return self.trees[mod]

    def resolve(self, node: ast.Import | ast.ImportFrom, current: str) -> set[str]:
        """The engine modules an import statement loads (parents included)."""
        names: set[str] = set()
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        else:
            base = node.module or ""
            if node.level:
                pkg = current if self.is_package(current) else current.rpartition(".")[0]
                for _ in range(node.level - 1):
                    pkg = pkg.rpartition(".")[0]
                base = f"{pkg}.{base}" if base else pkg
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names if self.file_of(f"{base}.{a.name}"))
        out: set[str] = set()
        for name in names:
            if name != PKG and not name.startswith(PKG + "."):
                continue
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                if self.file_of(".".join(parts[:i])):
                    out.add(".".join(parts[:i]))
        return out

    def imports(self, nodes: list[ast.AST], current: str) -> set[str]:
        out: set[str] = set()
        for n in nodes:
            for sub in ast.walk(n):
                if isinstance(sub, (ast.Import, ast.ImportFrom)):
                    out |= self.resolve(sub, current)
        return out


def _is_function(n: ast.AST) -> bool:
    return isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))


def _is_main_guard(n: ast.AST) -> bool:
    """`if __name__ == "__main__":` does not run on import."""
    t = n.test if isinstance(n, ast.If) else None
    return (isinstance(t, ast.Compare) and isinstance(t.left, ast.Name) and t.left.id == "__name__"
            and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in t.comparators))


def _top_code(tree: ast.Module) -> list[ast.AST]:
    return [n for n in tree.body if not _is_function(n) and not isinstance(n, ast.ClassDef) and not _is_main_guard(n)]


def step_functions(g: Graph) -> dict[str, str]:
    """Step name → its `cmd_*` function, from the `sub.add_parser(NAME …)` / `set_defaults(func=…)`
    pairs in steps.py's `build_parser` (read statically, in order)."""
    parser = next(n for n in g.tree(STEPS_MODULE).body if _is_function(n) and n.name == "build_parser")
    steps: dict[str, str] = {}
    current = None
    for n in ast.walk(parser):
        if not isinstance(n, ast.Call) or not isinstance(n.func, ast.Attribute):
            continue
        if n.func.attr == "add_parser" and n.args and isinstance(n.args[0], ast.Constant):
            current = n.args[0].value
        elif n.func.attr == "set_defaults":
            for kw in n.keywords:
                if kw.arg == "func" and isinstance(kw.value, ast.Name) and current:
                    steps[current] = kw.value.id
    # ast.walk is breadth-first; re-order by position so the output follows the source
    return steps


Node = tuple  # (module, top-level name) or (module, None): the module's top-level code


def _top_defs(tree: ast.Module) -> dict[str, ast.AST]:
    return {n.name: n for n in tree.body if _is_function(n) or isinstance(n, ast.ClassDef)}


def _bindings(g: Graph, nodes: list[ast.AST], current: str) -> dict[str, tuple[str, str | None]]:
    """Names bound by import statements in `nodes`: alias → (module, None) for a module, or
    (module, name) for a name imported from one."""
    out: dict[str, tuple[str, str | None]] = {}
    for n in nodes:
        for sub in ast.walk(n):
            if isinstance(sub, ast.Import):
                for a in sub.names:
                    if a.name.startswith(PKG + ".") or a.name == PKG:
                        # `import a.b` binds `a`; `import a.b as x` binds x to a.b
                        out[a.asname or a.name.split(".")[0]] = (a.name if a.asname else a.name.split(".")[0], None)
            elif isinstance(sub, ast.ImportFrom):
                mods = g.resolve(sub, current)
                if not mods:
                    continue
                base = max((m for m in mods if not any(m == f"{b}.{x.name}" for b in mods for x in sub.names)),
                           key=len, default=None)
                if base is None:
                    continue
                for a in sub.names:
                    full = f"{base}.{a.name}"
                    out[a.asname or a.name] = (full, None) if g.file_of(full) else (base, a.name)
    return out


class Reach:
    """Which top-level definitions of which engine modules a step can run (a static call graph:
    names and `module.attr` chains are followed; a class counts whole, with all its methods)."""

    def __init__(self, g: Graph, skip: set[Node] = frozenset()):
        self.g = g
        self.skip = skip  # the other steps' functions: build_parser names them all
        self.seen: set[Node] = set()
        self.todo: list[Node] = []

    def add(self, node: Node) -> None:
        if node not in self.seen and node not in self.skip:
            self.seen.add(node)
            self.todo.append(node)

    def module(self, mod: str) -> None:
        parts = mod.split(".")
        for i in range(1, len(parts) + 1):
            if self.g.file_of(".".join(parts[:i])):
                self.add((".".join(parts[:i]), None))

    def run(self) -> set[str]:
        while self.todo:
            mod, name = self.todo.pop()
            self._visit(mod, name)
        return {m for m, _ in self.seen}

    def _defs(self, mod: str) -> dict[str, ast.AST]:
        return self.g.cached("defs", mod, lambda: _top_defs(self.g.tree(mod)))

    def _top(self, mod: str) -> list[ast.AST]:
        return self.g.cached("top", mod, lambda: _top_code(self.g.tree(mod)))

    def _top_binds(self, mod: str) -> dict[str, tuple[str, str | None]]:
        return self.g.cached("binds", mod, lambda: _bindings(self.g, self._top(mod), mod))

    def _name(self, mod: str, name: str) -> None:
        """`name` as a top-level name of `mod`: a def/class, or a re-exported import."""
        if name in self._defs(mod):
            self.add((mod, name))
            return
        target = self._top_binds(mod).get(name)
        if target is not None:
            self._target(target)

    def _target(self, target: tuple[str, str | None]) -> None:
        mod, name = target
        self.module(mod)
        if name == "*":
            for d in self._defs(mod):
                self.add((mod, d))
        elif name is not None:
            self._name(mod, name)

    def _visit(self, mod: str, name: str | None) -> None:
        defs = self._defs(mod)
        top = self._top(mod)
        if name is None:
            # the module's own top-level code; decorators and defaults of its defs run too
            body: list[ast.AST] = top + [d for n in defs.values() for d in getattr(n, "decorator_list", [])]
            if mod != STEPS_MODULE:
                body += [n for n in defs.values() if isinstance(n, ast.ClassDef)]
        else:
            body = [defs[name]]
        binds = dict(self._top_binds(mod))
        binds.update(self.g.cached("binds", f"{mod}:{name}", lambda: _bindings(self.g, body, mod)))
        for n in body:
            for sub in ast.walk(n):
                if isinstance(sub, (ast.Import, ast.ImportFrom)):
                    for m in self.g.resolve(sub, mod):
                        self.module(m)
                    if isinstance(sub, ast.ImportFrom) and any(a.name == "*" for a in sub.names):
                        for m in self.g.resolve(sub, mod):
                            self._target((m, "*"))
                elif isinstance(sub, ast.Name):
                    if sub.id in defs:
                        self.add((mod, sub.id))
                    elif sub.id in binds:
                        self._target(binds[sub.id])
                elif isinstance(sub, ast.Attribute):
                    self._attribute(sub, binds)

    def _attribute(self, node: ast.Attribute, binds: dict[str, tuple[str, str | None]]) -> None:
        chain = []
        cur: ast.AST = node
        while isinstance(cur, ast.Attribute):
            chain.append(cur.attr)
            cur = cur.value
        if not isinstance(cur, ast.Name) or cur.id not in binds:
            return
        mod, name = binds[cur.id]
        if name is not None:
            return
        for attr in reversed(chain):
            if self.g.file_of(f"{mod}.{attr}"):
                mod = f"{mod}.{attr}"
                self.module(mod)
                continue
            self._name(mod, attr)
            return


def step_node(g: Graph, func: str) -> Node:
    """Where a step's function is defined: steps.py itself, or the module `build_parser` (or
    steps.py's top level) imports it from."""
    tree = g.tree(STEPS_MODULE)
    if func in _top_defs(tree):
        return (STEPS_MODULE, func)
    parser = _top_defs(tree)["build_parser"]
    binds = _bindings(g, _top_code(tree), STEPS_MODULE)
    binds.update(_bindings(g, [parser], STEPS_MODULE))
    mod, name = binds[func]
    return (mod, name)


def step_modules(g: Graph, func: str) -> set[str]:
    """Modules one step can load: steps.py's top level, `main`, the step's function and what
    they reach (never another step's function, which `build_parser` names too)."""
    mine = step_node(g, func)
    others = {step_node(g, f) for f in step_functions(g).values()} - {mine}
    r = Reach(g, others)
    r.module(STEPS_MODULE)
    r.module(mine[0])
    r.add((STEPS_MODULE, "main"))
    r.add(mine)
    return r.run()


def data_files(root: Path, package_dir: Path) -> list[Path]:
    out = []
    for p in sorted((root / package_dir).rglob("*")):
        rel = p.relative_to(root)
        if not p.is_file() or p.suffix in (".py", ".pyc") or "__pycache__" in rel.parts:
            continue
        # a sub-directory that is a package of its own brings its data with its own modules
        inner = rel.parent
        owned = True
        while inner != package_dir:
            if (root / inner / "__init__.py").is_file():
                owned = False
                break
            inner = inner.parent
        if owned and p.name != "BUILD.bazel":
            out.append(rel)
    return out


def step_files(g: Graph, func: str) -> list[str]:
    files: set[Path] = set()
    for m in step_modules(g, func):
        f = g.file_of(m)
        assert f is not None
        files.add(f)
        if f.name == "__init__.py":
            files.update(data_files(g.root, f.parent))
    return sorted(str(f.relative_to(PKG)) for f in files)


def render(g: Graph) -> str:
    steps = step_functions(g)
    lines = [
        "# GENERATED by bazel/engine_files.py from the engine's import graph; do not edit.",
        "# Re-run `python3 bazel/engine_files.py` after moving or adding engine modules",
        "# (tests/test_engine_files.py fails until you do). One file group per step of",
        "# distroless.steps: the files that step can import, the inputs of its Bazel actions.",
        'load("//bazel/private:common.bzl", "engine_steps")',
        "",
        'package(default_visibility = ["//visibility:public"])',
        "",
        'exports_files(["__init__.py"])',
        "",
    ]
    for step, func in sorted(steps.items()):
        lines.append("filegroup(")
        lines.append(f'    name = "step_{step}",')
        lines.append("    srcs = [")
        lines.extend(f'        "{f}",' for f in step_files(g, func))
        lines.append("    ],")
        lines.append(")")
        lines.append("")
    lines.append("# step name -> its file group, for //bazel:tool")
    lines.append("engine_steps(")
    lines.append('    name = "steps",')
    lines.append("    steps = {")
    lines.extend(f'        ":step_{step}": "{step}",' for step in sorted(steps))
    lines.append("    },")
    lines.append(")")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="fail if distroless/BUILD.bazel is not current")
    p.add_argument("--root", type=Path, default=ROOT)
    args = p.parse_args(argv)
    text = render(Graph(args.root))
    out = args.root / OUT
    if args.check:
        if not out.is_file() or out.read_text("utf-8") != text:
            print(f"{OUT} is not current: run `python3 bazel/engine_files.py`", file=sys.stderr)
            return 1
        return 0
    out.write_text(text, "utf-8")
    print(f"{OUT}: {len(step_functions(Graph(args.root)))} steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
