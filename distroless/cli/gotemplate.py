"""The part of Go's text/template that `apko show-packages --format` templates use in the wild.

Supported: text; actions `{{.Field}}`, `{{if P}}…{{else if P}}…{{else}}…{{end}}`,
`{{with .Field}}…{{end}}` (dot becomes the value), comments `{{/* … */}}`, trim markers `{{-`
and `-}}`; pipelines (`a | f b`) of a field, a quoted string, a number, true/false, or a call
of `eq ne lt le gt ge not and or len print printf println` (`printf` takes %s %v %q %d). Anything else is an error
naming the construct, never a silently different output. Go's truthiness: "", 0, false and
nil are false.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

from distroless.errors import ConfigError

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|`[^`]*`)|(?P<num>-?\d+)|(?P<field>(?:\.[A-Za-z_]\w*)+|\.)'
                    r'|(?P<ident>[A-Za-z_]\w*)|(?P<lp>\()|(?P<rp>\))|(?P<pipe>\|))')


class TemplateError(ConfigError):
    pass


@dataclass
class _Node:
    kind: str  # text | expr | if | with
    text: str = ""
    expr: list = field(default_factory=list)
    branches: list = field(default_factory=list)  # [(cond tokens or None, [nodes])]


def _tokens(src: str, where: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(src):
        if src[pos:].strip() == "":
            break
        m = _TOKEN.match(src, pos)
        if not m or m.end() == pos:
            raise TemplateError(f"{where}: unsupported template syntax near {src[pos:].strip()!r}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _lex(text: str) -> list[tuple[str, str]]:
    """[(kind, value)]: ("text", s) and ("action", inner) with trim markers applied."""
    items: list[tuple[str, str]] = []
    pos = 0
    for m in _ACTION.finditer(text):
        chunk = text[pos:m.start()]
        if m.group(1):
            chunk = chunk.rstrip()
        items.append(("text", chunk))
        items.append(("action", m.group(2).strip()))
        pos = m.end()
        if m.group(3):
            rest = text[pos:]
            pos += len(rest) - len(rest.lstrip())
    tail = text[pos:]
    if "{{" in tail:
        raise TemplateError(f"template {text!r}: unclosed action")
    items.append(("text", tail))
    return items


def parse(text: str) -> list[_Node]:
    items = _lex(text)
    nodes, i = _parse_list(items, 0, text, top=True)
    return nodes


@functools.lru_cache(maxsize=16)
def _parsed(text: str) -> list[_Node]:
    """`render` runs one template over every package: parsed once (the nodes are never changed)."""
    return parse(text)


def _parse_list(items, i, src, top=False):  # noqa: ANN001, ANN202
    nodes: list[_Node] = []
    while i < len(items):
        kind, value = items[i]
        if kind == "text":
            if value:
                nodes.append(_Node("text", text=value))
            i += 1
            continue
        if value.startswith("/*"):
            i += 1
            continue
        word = value.split(None, 1)[0] if value else ""
        if word in ("end", "else"):
            if top:
                raise TemplateError(f"template {src!r}: unexpected {{{{{value}}}}}")
            return nodes, i
        if word in ("if", "with"):
            node = _Node(word)
            cond = _tokens(value[len(word):], f"template {src!r}")
            i += 1
            while True:
                body, i = _parse_list(items, i, src)
                node.branches.append((cond, body))
                if i >= len(items):
                    raise TemplateError(f"template {src!r}: {{{{{word}}}}} without {{{{end}}}}")
                closing = items[i][1]
                i += 1
                if closing == "end":
                    break
                rest = closing[len("else"):].strip()
                if rest.startswith("if ") and word == "if":
                    cond = _tokens(rest[3:], f"template {src!r}")
                elif rest == "":
                    cond = None
                else:
                    raise TemplateError(f"template {src!r}: unsupported {{{{{closing}}}}}")
            nodes.append(node)
            continue
        if word in ("range", "template", "define", "block", "break", "continue"):
            raise TemplateError(f"template {src!r}: {{{{{word}}}}} is not supported (no lists to range over here)")
        nodes.append(_Node("expr", expr=_tokens(value, f"template {src!r}")))
        i += 1
    if not top:
        raise TemplateError(f"template {src!r}: missing {{{{end}}}}")
    return nodes, i


def _truth(v: Any) -> bool:
    return bool(v)


def _printf(fmt: str, *args: Any) -> str:
    it = iter(args)

    def one(m: re.Match[str]) -> str:
        verb = m.group(1)
        if verb == "%":
            return "%"
        v = next(it, None)
        if verb == "q":
            return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
        if verb == "d":
            return str(int(v))  # type: ignore[arg-type]
        return _go_str(v)

    return re.sub(r"%([svqd%])", one, fmt)


def _go_str(v: Any) -> str:
    if v is None:
        return "<no value>"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


FUNCS = {
    "eq": lambda a, *bs: any(a == b for b in bs), "ne": lambda a, b: a != b,
    "lt": lambda a, b: a < b, "le": lambda a, b: a <= b, "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b,
    "not": lambda a: not _truth(a), "len": lambda a: len(a),
    "and": lambda *a: next((x for x in a if not _truth(x)), a[-1]),
    "or": lambda *a: next((x for x in a if _truth(x)), a[-1]),
    "print": lambda *a: "".join(_go_str(x) for x in a), "println": lambda *a: " ".join(_go_str(x) for x in a) + "\n",
    "printf": _printf,
}


def _value(tok: tuple[str, str], dot: Any) -> Any:
    kind, v = tok
    if kind == "str":
        return v[1:-1] if v.startswith("`") else bytes(v[1:-1], "utf-8").decode("unicode_escape")
    if kind == "num":
        return int(v)
    if kind == "ident" and v in ("true", "false"):
        return v == "true"
    if kind == "field":
        if v == ".":
            return dot
        cur = dot
        for name in v[1:].split("."):
            if not isinstance(cur, dict) or name not in cur:
                raise TemplateError(f"can't evaluate field {name} (have {', '.join(sorted(dot)) if isinstance(dot, dict) else 'none'})")
            cur = cur[name]
        return cur
    raise TemplateError(f"unexpected {v!r}")


def _eval(tokens: list[tuple[str, str]], dot: Any) -> Any:
    """A pipeline: `cmd | fn args…` passes each result as the next call's last argument."""
    stages: list[list[tuple[str, str]]] = [[]]
    depth = 0
    for t in tokens:
        depth += {"lp": 1, "rp": -1}.get(t[0], 0)
        if t[0] == "pipe" and depth == 0:
            stages.append([])
        else:
            stages[-1].append(t)
    value = _command(stages[0], dot)
    for stage in stages[1:]:
        if not stage or stage[0][0] != "ident":
            raise TemplateError("a pipeline stage must call a function")
        value = _command(stage, dot, extra=(value,))
    return value


def _command(tokens: list[tuple[str, str]], dot: Any, extra: tuple = ()) -> Any:
    if not tokens:
        raise TemplateError("empty action")
    if tokens[0][0] == "ident":
        name = tokens[0][1]
        if name in ("true", "false") and len(tokens) == 1 and not extra:
            return name == "true"
        if name not in FUNCS:
            raise TemplateError(f'function "{name}" not defined (supported: {", ".join(FUNCS)})')
        args, i = [], 1
        while i < len(tokens):
            if tokens[i][0] == "lp":
                depth, j = 1, i + 1
                while j < len(tokens) and depth:
                    depth += {"lp": 1, "rp": -1}.get(tokens[j][0], 0)
                    j += 1
                if depth:
                    raise TemplateError("unbalanced parentheses")
                args.append(_eval(tokens[i + 1:j - 1], dot))
                i = j
            else:
                args.append(_value(tokens[i], dot))
                i += 1
        try:
            return FUNCS[name](*args, *extra)
        except TypeError as e:
            raise TemplateError(f"{name}: {e}") from None
    if tokens[0][0] == "lp" and tokens[-1][0] == "rp":
        return _eval(tokens[1:-1], dot)
    if len(tokens) != 1:
        raise TemplateError(f"unsupported pipeline {' '.join(t[1] for t in tokens)!r}")
    return _value(tokens[0], dot)


def _render(nodes: list[_Node], dot: Any, out: list[str]) -> None:
    for n in nodes:
        if n.kind == "text":
            out.append(n.text)
        elif n.kind == "expr":
            out.append(_go_str(_eval(n.expr, dot)))
        else:
            for cond, body in n.branches:
                if cond is None:
                    _render(body, dot, out)
                    break
                value = _eval(cond, dot)
                if _truth(value):
                    _render(body, value if n.kind == "with" else dot, out)
                    break


def render(text: str, data: dict[str, Any]) -> str:
    """Execute `text` over `data` (field names as in Go: `.Name`)."""
    try:
        out: list[str] = []
        _render(_parsed(text), data, out)
        return "".join(out)
    except TemplateError as e:
        if str(e).startswith("template "):
            raise
        raise TemplateError(f"template {text!r}: {e}") from None
