"""Reusable pipelines: loading `uses:` definitions, compiling steps, flattening them to scripts.

`compile_step` follows melange's `compilePipeline`: the definition is laid over the calling
step (its keys win, the caller's name is kept, maps merge), `with` keys must be declared
inputs, defaults fill empty inputs, the checksum inputs must be hex of the right length,
required inputs must be set, then `${{inputs.*}}` and the build variables are substituted
strictly into `needs`, `working-directory` and `runs`, and Go-quoted into `if`. Nested steps
inherit the parent's resolved map; a child's own `with` wins.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from distroless.config.yaml12 import load as load_yaml
from distroless.errors import ConfigError
from distroless.fsutil import CONFIG_CAP, read_regular
from distroless.melange import schema as s
from distroless.melange.reader import Reader, read_step
from distroless.melange.subst import (
    CondError, SubstError, evaluate, resolve_map, substitute, token)

WORKDIR = "/home/build"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/bin:/usr/sbin:/sbin:/bin"
_SHA_LENGTHS = {"expected-sha256": 64, "expected-sha512": 128, "expected-commit": 40}
_HEX_RE = re.compile(r"^[0-9a-fA-F]*$")


# --- loading definitions -------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Definition:
    step: s.Step
    keys: frozenset[str]  # the keys the file sets (only those are laid over the caller)


@dataclass(slots=True)
class PipelineLibrary:
    """Where `uses: X` is looked up: each `--pipeline-dir` in order, then the built-ins
    shipped with this package (melange's embedded copies)."""

    dirs: tuple[Path, ...] = ()
    builtin: bool = True
    _cache: dict[str, Definition] = field(default_factory=dict, repr=False)

    @classmethod
    def create(cls, dirs: tuple[str | os.PathLike[str], ...] = (), *, builtin: bool = True) -> PipelineLibrary:
        return cls(tuple(Path(d) for d in dirs), builtin)

    def load(self, uses: str) -> Definition:
        """The definition for `uses` (raises ConfigError naming where it was looked for)."""
        if uses in self._cache:
            return self._cache[uses]
        if uses.startswith("/") or ".." in uses.split("/") or "\\" in uses:
            raise ConfigError(f"invalid pipeline name {uses!r}: must be relative and must not contain '..'")
        rel = uses + ".yaml"
        for d in self.dirs:
            path = d / rel
            if path.is_file():
                try:
                    data = read_regular(path, CONFIG_CAP, "pipeline definition")
                except OSError as exc:
                    raise ConfigError(f"{path}: {exc.strerror or exc}") from None
                return self._store(uses, data, str(path))
        if self.builtin:
            ref = resources.files("distroless.melange").joinpath("pipelines", *rel.split("/"))
            if ref.is_file():
                return self._store(uses, ref.read_bytes(), f"<builtin>/{rel}")
        where = ", ".join(str(d) for d in self.dirs) + (", " if self.dirs else "") + "built-in pipelines"
        raise ConfigError(f"could not find 'uses' pipeline {uses!r} (looked in {where})")

    def _store(self, uses: str, data: bytes, filename: str) -> Definition:
        raw, locator = load_yaml(data, filename, scalars="text")
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise locator.error((), "a pipeline definition must be a mapping")
        # melange decodes definitions with plain yaml.Unmarshal: unknown keys are ignored.
        step = read_step(Reader(locator, None, strict=False), raw, ())
        keys = frozenset(locator.key_scalar((k,)).text if locator.key_scalar((k,)) else str(k)
                         for k in raw)
        definition = Definition(step, keys)
        self._cache[uses] = definition
        return definition

    def available(self) -> list[str]:
        """Built-in pipeline names (for listings and docs)."""
        root = resources.files("distroless.melange").joinpath("pipelines")
        out: list[str] = []

        def walk(node: Any, prefix: str) -> None:
            for child in node.iterdir():
                if child.is_dir():
                    walk(child, prefix + child.name + "/")
                elif child.name.endswith(".yaml"):
                    out.append(prefix + child.name[:-5])
        walk(root, "")
        return sorted(out)


def overlay(step: s.Step, definition: Definition) -> s.Step:
    """yaml.Unmarshal of the definition into the calling step: keys it sets replace the
    step's values, maps merge (the definition's keys win); the caller's name is kept."""
    d, keys = definition.step, definition.keys
    out = step
    simple = {"if": "if_", "uses": "uses", "runs": "runs", "pipeline": "pipeline", "needs": "needs",
              "label": "label", "assertions": "required_steps", "working-directory": "working_directory"}
    for key, attr in simple.items():
        if key in keys:
            out = replace(out, **{attr: getattr(d, attr)})
    if "with" in keys and d.with_ is not None:
        out = replace(out, with_=s.fmap({**(out.with_ or {}), **d.with_}))
    if "inputs" in keys:
        out = replace(out, inputs=s.fmap({**out.inputs, **d.inputs}))
    if "environment" in keys:
        out = replace(out, environment=s.fmap({**out.environment, **d.environment}))
    return replace(out, name=step.name)


# --- compiling -----------------------------------------------------------------------------

@dataclass(slots=True)
class Compiler:
    library: PipelineLibrary
    needs: list[str] = field(default_factory=list)

    def compile_all(self, steps: tuple[s.Step, ...], table: Mapping[str, str]) -> tuple[s.Step, ...]:
        """`CompilePipelines`: compile each top-level step, then gather its `needs`."""
        out = []
        for step in steps:
            compiled = self.compile(step, table, None, ())
            self.needs.extend(gather_needs(compiled))
            out.append(drop_needs(compiled))
        return tuple(out)

    def compile(self, step: s.Step, table: Mapping[str, str], parent: Mapping[str, str] | None,
                trail: tuple[str, ...]) -> s.Step:
        name, uses = step.name, step.uses
        caller_with = dict(step.with_ or {})
        origin = step.origin
        trail = trail + (_describe(step),)

        def fail(message: str, *sub: Any) -> ConfigError:
            return _error(origin, trail, message, *sub)

        if uses and not step.pipeline:
            try:
                definition = self.library.load(uses)
            except ConfigError as exc:
                raise fail(str(exc), "uses") from None
            step = overlay(step, definition)
            for key in caller_with:
                if key not in step.inputs:
                    raise fail(f"undefined input {key!r} to pipeline {uses!r}; declared inputs: "
                               f"{', '.join(step.inputs) or 'none'}", "with", key)
        merged: dict[str, str] = dict(parent or {})
        merged.update(caller_with)
        validated = self.validate_with(merged, step.inputs, uses, fail)
        mutated = mutate_with(table, validated, fail)

        def sub(text: str, field_name: str, *, quote: bool = False) -> str:
            try:
                return substitute(text, mutated, quote=quote)
            except SubstError as exc:
                raise fail(f"mutating {field_name}: {exc}", field_name) from None

        needs = tuple(sub(n, "needs") for n in step.needs) if step.needs is not None else None
        workdir = sub(step.working_directory, "working-directory") if step.working_directory else ""
        runs = sub(step.runs, "runs")
        if_ = sub(step.if_, "if", quote=True) if step.if_ else ""
        children = []
        for child in step.pipeline:
            child = replace(child, working_directory=child.working_directory or workdir)
            if child.origin is None:
                child = replace(child, origin=origin)
            children.append(self.compile(child, table, mutated, trail))
        defaults = {k: v.default for k, v in step.inputs.items()}
        cleaned = {}
        for key in validated:
            if key.startswith("${{"):
                continue  # inherited from the parent map, never a real input of this step
            value = mutated.get(token(f"inputs.{key}"), "")
            if value != defaults.get(key, ""):
                cleaned[key] = value
        return replace(step, name=name, with_=s.fmap(cleaned) if cleaned else None,
                       runs=runs, if_=if_, working_directory=workdir, needs=needs,
                       pipeline=tuple(children), inputs=s.EMPTY)

    @staticmethod
    def validate_with(data: dict[str, str], inputs: Mapping[str, s.Input], uses: str,
                      fail: Any) -> dict[str, str]:
        """Defaults for empty inputs, hex checks for checksum/commit inputs, then required."""
        for key, spec in inputs.items():
            if not data.get(key):
                data[key] = spec.default
            value = data[key]
            if value and key in _SHA_LENGTHS:
                if not _HEX_RE.match(value) or len(value) != _SHA_LENGTHS[key]:
                    raise fail(f"input {key!r} of pipeline {uses!r} must be {_SHA_LENGTHS[key]} hex "
                               f"characters, got {value!r}", "with", key)
            if spec.required and not value:
                raise fail(f"required input {key!r} for pipeline {uses!r} is missing", "with")
        return data


def mutate_with(table: Mapping[str, str], with_: Mapping[str, str], fail: Any) -> dict[str, str]:
    """`MutateWith`: the build map plus the inputs as `${{inputs.k}}`, every value resolved.
    Inherited `${{…}}` keys go in first so that the step's own inputs win."""
    raw = dict(table)
    for key, value in with_.items():
        if key.startswith("${{"):
            raw[key] = value
    for key, value in with_.items():
        if not key.startswith("${{"):
            raw[token(f"inputs.{key}")] = value
    try:
        return resolve_map(raw)
    except SubstError as exc:
        raise fail(f"mutating with: {exc}", "with") from None


def gather_needs(step: s.Step) -> list[str]:
    """Packages the step needs, skipping steps whose `if` is false (and their children)."""
    if step.if_ and not _condition(step):
        return []
    out = list(step.needs or ())
    for child in step.pipeline:
        out.extend(gather_needs(child))
    return out


def drop_needs(step: s.Step) -> s.Step:
    """melange clears `needs` on the steps it gathered them from (not under a false `if`)."""
    if step.if_ and not _condition(step):
        return step
    return replace(step, needs=None, pipeline=tuple(drop_needs(c) for c in step.pipeline))


def _condition(step: s.Step) -> bool:
    try:
        return evaluate(step.if_)
    except CondError as exc:
        raise _error(step.origin, (), f"evaluating conditional {step.if_!r}: {exc}", "if") from None


def _describe(step: s.Step) -> str:
    where = step.origin.where() if step.origin else "?"
    return f"{step.identity} ({where})"


def _error(origin: s.Origin | None, trail: tuple[str, ...], message: str, *sub: Any) -> ConfigError:
    # Inside a `uses` definition, also name the recipe steps that led there.
    chain = " <- ".join(reversed(trail[:-1]))
    text = f"{message} [via {chain}]" if chain else message
    if origin is None:
        return ConfigError(text)
    path = origin.path + sub
    while path not in origin.locator and len(path) > len(origin.path):
        path = path[:-1]
    return origin.locator.error(path, text)


# --- flattening to runnable scripts -------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RunnableStep:
    """One `/bin/sh -c` invocation, in run order."""

    name: str  # the step's identity: name, else uses, else "???"
    chain: tuple[str, ...]  # identities of the enclosing steps, outermost first
    script: str  # the full script text passed to /bin/sh -c
    workdir: str
    environment: Mapping[str, str]  # PATH + the step's environment (over the container env)
    runs: str  # the compiled `runs` alone
    where: str = ""  # file:line:col of the step


def workdir_of(step: s.Step) -> str:
    wd = step.working_directory
    if not wd:
        return WORKDIR
    return wd if wd.startswith("/") else posixpath.join(WORKDIR, wd)


def shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def step_script(runs: str, workdir: str, *, debug: bool = False) -> str:
    q = shell_quote(workdir)
    flags = "-exo pipefail" if debug else "-eo pipefail"
    return f"set {flags}\n[ -d {q} ] || mkdir -p {q}\ncd {q}\n{runs}\nexit 0"


def flatten(steps: tuple[s.Step, ...], *, debug: bool = False,
            chain: tuple[str, ...] = ()) -> list[RunnableStep]:
    """Compiled steps -> the scripts melange runs, in order: a step whose `if` is false is
    skipped with its children; a step's own script runs (even with empty `runs`, it creates
    its workdir) before its children; `assertions.required-steps` is checked here since every
    condition is already decidable."""
    out: list[RunnableStep] = []
    for step in steps:
        if step.if_ and not _condition(step):
            continue
        workdir = workdir_of(step)
        out.append(RunnableStep(
            name=step.identity, chain=chain, script=step_script(step.runs, workdir, debug=debug),
            workdir=workdir, environment=s.fmap({"PATH": DEFAULT_PATH, **step.environment}),
            runs=step.runs, where=step.origin.where() if step.origin else ""))
        ran = [c for c in step.pipeline if not c.if_ or _condition(c)]
        out.extend(flatten(step.pipeline, debug=debug, chain=chain + (step.identity,)))
        if step.required_steps is not None and step.required_steps != len(ran):
            raise _error(step.origin, (), f"pipeline did not run the required {step.required_steps} "
                                          f"steps, only {len(ran)}", "assertions")
    return out
