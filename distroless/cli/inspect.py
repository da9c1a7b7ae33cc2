"""`image show-config` and `image dot`: apko's views of a configuration and its package graph."""

from __future__ import annotations

import argparse
import html
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from distroless.errors import ConfigError, FormatError
from distroless.fsutil import atomic_write

if TYPE_CHECKING:  # the engine loads in the commands, not when they are registered
    from distroless import packages as pkgset

DOT_TIMEOUT = 120  # seconds for Graphviz on a large graph


def register(isub: argparse._SubParsersAction) -> None:
    from distroless.cli.image import VERBS, add_config_flags

    sc = isub.add_parser("show-config", help=VERBS["show-config"][1])
    sc.add_argument("config", type=Path, help="the apko image configuration (YAML)")
    add_config_flags(sc)
    sc.set_defaults(func=cmd_show_config)

    d = isub.add_parser("dot", help=VERBS["dot"][1])
    d.add_argument("config", type=Path, help="the apko image configuration (YAML)")
    d.add_argument("-S", "--spanning-tree", action="bool", help="draw each dependency's incoming edge once")
    d.add_argument("--web", action="bool",
                   help="also write an HTML page (with an SVG when Graphviz `dot` is installed) instead of a browser")
    d.add_argument("-o", "--output", type=Path,
                   help="the --web page (default: <config without extension>.dot.html)")
    d.add_argument("-e", "--registry-explorer", default="apk.dag.dev",
                   help="accepted for apko compatibility; nodes are not linked")
    add_config_flags(d, build=False)
    d.set_defaults(func=cmd_dot)


def cmd_show_config(args: argparse.Namespace) -> int:
    import yaml

    from distroless.cli.image import load
    from distroless.config import apko_json_dict

    loaded = load(args)
    c = loaded.config.contents
    # apko applies -k/-b/-r/-p to the configuration it shows (build.New with the options)
    contents = replace(c, keyring=c.keyring + loaded.extra_keyring,
                       build_repositories=c.build_repositories + loaded.extra_build_repositories,
                       repositories=c.repositories + loaded.extra_repositories,
                       packages=c.packages + loaded.extra_packages)
    doc = apko_json_dict(replace(loaded.config, contents=contents))
    sys.stdout.write(yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, allow_unicode=True))
    return 0


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dep_name(atom: str) -> str:
    """The node a dependency atom points at: its name without version or repository pin."""
    from distroless.apk.atom import Atom

    if atom.startswith("!"):
        return ""
    try:
        return Atom.parse(atom).name
    except FormatError:  # a malformed atom is still shown, by its text
        return atom


def package_graph(config_name: str, world: list[str], pins: list[pkgset.Pinned], *, span: bool) -> str:
    """apko's `dot` graph: config → world atoms (→ their names), package → each dependency,
    and a box per provided name that something depends on, pointing at its provider."""
    lines = ["digraph images {", "\trankdir=LR;"]
    nodes: dict[str, str] = {}
    edges: list[tuple[str, str, str]] = []
    seen_edges: set[tuple[str, str]] = set()
    incoming: set[str] = set()
    depended: set[str] = set()

    def node(name: str, **attrs: str) -> None:
        extra = "".join(f" {k}={_q(v)}" for k, v in attrs.items())
        if name not in nodes or attrs:
            nodes[name] = extra or nodes.get(name, "")

    def edge(a: str, b: str, why: str) -> None:
        if (a, b) not in seen_edges:
            seen_edges.add((a, b))
            edges.append((a, b, why))

    node(config_name, shape="note")
    for atom in world:
        node(atom)
        edge(config_name, atom, "required")
        name = _dep_name(atom)
        if name and name != atom:
            node(name)
            edge(atom, name, "constraint")
        depended.add(name or atom)
    for p in pins:
        pkg = p.package
        node(pkg.name, label=f"{pkg.name}-{pkg.version}")
        for dep in pkg.depends:
            name = _dep_name(dep)
            if not name or name == pkg.name:
                continue
            depended.add(name)
            node(name)
            if span and name in incoming:
                continue
            incoming.add(name)
            edge(pkg.name, name, "dependency")
    for p in pins:
        for prov in p.package.provides:
            name = _dep_name(prov)
            if name in depended and name != p.package.name:
                node(name, shape="rect")
                edge(name, p.package.name, "provides")
    for name, attrs in nodes.items():
        lines.append(f"\t{_q(name)}{' [' + attrs.strip() + ']' if attrs else ''};")
    for a, b, why in edges:
        lines.append(f"\t{_q(a)} -> {_q(b)} [tooltip={_q(f'{a} → {b} ({why})')}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_svg(dot_source: str) -> str | None:
    """SVG from Graphviz's `dot` when it is installed; None otherwise."""
    exe = shutil.which("dot")
    if exe is None:
        return None
    import subprocess

    r = subprocess.run([exe, "-Tsvg"], input=dot_source, capture_output=True, text=True, timeout=DOT_TIMEOUT)
    if r.returncode != 0:
        raise ConfigError(f"graphviz dot failed: {r.stderr.strip()[:300]}")
    return r.stdout


def web_page(title: str, dot_source: str, svg: str | None) -> str:
    body = svg if svg is not None else (
        "<p>Graphviz is not installed here, so the graph is not drawn; render the DOT source below "
        "with <code>dot -Tsvg</code> or any Graphviz viewer.</p>")
    return (f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title></head>\n"
            f"<body>\n<h1>{html.escape(title)}</h1>\n{body}\n"
            f"<details{'' if svg else ' open'}><summary>DOT source</summary>\n"
            f"<pre id=\"dot\">{html.escape(dot_source)}</pre></details>\n</body></html>\n")


def cmd_dot(args: argparse.Namespace) -> int:
    from distroless import packages as pkgset
    from distroless.cli.image import fetcher_for, load

    loaded = load(args)
    ps = pkgset.resolve_config(loaded, fetcher_for(args), ignore_signatures=args.ignore_signatures)
    arch = next(iter(ps.archs))  # apko draws the first architecture only
    if len(ps.archs) > 1:
        print(f"distroless: drawing {arch} (the first of {len(ps.archs)} architectures)", file=sys.stderr)
    source = package_graph(str(args.config), list(loaded.world()), ps.archs[arch], span=args.spanning_tree)
    sys.stdout.write(source)
    if args.web:
        out = args.output or args.config.with_name(args.config.stem + ".dot.html")
        svg = render_svg(source)
        atomic_write(out, web_page(f"{args.config} ({arch})", source, svg).encode())
        print(f"{out}: {'SVG' if svg is not None else 'DOT source (Graphviz not installed)'} written", file=sys.stderr)
    return 0


