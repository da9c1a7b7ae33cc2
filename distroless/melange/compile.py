"""Compiling a parsed recipe for one architecture (melange's `Build.Compile` and what the
build needs next): the compile-time variable map, `uses` inlined with inputs resolved,
`if` evaluated, `needs` added to the build (and test) environments, false-`if` subpackages
dropped; plus the per-package APK metadata and scriptlets, the runnable scripts, and the
`.melange.yaml` text.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from distroless import arch as arch_table
from distroless.apk.model import Package
import distroless.config as apko
from distroless.errors import ConfigError, DistrolessError
from distroless.melange import schema as s
from distroless.melange.pipeline import Compiler, PipelineLibrary, RunnableStep, flatten
from distroless.melange.recipe import apply_build_options, apply_var_transforms
from distroless.melange.subst import CondError, SubstError, evaluate, output_budget, resolve_map, substitute, token

OUT_DIR = "/home/build/melange-out"


class ArchSkipped(DistrolessError):
    """The recipe's target-architecture excludes the requested arch (melange skips it)."""


# --- architectures ---------------------------------------------------------------------

def triplet(arch: str, flavor: str, *, rust: bool = False) -> str:
    """apko's ToTriplet / ToRustTriplet (from `distroless.arch`)."""
    oci = arch_table.parse(arch)
    entry = arch_table.BY_NAME.get(oci)
    pattern = entry and (entry.rust_triplet if rust else entry.triplet)
    if not pattern:  # riscv64, loong64, …: "<name>-unknown-linux-<flavor>"
        return f"{oci}-unknown-linux-{flavor}"
    return pattern.format(flavor)


def builds_for_arch(recipe: s.Recipe, arch: str) -> bool:
    """The target-architecture filter: empty (or the deprecated `all`) means every arch."""
    targets = recipe.package.target_architecture
    if not targets or "all" in targets:
        return True
    want = apko.parse_architecture(arch)
    return any(apko.parse_architecture(t) == want for t in targets)


# --- the compile-time variable map -----------------------------------------------------------

def substitution_map(recipe: s.Recipe, arch: str, *, flavor: str = "gnu",
                     build_options: tuple[str, ...] = ()) -> dict[str, str]:
    """`NewSubstitutionMap` for the main package (note: no package.description)."""
    pkg = recipe.package
    oci = apko.parse_architecture(arch)
    out = {
        token("package.name"): pkg.name,
        token("package.version"): pkg.version,
        token("package.epoch"): str(pkg.epoch),
        token("package.full-version"): pkg.full_version,
        token("package.srcdir"): "/home/build",
        token("targets.outdir"): OUT_DIR,
        token("targets.destdir"): f"{OUT_DIR}/{pkg.name}",
        token("targets.contextdir"): f"{OUT_DIR}/{pkg.name}",
        token("context.name"): pkg.name,
        token("host.triplet.gnu"): triplet(oci, flavor),
        token("host.triplet.rust"): triplet(oci, flavor, rust=True),
        token("cross.triplet.gnu.glibc"): triplet(oci, "gnu"),
        token("cross.triplet.gnu.musl"): triplet(oci, "musl"),
        token("cross.triplet.rust.glibc"): triplet(oci, "gnu", rust=True),
        token("cross.triplet.rust.musl"): triplet(oci, "musl", rust=True),
        token("build.arch"): apko.arch_to_apk(oci),
        token("build.goarch"): oci,
    }
    out.update(_compile_vars(recipe))
    apply_var_transforms(out, recipe.var_transforms)
    for name in recipe.package_names():
        out[token(f"targets.package.{name}")] = f"{OUT_DIR}/{name}"
    for name in recipe.options:
        out[token(f"options.{name}.enabled")] = "false"
    for name in build_options:
        out[token(f"options.{name}.enabled")] = "true"
    return out


def _compile_vars(recipe: s.Recipe) -> dict[str, str]:
    """`GetVarsFromConfig`: a var may only refer to other vars (melange resolves them in
    random order against the vars seen so far; here to a fixed point)."""
    raw = {token(f"vars.{k}"): v for k, v in recipe.vars.items()}
    try:
        return resolve_map(raw)
    except SubstError as exc:
        where = recipe.origin
        raise (where.error(f"resolving vars: {exc}", "vars") if where else ConfigError(str(exc))) from None


def subpackage_map(table: Mapping[str, str], name: str) -> dict[str, str]:
    out = dict(table)
    out[token("subpkg.name")] = name
    out[token("context.name")] = name
    out[token("targets.subpkgdir")] = f"{OUT_DIR}/{name}"
    out[token("targets.contextdir")] = f"{OUT_DIR}/{name}"
    return out


# --- results ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PackageOutput:
    """What is needed to emit one .apk: its metadata, scriptlets and own build scripts."""

    name: str
    apk: Package  # depends/provides are the configured ones (SCA adds more later)
    licenses: tuple[str, ...]  # one `license =` line per copyright entry, config order
    scriptlets: Mapping[str, bytes]  # control-member names (".pre-install", …) -> content
    replaces_priority: str
    options: s.PackageOptions | None
    checks: s.Checks
    setcap: tuple[s.Capability, ...]
    steps: tuple[RunnableStep, ...]  # this package's pipeline (the main one for the origin)
    test_steps: tuple[RunnableStep, ...]
    test_environment: apko.ImageConfig | None
    is_main: bool


@dataclass(frozen=True, slots=True)
class CompiledRecipe:
    recipe: s.Recipe  # the compiled configuration (what .melange.yaml shows)
    arch: str  # apk spelling
    substitutions: Mapping[str, str] = field(repr=False)
    packages: tuple[PackageOutput, ...] = ()  # the origin first, then kept subpackages

    @property
    def environment(self) -> apko.ImageConfig:
        return self.recipe.environment

    @property
    def main(self) -> PackageOutput:
        return self.packages[0]

    def melange_yaml(self) -> str:
        return render_yaml(self.recipe)

    def steps(self) -> Iterator[s.Step]:
        """Every step of the package's and the subpackages' pipelines, nested ones included."""
        def walk(steps: Sequence[s.Step]) -> Iterator[s.Step]:
            for st in steps:
                yield st
                yield from walk(st.pipeline)

        yield from walk(self.recipe.pipeline)
        for sp in self.recipe.subpackages:
            yield from walk(sp.pipeline)


@dataclass(frozen=True, slots=True)
class CompileOptions:
    arch: str = "x86_64"  # any apk or OCI spelling
    build_options: tuple[str, ...] = ()
    pipeline_dirs: tuple[str | os.PathLike[str], ...] = ()
    libc_flavor: str = "gnu"  # --override-host-triplet-libc-substitution-flavor
    include_tests: bool = True  # compile test pipelines (their `uses` must then resolve)
    debug: bool = False  # `set -x` in the scripts


def compile_recipe(recipe: s.Recipe, options: CompileOptions = CompileOptions(),
                   library: PipelineLibrary | None = None) -> CompiledRecipe:
    """Compile `recipe` (from `load_recipe`) for `options.arch`."""
    try:
        with output_budget():
            return _compile(recipe, options, library)
    except SubstError as exc:
        raise ConfigError(f"{recipe.filename}: {exc}") from None


def _compile(recipe: s.Recipe, options: CompileOptions, library: PipelineLibrary | None) -> CompiledRecipe:
    if not builds_for_arch(recipe, options.arch):
        raise ArchSkipped(f"{recipe.filename}: {recipe.package.name} does not build for "
                          f"{options.arch} (target-architecture: "
                          f"{', '.join(recipe.package.target_architecture)})")
    library = library or PipelineLibrary.create(tuple(options.pipeline_dirs))
    recipe = apply_build_options(recipe, options.build_options)
    table = substitution_map(recipe, options.arch, flavor=options.libc_flavor,
                             build_options=options.build_options)
    build = Compiler(library)
    main_steps = build.compile_all(recipe.pipeline, table)
    subs: list[s.Subpackage] = []
    for sp in recipe.subpackages:
        sub_table = subpackage_map(table, sp.name)
        if_ = _quoted_if(sp, sub_table)
        steps = build.compile_all(sp.pipeline, sub_table)
        test = sp.test
        if test is not None and options.include_tests:
            test = _compile_test(test, sub_table, library, extra=(sp.name,))
        subs.append(replace(sp, if_=if_, pipeline=steps, test=test))
    env = recipe.environment
    env = replace(env, contents=replace(env.contents, packages=env.contents.packages + tuple(build.needs)))
    test = recipe.test
    if test is not None and options.include_tests:
        test = _compile_test(test, table, library, extra=(recipe.package.name,))
    kept = tuple(sp for sp in subs if not sp.if_ or _sub_condition(sp))
    compiled = replace(recipe, environment=env, pipeline=main_steps, subpackages=kept, test=test)
    arch = apko.arch_to_apk(options.arch)
    packages = [_package_output(compiled, None, arch, options)]
    packages += [_package_output(compiled, sp, arch, options) for sp in kept]
    return CompiledRecipe(compiled, arch, table, tuple(packages))


def _quoted_if(sp: s.Subpackage, table: Mapping[str, str]) -> str:
    if not sp.if_:
        return ""
    try:
        return substitute(sp.if_, table, quote=True)
    except SubstError as exc:
        raise _where(sp.origin, f"mutating subpackage {sp.name!r} if: {exc}", "if") from None


def _sub_condition(sp: s.Subpackage) -> bool:
    try:
        return evaluate(sp.if_)
    except CondError as exc:
        raise _where(sp.origin, f"evaluating subpackage {sp.name!r} condition: {exc}", "if") from None


def _where(origin: s.Origin | None, message: str, *sub: Any) -> ConfigError:
    if origin is None:
        return ConfigError(message)
    path = origin.path + sub
    return origin.locator.error(path if path in origin.locator else origin.path, message)


def _compile_test(test: s.Test, table: Mapping[str, str], library: PipelineLibrary,
                  extra: tuple[str, ...]) -> s.Test:
    """Test steps compile with the package's map; the package under test and the steps'
    needs join the test environment, sorted and de-duplicated."""
    c = Compiler(library)
    steps = c.compile_all(test.pipeline, table)
    env = test.environment
    packages = tuple(sorted(set(env.contents.packages + extra + tuple(c.needs))))
    env = replace(env, contents=replace(env.contents, packages=packages))
    return replace(test, environment=env, pipeline=steps)


def _package_output(recipe: s.Recipe, sp: s.Subpackage | None, arch: str,
                    options: CompileOptions) -> PackageOutput:
    pkg = recipe.package
    deps = sp.dependencies if sp else pkg.dependencies
    scriptlets = sp.scriptlets if sp else pkg.scriptlets
    test = sp.test if sp else recipe.test
    licenses = tuple(cp.license for cp in pkg.copyright)
    apk = Package(
        name=sp.name if sp else pkg.name, version=pkg.full_version, arch=arch,
        description=sp.description if sp else pkg.description,
        url=sp.url if sp else pkg.url, commit=sp.commit if sp else pkg.commit,
        origin=pkg.name, license=licenses[0] if licenses else "",
        depends=list(deps.runtime), provides=list(deps.provides), replaces=list(deps.replaces),
        provider_priority=int(deps.provider_priority) if deps.provider_priority else 0,
        triggers=list(scriptlets.trigger.paths) if scriptlets else [],
    )
    steps = flatten(sp.pipeline if sp else recipe.pipeline, debug=options.debug)
    test_steps = flatten(test.pipeline, debug=options.debug) if test and options.include_tests else []
    return PackageOutput(
        name=apk.name, apk=apk, licenses=licenses, scriptlets=scriptlet_files(scriptlets),
        replaces_priority=deps.replaces_priority, options=sp.options if sp else pkg.options,
        checks=sp.checks if sp else pkg.checks, setcap=() if sp else pkg.setcap,
        steps=tuple(steps), test_steps=tuple(test_steps),
        test_environment=test.environment if test else None, is_main=sp is None)


def scriptlet_files(sc: s.Scriptlets | None) -> dict[str, bytes]:
    """Control-member scriptlets, by entry name, only those that are set."""
    if sc is None:
        return {}
    pairs = ((".pre-install", sc.pre_install), (".post-install", sc.post_install),
             (".pre-deinstall", sc.pre_deinstall), (".post-deinstall", sc.post_deinstall),
             (".pre-upgrade", sc.pre_upgrade), (".post-upgrade", sc.post_upgrade),
             (".trigger", sc.trigger.script))
    return {name: text.encode() for name, text in pairs if text}


# --- .melange.yaml -------------------------------------------------------------------------

def _put(out: dict[str, Any], key: str, value: Any) -> None:
    """omitempty."""
    if value is None or value == "" or value is False or value == 0 and not isinstance(value, bool):
        return
    if isinstance(value, (list, tuple, dict, Mapping)) and not value:
        return
    out[key] = list(value) if isinstance(value, tuple) else value


def _deps(d: s.Dependencies) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _put(out, "runtime", d.runtime)
    _put(out, "provides", d.provides)
    _put(out, "replaces", d.replaces)
    _put(out, "provider-priority", d.provider_priority)
    _put(out, "replaces-priority", d.replaces_priority)
    return out


def _opts(o: s.PackageOptions | None) -> dict[str, Any] | None:
    if o is None:
        return None
    out: dict[str, Any] = {}
    for key, value in zip(s.PACKAGE_OPTION_KEYS, (o.no_provides, o.no_depends, o.no_commands,
                                                   o.no_versioned_shlib_deps)):
        _put(out, key, value)
    return out


def _scriptlets(sc: s.Scriptlets | None) -> dict[str, Any] | None:
    if sc is None:
        return None
    out: dict[str, Any] = {}
    trigger: dict[str, Any] = {}
    _put(trigger, "script", sc.trigger.script)
    _put(trigger, "paths", sc.trigger.paths)
    _put(out, "trigger", trigger)
    for key, value in zip(s.SCRIPTLET_KEYS[1:], (sc.pre_install, sc.post_install, sc.pre_deinstall,
                                                 sc.post_deinstall, sc.pre_upgrade, sc.post_upgrade)):
        _put(out, key, value)
    return out


def _copyright(cp: s.Copyright) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _put(out, "paths", cp.paths)
    _put(out, "attestation", cp.attestation)
    _put(out, "license", cp.license)
    _put(out, "license-path", cp.license_path)
    _put(out, "detection-override", cp.detection_override)
    _put(out, "operator", cp.operator)
    _put(out, "licenses", [_copyright(c) for c in cp.licenses])
    return out


def _resources(r: s.Resources | None) -> dict[str, Any] | None:
    if r is None:
        return None
    out: dict[str, Any] = {}
    for key in s.RESOURCES_KEYS:
        _put(out, key, getattr(r, key))
    return out


def _step(p: s.Step) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _put(out, "if", p.if_)
    _put(out, "name", p.name)
    _put(out, "uses", p.uses)
    _put(out, "with", dict(p.with_ or {}))
    _put(out, "runs", p.runs)
    _put(out, "pipeline", [_step(c) for c in p.pipeline])
    _put(out, "inputs", {k: {kk: vv for kk, vv in (("description", v.description),
                                                   ("default", v.default),
                                                   ("required", v.required)) if vv}
                         for k, v in p.inputs.items()})
    if p.needs:
        out["needs"] = {"packages": list(p.needs)}
    _put(out, "label", p.label)
    if p.required_steps is not None:
        out["assertions"] = {"required-steps": p.required_steps} if p.required_steps else {}
    _put(out, "working-directory", p.working_directory)
    _put(out, "environment", dict(p.environment))
    return out


def _prune(value: Any) -> Any:
    if isinstance(value, dict):
        out = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, "", [], {})}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def _image(c: apko.ImageConfig) -> dict[str, Any]:
    return _prune(apko.apko_json_dict(c))


def _test(t: s.Test | None) -> dict[str, Any] | None:
    if t is None:
        return None
    out: dict[str, Any] = {}
    _put(out, "environment", _image(t.environment))
    out["pipeline"] = [_step(p) for p in t.pipeline]
    return out


def recipe_dict(r: s.Recipe) -> dict[str, Any]:
    """The configuration as plain data, keys in melange's struct order, empty fields left
    out (yaml omitempty; name, version and epoch are always present)."""
    p = r.package
    pkg: dict[str, Any] = {"name": p.name, "version": p.version, "epoch": p.epoch}
    _put(pkg, "description", p.description)
    _put(pkg, "annotations", dict(p.annotations))
    _put(pkg, "url", p.url)
    _put(pkg, "commit", p.commit)
    _put(pkg, "target-architecture", p.target_architecture)
    _put(pkg, "copyright", [_copyright(c) for c in p.copyright])
    _put(pkg, "dependencies", _deps(p.dependencies))
    _put(pkg, "options", _opts(p.options))
    _put(pkg, "scriptlets", _scriptlets(p.scriptlets))
    _put(pkg, "checks", {"disabled": list(p.checks.disabled)} if p.checks.disabled else None)
    _put(pkg, "cpe", {k: getattr(p.cpe, k) for k in s.CPE_KEYS if getattr(p.cpe, k)})
    _put(pkg, "setcap", [{k: v for k, v in (("path", c.path), ("add", dict(c.add)),
                                             ("reason", c.reason)) if v} for c in p.setcap])
    _put(pkg, "timeout", p.timeout)
    _put(pkg, "resources", _resources(p.resources))
    _put(pkg, "test-resources", _resources(p.test_resources))
    out: dict[str, Any] = {"package": pkg}
    _put(out, "environment", _image(r.environment))
    _put(out, "capabilities", {k: list(v) for k, v in (("add", r.capabilities.add),
                                                        ("drop", r.capabilities.drop)) if v})
    _put(out, "pipeline", [_step(x) for x in r.pipeline])
    subs = []
    for sp in r.subpackages:
        d: dict[str, Any] = {}
        _put(d, "if", sp.if_)
        _put(d, "range", sp.range)
        d["name"] = sp.name
        _put(d, "pipeline", [_step(x) for x in sp.pipeline])
        _put(d, "dependencies", _deps(sp.dependencies))
        _put(d, "options", _opts(sp.options))
        _put(d, "scriptlets", _scriptlets(sp.scriptlets))
        _put(d, "description", sp.description)
        _put(d, "url", sp.url)
        _put(d, "commit", sp.commit)
        _put(d, "checks", {"disabled": list(sp.checks.disabled)} if sp.checks.disabled else None)
        _put(d, "test", _test(sp.test))
        subs.append(d)
    _put(out, "subpackages", subs)
    _put(out, "data", [{"name": d.name, "items": dict(d.items)} for d in r.data])
    _put(out, "update", dict(r.update))
    _put(out, "vars", dict(r.vars))
    _put(out, "var-transforms", [{"from": t.from_, "match": t.match, "replace": t.replace,
                                  "to": t.to} for t in r.var_transforms])
    _put(out, "options", {k: _prune({"vars": dict(o.vars), "environment": {"contents": {"packages": {
        "add": list(o.packages_add), "remove": list(o.packages_remove)}}}})
        for k, o in r.options.items()})
    _put(out, "test", _test(r.test))
    return out


class _Dumper(yaml.SafeDumper):
    """Block sequences indented under their key, multi-line strings as literal blocks."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> Any:
        return super().increase_indent(flow, False)


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value and all(ch == "\n" or ch == "\t" or ch >= " " for ch in value) \
            and not any(line != line.rstrip(" ") for line in value.split("\n")):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str)


def render_yaml(recipe: s.Recipe) -> str:
    """`.melange.yaml`: the compiled configuration, 2-space indented, schema key order."""
    return yaml.dump(recipe_dict(recipe), Dumper=_Dumper, sort_keys=False, indent=2,
                     allow_unicode=True, default_flow_style=False, width=1 << 16)
