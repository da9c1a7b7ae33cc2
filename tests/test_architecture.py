"""The engine's shape, checked from source: imports go one way through the layers, no package
imports another that imports it back, and below the front doors nothing prints or reads the
environment (front doors resolve credentials, the epoch and the cache location and pass them down).

Everything here parses the modules with `ast`; nothing is imported."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "distroless"

# Lowest first. A module may import modules of its own layer or of a lower one, never a higher one.
# Units are the first component under `distroless` (a subpackage or a top-level module).
LAYERS: list[tuple[str, frozenset[str]]] = [
    ("basics", frozenset({"", "errors", "fsutil", "events", "epoch", "arch", "limits", "neterrors"})),
    ("formats", frozenset({"tarball", "apk", "oci", "config", "lock", "sbom"})),
    ("store", frozenset({"store"})),
    ("fetch", frozenset({"fetch", "registry"})),
    ("resolve", frozenset({"resolve"})),
    ("rootfs", frozenset({"rootfs"})),
    ("engine", frozenset({"packages", "resolvecache", "assembly", "layers", "overlay", "imagebuild", "sign", "melange",
                         "baseimage"})),
    ("front doors", frozenset({"cli", "buildkit", "steps", "packagesteps", "publishsteps", "stepio", "hostenv", "__main__", "resources"})),
]
FRONT_DOORS = LAYERS[-1][1]
# Pure layers: the root filesystem and the resolver work on bytes they are given, never fetch.
PURE: dict[str, frozenset[str]] = {
    "rootfs": frozenset({"fetch", "registry", "resolve"}),
    "resolve": frozenset({"fetch", "registry", "store"}),
}
GENERATED = ("buildkit", "_pb")  # protoc output: not ours to shape


@dataclass(frozen=True)
class Import:
    target: str  # dotted module name
    line: int
    top_level: bool  # runs when the module is imported (not inside a function)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).parts
        if rel[: len(GENERATED)] == GENERATED:
            continue
        out[module_name(path)] = path
    return out


def _top_level_nodes(tree: ast.Module) -> set[int]:
    """ids of import nodes that run at import time (module body, incl. if/try blocks)."""
    ids: set[int] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                ids.add(id(node))
            elif isinstance(node, (ast.If, ast.Try, ast.With)):
                for field in ("body", "orelse", "finalbody"):
                    visit(getattr(node, field, []) or [])
                for h in getattr(node, "handlers", []):
                    visit(h.body)

    visit(tree.body)
    return ids


def imports(name: str, path: Path, known: set[str]) -> list[Import]:
    tree = ast.parse(path.read_text(), str(path))
    top = _top_level_nodes(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # `from pkg import sub` depends on pkg.sub when that is a module, else on pkg itself
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
        else:
            continue
        for t in targets:
            if t == "distroless" or t.startswith("distroless."):
                out.append(Import(t, node.lineno, id(node) in top))
    return out


def unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer_of(u: str) -> int:
    for i, (_, members) in enumerate(LAYERS):
        if u in members:
            return i
    raise AssertionError(f"distroless/{u}: in no layer of tests/test_architecture.py LAYERS; place it there")


def graph() -> dict[str, list[Import]]:
    mods = modules()
    known = set(mods)
    return {m: imports(m, p, known) for m, p in mods.items()}


def order_violations(g: dict[str, list[Import]]) -> list[str]:
    bad = []
    for m, imps in g.items():
        mine = layer_of(unit(m))
        for imp in imps:
            theirs = layer_of(unit(imp.target))
            where = f"{m.replace('.', '/')}:{imp.line}: {m} ({LAYERS[mine][0]}) imports {imp.target}"
            if theirs > mine:
                bad.append(f"{where} ({LAYERS[theirs][0]})")
            elif unit(imp.target) in PURE.get(unit(m), ()):
                bad.append(f"{where}: {unit(m)} is pure, it never reaches {unit(imp.target)}")
    return bad


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            strong(v)
    return out


def package_of(module: str, packages: set[str]) -> str:
    """The innermost package holding `module` (a package is its own)."""
    while module not in packages:
        module = module.rpartition(".")[0]
    return module


def package_edges(g: dict[str, list[Import]]) -> dict[str, set[str]]:
    """Between packages at every depth: `distroless.sign` -> `distroless.registry`, and
    `distroless.buildkit` -> `distroless.buildkit.llb`'s package; top-level modules count as
    their own package. Edges into an ancestor package (a submodule using its package's
    `__init__`) are not cycles of packages and are left out."""
    mods = modules()
    packages = {m for m, p in mods.items() if p.name == "__init__.py"}
    packages |= {m for m in mods if m.count(".") == 1}  # distroless.lock & co.
    edges: dict[str, set[str]] = {}
    for m, imps in g.items():
        src = package_of(m, packages)
        for imp in imps:
            dst = package_of(imp.target, packages)
            if dst != src and not src.startswith(dst + "."):
                edges.setdefault(src, set()).add(dst)
    return edges


def test_every_import_follows_the_layers():
    bad = order_violations(graph())
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_no_package_imports_one_that_imports_it_back():
    found = cycles(package_edges(graph()))
    assert not found, "package cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_no_module_cycle_at_import_time():
    g = graph()
    edges = {m: {i.target for i in imps if i.top_level and i.target != m} for m, imps in g.items()}
    found = cycles(edges)
    assert not found, "module cycles: " + "; ".join(" <-> ".join(c) for c in found)


# ------------------------------------------------------------------ no prints, no environment

FORBIDDEN_CALLS = {"print", "input", "breakpoint"}
FORBIDDEN_ATTRS = {("os", "environ"), ("os", "environb"), ("os", "getenv"), ("os", "putenv"),
                   ("os", "unsetenv"), ("sys", "stderr"), ("sys", "stdout")}


def _is_script_entry(node: ast.AST) -> bool:
    """`if __name__ == "__main__":` — a module run as a script is its own front door."""
    return isinstance(node, ast.If) and isinstance(node.test, ast.Compare) \
        and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__" \
        and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in node.test.comparators)


def side_channels(path: Path) -> list[str]:
    """`print(…)`, `os.environ`, `os.getenv`, `sys.stderr` … in a module (outside its script
    entry), as `line: what`."""
    tree = ast.parse(path.read_text(), str(path))
    tree.body = [n for n in tree.body if not _is_script_entry(n)]
    found = []
    aliases: dict[str, str] = {}  # `from os import environ as e` → e: os.environ
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in ("os", "sys"):
            for a in node.names:
                if (node.module, a.name) in FORBIDDEN_ATTRS:
                    found.append(f"{node.lineno}: from {node.module} import {a.name}")
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_CALLS:
            found.append(f"{node.lineno}: {node.func.id}()")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and (node.value.id, node.attr) in FORBIDDEN_ATTRS:
            found.append(f"{node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_below_the_front_doors_nothing_prints_or_reads_the_environment():
    bad = []
    for m, path in modules().items():
        if unit(m) in FRONT_DOORS:
            continue
        bad += [f"{path.relative_to(PACKAGE.parent)}:{hit}" for hit in side_channels(path)]
    assert not bad, "engine code must report through events and take settings as arguments:\n" + "\n".join(bad)


# ------------------------------------------------------------------ the checks themselves can fail

def test_the_checks_catch_what_they_are_for(tmp_path):
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    src = tmp_path / "m.py"
    src.write_text("import os, sys\nfrom os import environ as e\n"
                   "def f():\n    print('x')\n    os.environ.get('A')\n    os.getenv('B')\n    sys.stderr.write('y')\n"
                   "if __name__ == '__main__':\n    print('a script entry is a front door')\n")
    hits = side_channels(src)
    assert [h.split(": ", 1)[1] for h in hits] == [
        "from os import environ", "print()", "os.environ", "os.getenv", "sys.stderr"] or len(hits) == 5
    with pytest.raises(AssertionError, match="in no layer"):
        layer_of("newthing")


def test_an_upward_or_impure_import_is_reported():
    g = {"distroless.rootfs.tree": [Import("distroless.imagebuild", 3, True), Import("distroless.fetch.fetcher", 4, False),
                                    Import("distroless.store.expand", 5, True)],
         "distroless.store.expand": [Import("distroless.fetch.cache", 9, True)]}
    assert order_violations(g) == [
        "distroless/rootfs/tree:3: distroless.rootfs.tree (rootfs) imports distroless.imagebuild (engine)",
        "distroless/rootfs/tree:4: distroless.rootfs.tree (rootfs) imports distroless.fetch.fetcher: "
        "rootfs is pure, it never reaches fetch",
        "distroless/store/expand:9: distroless.store.expand (store) imports distroless.fetch.cache (fetch)",
    ]
