"""Loading a melange recipe the way `melange build` parses it (`ParseConfiguration`).

Steps, in melange's order: strict decode; `--vars-file` merged over `vars`; the parse-time
exact-token replacement of `package.*`, `vars.*` and var-transforms over nearly every string;
`range` subpackages cloned per data item (keys sorted bytewise); the build user/group added;
environment defaults; the strict pass (undefined variables are errors) over dependencies,
priorities and package lists; `working-directory`/`environment` pushed down into nested steps;
then validation.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import distroless.config as apko
from distroless.config.yaml12 import load as load_yaml
from distroless.fsutil import CONFIG_CAP, read_regular
from distroless.errors import ConfigError
from distroless.melange import schema as s
from distroless.melange.reader import Reader, read_recipe
from distroless.melange.subst import (
    SubstError, TransformError, apply_transform, output_budget, replace_exact, substitute, token)

BUILD_USER = "build"
BUILD_UID = 1000
# Environment variables melange sets when the recipe leaves them empty.
ENV_DEFAULTS: tuple[tuple[str, str], ...] = (
    ("HOME", "/home/build"),
    ("GOPATH", "/home/build/.cache/go"),
    ("GOMODCACHE", "/var/cache/melange/gomodcache"),
    ("UV_CACHE_DIR", "/var/cache/melange/uv"),
    ("PIP_CACHE_DIR", "/var/cache/melange/pip"),
    ("COMPOSER_CACHE_DIR", "/var/cache/melange/composer"),
    ("npm_config_cache", "/var/cache/melange/npm"),
)
NAME_RE = re.compile(r"^[a-zA-Z\d][a-zA-Z\d+_.-]*$")
CPE_FIELD_RE = re.compile(r"^[a-z\d][a-z\d+_.-]*$")
VALID_CAPABILITIES = ("cap_net_bind_service", "cap_net_admin", "cap_net_raw", "cap_ipc_lock",
                      "cap_sys_admin")


# --- the parse-time variable map -----------------------------------------------------------

def base_map(package: s.PackageSpec, vars_: Mapping[str, str]) -> dict[str, str]:
    """`buildConfigMap`: package.* (with description and full-version) and raw vars."""
    out = {
        token("package.name"): package.name,
        token("package.version"): package.version,
        token("package.description"): package.description,
        token("package.epoch"): str(package.epoch),
        token("package.full-version"): package.full_version,
    }
    for key, value in vars_.items():
        out[token(f"vars.{key}")] = value
    return out


def apply_var_transforms(table: dict[str, str], transforms: tuple[s.VarTransform, ...]) -> None:
    """`PerformVarSubstitutions`: each transform's `from` is substituted strictly against the
    map so far, then regex-replaced; the result becomes `${{vars.<to>}}`."""
    for t in transforms:
        where = t.origin
        try:
            value = substitute(t.from_, table)
        except SubstError as exc:
            raise _located(where, ("from",), f"applying variable substitutions: {exc}") from None
        try:
            table[token(f"vars.{t.to}")] = apply_transform(value, t.match, t.replace)
        except TransformError as exc:
            raise _located(where, ("match",), str(exc)) from None


def _located(origin: s.Origin | None, sub: tuple[Any, ...], message: str) -> ConfigError:
    return origin.error(message, *sub) if origin else ConfigError(message)


# --- structural rewriting ------------------------------------------------------------------

Fn = Callable[[str], str]


def _map(fn: Fn, m: Mapping[str, str]) -> Mapping[str, str]:
    return s.fmap({k: fn(v) for k, v in m.items()})


def map_step(fn: Fn, step: s.Step) -> s.Step:
    """The parse-time fields of a step: name, with values, runs, needs, if, working-directory
    and environment values (not uses, label, inputs or assertions)."""
    return replace(
        step, name=fn(step.name),
        with_=_map(fn, step.with_) if step.with_ is not None else None,
        runs=fn(step.runs), pipeline=tuple(map_step(fn, c) for c in step.pipeline),
        needs=tuple(fn(n) for n in step.needs) if step.needs is not None else None,
        if_=fn(step.if_), working_directory=fn(step.working_directory),
        environment=_map(fn, step.environment))


def map_dependencies(fn: Fn, d: s.Dependencies) -> s.Dependencies:
    return s.Dependencies(tuple(map(fn, d.runtime)), tuple(map(fn, d.provides)),
                          tuple(map(fn, d.replaces)), fn(d.provider_priority),
                          fn(d.replaces_priority))


def map_scriptlets(fn: Fn, sc: s.Scriptlets | None) -> s.Scriptlets | None:
    if sc is None:
        return None
    return s.Scriptlets(s.Trigger(fn(sc.trigger.script), tuple(map(fn, sc.trigger.paths))),
                        fn(sc.pre_install), fn(sc.post_install), fn(sc.pre_deinstall),
                        fn(sc.post_deinstall), fn(sc.pre_upgrade), fn(sc.post_upgrade))


def map_image(fn: Fn, c: apko.ImageConfig) -> apko.ImageConfig:
    """`replaceImageConfig`: contents lists, entrypoint, cmd, stop-signal, work-dir,
    environment and annotation values, vcs-url and volumes (accounts/archs/paths are not)."""
    ct = c.contents
    e = c.entrypoint
    return replace(
        c,
        contents=replace(ct, build_repositories=tuple(map(fn, ct.build_repositories)),
                         runtime_repositories=tuple(map(fn, ct.runtime_repositories)),
                         repositories=tuple(map(fn, ct.repositories)),
                         keyring=tuple(map(fn, ct.keyring)), packages=tuple(map(fn, ct.packages))),
        entrypoint=replace(e, command=fn(e.command), shell_fragment=fn(e.shell_fragment),
                           services=_map(fn, e.services) if e.services is not None else None),
        cmd=fn(c.cmd), stop_signal=fn(c.stop_signal), work_dir=fn(c.work_dir),
        environment=_map(fn, c.environment), vcs_url=fn(c.vcs_url),
        annotations=_map(fn, c.annotations), volumes=tuple(map(fn, c.volumes)))


def map_test(fn: Fn, t: s.Test | None) -> s.Test | None:
    if t is None:
        return None
    return replace(t, environment=map_image(fn, t.environment),
                   pipeline=tuple(map_step(fn, p) for p in t.pipeline))


def map_subpackage(fn: Fn, sp: s.Subpackage) -> s.Subpackage:
    return replace(
        sp, if_=fn(sp.if_), name=fn(sp.name), pipeline=tuple(map_step(fn, p) for p in sp.pipeline),
        dependencies=map_dependencies(fn, sp.dependencies),
        scriptlets=map_scriptlets(fn, sp.scriptlets), description=fn(sp.description),
        url=fn(sp.url), test=map_test(fn, sp.test))


# --- parse ---------------------------------------------------------------------------------

def parse_recipe(source: str | bytes, filename: str = "<string>") -> s.Recipe:
    """Strictly decode a recipe without any substitution (the raw configuration)."""
    data, locator = load_yaml(source, filename, scalars="text")
    typed, _ = load_yaml(source, filename, scalars="typed")
    return read_recipe(Reader(locator, typed), data)


def load_recipe(path: str | os.PathLike[str], *, commit: str = "",
                vars_overrides: Mapping[str, str] | None = None) -> s.Recipe:
    """Read and parse-time-process a recipe file (see `prepare_recipe`)."""
    p = Path(path)
    try:
        source = read_regular(p, CONFIG_CAP, "recipe")
    except OSError as exc:
        raise ConfigError(f"{p}: {exc.strerror or exc}") from None
    return prepare_recipe(parse_recipe(source, str(p)), commit=commit, vars_overrides=vars_overrides)


def load_recipe_text(source: str | bytes, filename: str = "<string>", *, commit: str = "",
                     vars_overrides: Mapping[str, str] | None = None) -> s.Recipe:
    return prepare_recipe(parse_recipe(source, filename), commit=commit, vars_overrides=vars_overrides)


def prepare_recipe(raw: s.Recipe, *, commit: str = "",
                   vars_overrides: Mapping[str, str] | None = None) -> s.Recipe:
    """Everything `ParseConfiguration` does after decoding. `commit` stands for
    `--git-commit` (used when the package sets none); `vars_overrides` for `--vars-file`."""
    try:
        with output_budget():
            return _prepare(raw, commit, vars_overrides)
    except SubstError as exc:  # only the output caps reach here; references are checked later
        raise ConfigError(f"{raw.filename}: {exc}") from None


def _prepare(raw: s.Recipe, commit: str, vars_overrides: Mapping[str, str] | None) -> s.Recipe:
    recipe = raw
    if vars_overrides:
        recipe = replace(recipe, vars=s.fmap({**recipe.vars, **vars_overrides}))
    table = base_map(recipe.package, recipe.vars)
    apply_var_transforms(table, recipe.var_transforms)

    def fn(text: str) -> str:
        return replace_exact(text, table)

    pkg = recipe.package
    pkg = replace(
        pkg, name=fn(pkg.name), version=fn(pkg.version), description=fn(pkg.description),
        annotations=_map(fn, pkg.annotations), url=fn(pkg.url), commit=pkg.commit or commit,
        target_architecture=tuple(map(fn, pkg.target_architecture)),
        dependencies=map_dependencies(fn, pkg.dependencies),
        scriptlets=map_scriptlets(fn, pkg.scriptlets))
    recipe = replace(recipe, package=pkg, pipeline=tuple(map_step(fn, p) for p in recipe.pipeline))
    recipe = replace(recipe, subpackages=_expand_subpackages(recipe, fn),
                     environment=map_image(fn, recipe.environment),
                     test=map_test(fn, recipe.test), data=())
    recipe = _add_build_user(recipe)
    recipe = replace(recipe, environment=_with_env_defaults(recipe.environment))
    recipe = _strict_pass(recipe)
    recipe = replace(recipe, pipeline=tuple(propagate(p) for p in recipe.pipeline),
                     subpackages=tuple(replace(sp, pipeline=tuple(propagate(p) for p in sp.pipeline))
                                       for sp in recipe.subpackages))
    validate(recipe)
    return recipe


def _expand_subpackages(recipe: s.Recipe, fn: Fn) -> tuple[s.Subpackage, ...]:
    datas = {d.name: d.items for d in recipe.data}
    out: list[s.Subpackage] = []
    for sp in recipe.subpackages:
        sp = replace(sp, commit=sp.commit or recipe.package.commit)
        if not sp.range:
            out.append(replace(map_subpackage(fn, sp), setcap=sp.setcap))
            continue
        items = datas.get(sp.range)
        if items is None:
            raise _located(sp.origin, ("range",), f"subpackage {sp.name!r} specified undefined "
                                                  f"range: {sp.range!r}")
        # The range map is rebuilt from the already-substituted package, as melange does.
        table = base_map(recipe.package, recipe.vars)
        apply_var_transforms(table, recipe.var_transforms)
        for key in sorted(items, key=lambda k: k.encode()):
            table[token("range.key")] = key
            table[token("range.value")] = items[key]
            snapshot = dict(table)
            out.append(replace(map_subpackage(lambda t: replace_exact(t, snapshot), sp), range=""))
    return tuple(out)


def _build_accounts(accounts: apko.Accounts) -> apko.Accounts:
    groups = accounts.groups
    if not any(g.groupname == BUILD_USER for g in groups):
        groups += (apko.Group(groupname=BUILD_USER, gid=BUILD_UID, members=(BUILD_USER,)),)
    users = accounts.users
    if not any(u.username == BUILD_USER for u in users):
        users += (apko.User(username=BUILD_USER, uid=BUILD_UID, gid=BUILD_UID),)
    return replace(accounts, users=users, groups=groups)


def _add_build_user(recipe: s.Recipe) -> s.Recipe:
    env = replace(recipe.environment, accounts=_build_accounts(recipe.environment.accounts))
    test = recipe.test
    if test is not None:
        test = replace(test, environment=replace(
            test.environment, accounts=_build_accounts(test.environment.accounts)))
    subs = []
    for sp in recipe.subpackages:
        if sp.test is not None and sp.test.pipeline:
            sp = replace(sp, test=replace(sp.test, environment=replace(
                sp.test.environment, accounts=_build_accounts(sp.test.environment.accounts))))
        subs.append(sp)
    return replace(recipe, environment=env, test=test, subpackages=tuple(subs))


def _with_env_defaults(env: apko.ImageConfig, dotenv: Mapping[str, str] | None = None) -> apko.ImageConfig:
    merged = {**(dotenv or {}), **env.environment}
    for key, value in ENV_DEFAULTS:
        if not merged.get(key):
            merged[key] = value
    return replace(env, environment=s.fmap(merged))


def with_env_file(recipe: s.Recipe, dotenv: Mapping[str, str]) -> s.Recipe:
    """`--env-file`: the dotenv values under the recipe's own `environment.environment`."""
    return replace(recipe, environment=_with_env_defaults(recipe.environment, dotenv))


def _strict_pass(recipe: s.Recipe) -> s.Recipe:
    """Dependencies, priorities and package lists must resolve fully (melange errors on an
    undefined variable there, while the parse-time pass leaves it in place)."""
    table = base_map(recipe.package, recipe.vars)
    apply_var_transforms(table, recipe.var_transforms)

    def strict(origin: s.Origin | None, what: str) -> Fn:
        def fn(text: str) -> str:
            try:
                return substitute(text, table)
            except SubstError as exc:
                raise _located(origin, (), f"failed to apply replacement to {what} {text!r}: {exc}") from None
        return fn

    root = recipe.origin
    pkg_origin = root.at("package", "dependencies") if root else None
    pkg = replace(recipe.package, dependencies=map_dependencies(
        strict(pkg_origin, "dependency"), recipe.package.dependencies))
    env_fn = strict(root.at("environment", "contents", "packages") if root else None, "package")
    env = replace(recipe.environment, contents=replace(
        recipe.environment.contents, packages=tuple(map(env_fn, recipe.environment.contents.packages))))
    test = recipe.test
    if test is not None:
        tfn = strict(test.origin.at("environment", "contents", "packages") if test.origin else None,
                     "test package")
        test = replace(test, environment=replace(test.environment, contents=replace(
            test.environment.contents, packages=tuple(map(tfn, test.environment.contents.packages)))))
    subs = []
    for sp in recipe.subpackages:
        dfn = strict(sp.origin.at("dependencies") if sp.origin else None,
                     f"subpackage {sp.name!r} dependency")
        sp = replace(sp, dependencies=map_dependencies(dfn, sp.dependencies))
        if sp.test is not None:
            sfn = strict(sp.test.origin.at("environment", "contents", "packages")
                         if sp.test.origin else None, f"subpackage {sp.name!r} test package")
            sp = replace(sp, test=replace(sp.test, environment=replace(
                sp.test.environment, contents=replace(
                    sp.test.environment.contents,
                    packages=tuple(map(sfn, sp.test.environment.contents.packages))))))
        subs.append(sp)
    return replace(recipe, package=pkg, environment=env, test=test, subpackages=tuple(subs))


def propagate(step: s.Step) -> s.Step:
    """Children inherit the parent's working-directory (unless set) and environment (the
    child's own keys win)."""
    children = []
    for child in step.pipeline:
        child = replace(child, working_directory=child.working_directory or step.working_directory,
                        environment=s.fmap({**step.environment, **child.environment}))
        children.append(propagate(child))
    return replace(step, pipeline=tuple(children))


# --- validation ----------------------------------------------------------------------------

def validate(recipe: s.Recipe) -> None:
    pkg = recipe.package
    root = recipe.origin
    perr = (lambda msg, *sub: _located(root, ("package",) + sub, msg))
    if not NAME_RE.match(pkg.name):
        raise perr(f"package name {pkg.name!r} must match regex {NAME_RE.pattern!r}", "name")
    if not pkg.version:
        raise perr("package version must not be empty", "version")
    _check_priorities(pkg.dependencies, lambda msg: perr(msg, "dependencies"))
    validate_steps(recipe.pipeline)
    _check_setcap(pkg.setcap, lambda msg: perr(msg, "setcap"))
    for i, cp in enumerate(pkg.copyright):
        _check_copyright(cp, f"copyright[{i}]", lambda msg, i=i: perr(msg, "copyright", i))
    seen: dict[str, int] = {pkg.name: -1}
    for i, sp in enumerate(recipe.subpackages):
        serr = (lambda msg, *sub, sp=sp: _located(sp.origin, sub, msg))
        if sp.name in seen:
            if seen[sp.name] == -1:
                raise serr(f"subpackage[{i}] has same name as main package: {sp.name!r}", "name")
            raise serr(f"saw duplicate subpackage name {sp.name!r} (subpackages index: "
                       f"{seen[sp.name]} and {i})", "name")
        seen[sp.name] = i
        if not NAME_RE.match(sp.name):
            raise serr(f"subpackage name {sp.name!r} (subpackages index: {i}) must match regex "
                       f"{NAME_RE.pattern!r}", "name")
        _check_priorities(sp.dependencies, lambda msg, serr=serr: serr(msg, "dependencies"))
        validate_steps(sp.pipeline)
        _check_setcap(sp.setcap, lambda msg, serr=serr: serr(msg, "setcap"))
    _check_cpe(pkg.cpe, lambda msg: perr(f"CPE validation: {msg}", "cpe"))


def _check_priorities(deps: s.Dependencies, fail: Callable[[str], ConfigError]) -> None:
    for value in (deps.provider_priority, deps.replaces_priority):
        if value and not re.fullmatch(r"[-+]?[0-9]{1,18}", value):  # an int64, as in Go
            raise fail(f"priority must convert to integer, got {value!r}")


def validate_steps(steps: tuple[s.Step, ...]) -> None:
    for step in steps:
        def fail(msg: str, step: s.Step = step) -> ConfigError:
            return _located(step.origin, (), msg)
        if step.with_ is not None and not step.uses:
            raise fail("pipeline contains with but no uses")
        if step.uses and step.runs:
            raise fail(f"pipeline cannot contain both uses {step.uses!r} and runs")
        if step.with_ and step.runs:
            raise fail("pipeline cannot contain both with and runs")
        validate_steps(step.pipeline)


def _check_setcap(caps: tuple[s.Capability, ...], fail: Callable[[str], ConfigError]) -> None:
    for cap in caps:
        for add in cap.add:
            for name in add.split(","):
                if name not in VALID_CAPABILITIES:
                    raise fail(f"invalid capability {name!r} for path {cap.path!r}")
        if not cap.reason:
            raise fail(f"unjustified reason for capability {dict(cap.add)!r}")


def _check_copyright(cp: s.Copyright, where: str, fail: Callable[[str], ConfigError]) -> None:
    grouping = bool(cp.operator or cp.licenses)
    if grouping and cp.license:
        raise fail(f"{where}: cannot specify both 'license' field and grouping ('operator'/'licenses') fields")
    if not grouping and not cp.license:
        raise fail(f"{where}: must specify either 'license' field or grouping ('operator'/'licenses') fields")
    if grouping:
        if cp.operator and cp.operator not in ("AND", "OR"):
            raise fail(f"{where}: operator must be 'AND' or 'OR', got {cp.operator!r}")
        if not cp.licenses:
            raise fail(f"{where}: grouping entry must have at least one license in 'licenses' field")
        for i, sub in enumerate(cp.licenses):
            _check_copyright(sub, f"{where}.licenses[{i}]", fail)


def _check_cpe(cpe: s.CPE, fail: Callable[[str], ConfigError]) -> None:
    if cpe.part and cpe.part != "a":
        raise fail(f"invalid CPE part (must be 'a' for application, if specified): {cpe.part!r}")
    if bool(cpe.vendor) != bool(cpe.product):
        raise fail("vendor and product must each be set if the other is set")
    for name in ("vendor", "product"):
        if getattr(cpe, name) == "*":
            raise fail(f"invalid CPE {name}: '*'")
    for name in ("vendor", "product", "edition", "language", "sw_edition", "target_sw",
                 "target_hw", "other"):
        value = getattr(cpe, name)
        if value and not CPE_FIELD_RE.match(value):
            raise fail(f"invalid CPE field value {value!r}, must match regex {CPE_FIELD_RE.pattern!r}")


# --- build options (applied by the build, after parsing) -----------------------------------

def apply_build_options(recipe: s.Recipe, names: tuple[str, ...]) -> s.Recipe:
    """`--build-option`: merge each option's vars and add/remove build packages. Removal
    keeps melange's swap-with-last behaviour, which reorders the list."""
    vars_ = dict(recipe.vars)
    packages = list(recipe.environment.contents.packages)
    for name in names:
        option = recipe.options.get(name)
        if option is None:
            raise _located(recipe.origin, ("options",), f"unknown build option {name!r}; "
                           f"declared: {', '.join(recipe.options) or 'none'}")
        vars_.update(option.vars)
        packages.extend(option.packages_add)
        for pkg in option.packages_remove:
            backing = packages
            length = len(backing)
            for pos in range(len(backing)):  # Go ranges over the original slice header
                if backing[pos] == pkg:
                    backing[pos] = backing[length - 1]
                    length -= 1
            packages = backing[:length]
    env = replace(recipe.environment, contents=replace(recipe.environment.contents,
                                                       packages=tuple(packages)))
    return replace(recipe, vars=s.fmap(vars_), environment=env)
