"""YAML 1.2 (core schema) loading with source positions, for apko and melange configs.

PyYAML resolves plain scalars with YAML 1.1 rules (`yes` is a bool, `0o755` a string, `1_000` an
int), while apko and melange read YAML with Go's yaml.v3, which follows 1.2. `Core12Loader` swaps
in the 1.2 core-schema resolver. `load()` composes the node graph and builds plain dicts and
lists itself so that every key and value keeps its file:line:column in a `Locator` side table
(keyed by path tuples such as `("contents", "packages", 2)`), so callers can point at the
offending line without wrapping their data in custom types.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from distroless.config.positions import (  # noqa: F401 (re-exported: yaml12 is where callers look)
    YAML11_FALSE,
    YAML11_TRUE,
    Fields,
    Locator,
    Mark,
    NodePath,
    ScalarInfo,
    _Entry,
    describe,
    field_of,
    format_path,
    struct_fields,
)
from distroless.errors import ConfigError

ScalarMode: TypeAlias = Literal["typed", "text"]

NULL_TAG = "tag:yaml.org,2002:null"
BOOL_TAG = "tag:yaml.org,2002:bool"
INT_TAG = "tag:yaml.org,2002:int"
FLOAT_TAG = "tag:yaml.org,2002:float"
STR_TAG = "tag:yaml.org,2002:str"
MERGE_TAG = "tag:yaml.org,2002:merge"

# YAML 1.2.2 §10.3.2 (core schema) tag resolution, plus `<<` merge keys, which yaml.v3 honours.
_NULL_RE = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL_RE = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT_RE = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT_RE = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_MERGE_RE = re.compile(r"^<<$")

# Billion-laughs guards: aliases and merge keys are expanded into plain containers, so the
# expansion is capped in nodes (each merged pair and merge source counts as one) and in scalar
# text (each use of an aliased scalar counts again). Real recipes and images have a few hundred
# nodes; 100,000 nodes cost about 100 MB here.
DEFAULT_MAX_NODES = 100_000
DEFAULT_MAX_TEXT = 16 << 20
MAX_INT_DIGITS = 4300  # Python's int() limit; Go's int64 needs 19


def _core_int(text: str) -> int:
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)


def _core_float(text: str) -> float:
    lowered = text.lower()
    if lowered in (".nan",):
        return math.nan
    if lowered.lstrip("+-") == ".inf":
        return -math.inf if text.startswith("-") else math.inf
    return float(text)


class Core12Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema implicit typing (usable directly with `yaml.load`)."""

    yaml_implicit_resolvers: dict[Any, list[tuple[str, re.Pattern[str]]]] = {}
    yaml_constructors = dict(yaml.SafeLoader.yaml_constructors)

    def compose_scalar_node(self, anchor: str | None) -> ScalarNode:
        # Remember whether the tag was written out: `!!str 0755` must not be re-typed by callers.
        event = self.peek_event()
        node = super().compose_scalar_node(anchor)
        node.explicit_tag = event.tag not in (None, "!")  # type: ignore[attr-defined]
        return node

    def construct_core_null(self, node: ScalarNode) -> None:
        return None

    def construct_core_bool(self, node: ScalarNode) -> bool:
        value = self.construct_scalar(node)
        if not _BOOL_RE.match(value):
            raise yaml.constructor.ConstructorError(
                None, None, f"{value!r} is not a YAML 1.2 boolean", node.start_mark)
        return value.lower() == "true"

    def construct_core_int(self, node: ScalarNode) -> int:
        value = self.construct_scalar(node)
        if len(value) > MAX_INT_DIGITS:
            raise yaml.constructor.ConstructorError(
                None, None, f"an integer of {len(value)} digits is too large", node.start_mark)
        if not _INT_RE.match(value):
            raise yaml.constructor.ConstructorError(
                None, None, f"{value!r} is not a YAML 1.2 integer", node.start_mark)
        return _core_int(value)

    def construct_core_float(self, node: ScalarNode) -> float:
        value = self.construct_scalar(node)
        if not (_FLOAT_RE.match(value) or _INT_RE.match(value)):
            raise yaml.constructor.ConstructorError(
                None, None, f"{value!r} is not a YAML 1.2 float", node.start_mark)
        return float(_core_int(value)) if _INT_RE.match(value) else _core_float(value)


Core12Loader.add_implicit_resolver(NULL_TAG, _NULL_RE, ["~", "n", "N", ""])
Core12Loader.add_implicit_resolver(BOOL_TAG, _BOOL_RE, list("tTfF"))
Core12Loader.add_implicit_resolver(INT_TAG, _INT_RE, list("-+0123456789"))
Core12Loader.add_implicit_resolver(FLOAT_TAG, _FLOAT_RE, list("-+0123456789."))
Core12Loader.add_implicit_resolver(MERGE_TAG, _MERGE_RE, ["<"])
Core12Loader.add_constructor(NULL_TAG, Core12Loader.construct_core_null)
Core12Loader.add_constructor(BOOL_TAG, Core12Loader.construct_core_bool)
Core12Loader.add_constructor(INT_TAG, Core12Loader.construct_core_int)
Core12Loader.add_constructor(FLOAT_TAG, Core12Loader.construct_core_float)



@dataclass(slots=True)
class _Builder:
    loader: Core12Loader
    locator: Locator
    scalars: ScalarMode
    max_nodes: int
    max_text: int = DEFAULT_MAX_TEXT
    count: int = 0
    text: int = 0
    active: set[int] = field(default_factory=set)

    def mark_of(self, node: Node) -> Mark:
        m = node.start_mark
        return Mark(self.locator.filename, m.line + 1, m.column + 1)

    def info(self, node: ScalarNode) -> ScalarInfo:
        explicit = getattr(node, "explicit_tag", False)
        return ScalarInfo(node.value, node.style is None and not explicit, node.tag)

    def scalar_value(self, node: ScalarNode) -> Any:
        if node.tag == NULL_TAG:
            return None
        if self.scalars == "text":
            return node.value
        if node.tag not in self.loader.yaml_constructors:
            return node.value  # unknown local tags (`!foo x`): keep the text, as yaml.v3 does
        try:
            return self.loader.construct_object(node, deep=True)
        except ValueError as exc:  # Python's own int()/float() limits
            raise ConfigError(f"{self.mark_of(node)}: {exc}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{self.mark_of(node)}: {getattr(exc, 'problem', exc)}") from None

    def tick(self, node: Node, n: int = 1) -> None:
        self.count += n
        if self.count > self.max_nodes:
            raise ConfigError(f"{self.mark_of(node)}: document expands to more than "
                              f"{self.max_nodes} nodes (alias or merge-key bomb?)")

    def build(self, node: Node, path: NodePath, key_node: ScalarNode | None, key_mark: Mark | None) -> Any:
        self.tick(node)
        key_info = self.info(key_node) if key_node is not None else None
        if isinstance(node, ScalarNode):
            self.text += len(node.value)
            if self.text > self.max_text:
                raise ConfigError(f"{self.mark_of(node)}: document expands to more than "
                                  f"{self.max_text} characters of text (alias bomb?)")
            self.locator._record(path, _Entry(self.mark_of(node), key_mark, self.info(node), key_info))
            return self.scalar_value(node)
        if id(node) in self.active:
            raise ConfigError(f"{self.mark_of(node)}: {format_path(path)}: recursive alias")
        self.active.add(id(node))
        try:
            self.locator._record(path, _Entry(self.mark_of(node), key_mark, None, key_info))
            if isinstance(node, SequenceNode):
                return [self.build(child, path + (i,), None, None) for i, child in enumerate(node.value)]
            return self.mapping(node, path)
        finally:
            self.active.discard(id(node))

    def key_of(self, node: Node) -> Any:
        if not isinstance(node, ScalarNode):
            raise ConfigError(f"{self.mark_of(node)}: mapping keys must be scalars")
        value = self.scalar_value(node)
        try:
            hash(value)
        except TypeError:
            raise ConfigError(f"{self.mark_of(node)}: unhashable mapping key") from None
        return value

    def mapping(self, node: MappingNode, path: NodePath) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        seen: dict[Any, Mark] = {}
        explicit, merged = self.split_merges(node)
        for key_node, value_node in explicit:
            key = self.key_of(key_node)
            kmark = self.mark_of(key_node)
            if key in seen:
                # yaml.v3 rejects duplicate keys; PyYAML would silently keep the last one.
                raise ConfigError(f"{kmark}: {format_path(path + (key,))}: duplicate key "
                                  f"(first defined at line {seen[key].line})")
            seen[key] = kmark
            out[key] = self.build(value_node, path + (key,), key_node, kmark)
        # Merge keys: explicit keys win, then earlier merge sources win over later ones.
        for key_node, value_node in merged:
            key = self.key_of(key_node)
            if key not in out:
                out[key] = self.build(value_node, path + (key,), key_node, self.mark_of(key_node))
        return out

    def split_merges(self, node: MappingNode) -> tuple[list[tuple[Node, Node]], list[tuple[Node, Node]]]:
        """The mapping's own pairs, and the pairs its `<<` sources contribute (flattened)."""
        explicit: list[tuple[Node, Node]] = []
        merged: list[tuple[Node, Node]] = []
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag == MERGE_TAG:
                for src in self.merge_sources(value_node):
                    self.tick(src)
                    if id(src) in self.active:
                        raise ConfigError(f"{self.mark_of(src)}: recursive merge")
                    self.active.add(id(src))
                    try:
                        own, inherited = self.split_merges(src)
                    finally:
                        self.active.discard(id(src))
                    self.tick(src, len(own) + len(inherited))
                    merged.extend(own + inherited)
            else:
                explicit.append((key_node, value_node))
        return explicit, merged

    def merge_sources(self, node: Node) -> list[MappingNode]:
        if isinstance(node, MappingNode):
            return [node]
        if isinstance(node, SequenceNode) and all(isinstance(n, MappingNode) for n in node.value):
            return list(node.value)
        raise ConfigError(f"{self.mark_of(node)}: a merge key (<<) needs a mapping or a list of mappings")


def _one_line(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.reader.ReaderError):
        char = exc.character
        shown = f"0x{char:02x}" if isinstance(char, int) else f"U+{ord(char):04X}"
        return f"character {exc.position}: {exc.reason} ({shown})"
    return " ".join(str(exc).split())


def load(source: str | bytes, filename: str = "<string>", *, scalars: ScalarMode = "typed",
         max_nodes: int = DEFAULT_MAX_NODES) -> tuple[Any, Locator]:
    """Parse the first YAML document of `source` (as yaml.v3's Decoder does) into plain dicts,
    lists and scalars, plus a `Locator` with the position of every node.

    `scalars="typed"` applies the YAML 1.2 core schema (null, bool, int, float, str).
    `scalars="text"` keeps every non-null scalar as the text written (`4.10` stays "4.10");
    the per-path `ScalarInfo` still says whether it was plain, so callers can type fields.
    An empty document loads as None.
    """
    locator = Locator(filename)
    try:
        loader = Core12Loader(source)  # decodes bytes (UTF-8/16 by BOM) right away
    except yaml.YAMLError as exc:
        raise ConfigError(f"{filename}: {_one_line(exc)}") from None
    try:
        node = loader.get_node() if loader.check_node() else None
        if node is None:
            return None, locator
        builder = _Builder(loader, locator, scalars, max_nodes)
        return builder.build(node, (), None, None), locator
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{filename}:{mark.line + 1}:{mark.column + 1}" if mark else filename
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"{where}: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{filename}: {_one_line(exc)}") from None
    except RecursionError:
        raise ConfigError(f"{filename}: YAML nesting is too deep") from None
    finally:
        loader.dispose()
