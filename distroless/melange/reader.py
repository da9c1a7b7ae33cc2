"""Strict decoding of melange YAML (text-mode scalars) into the records of `schema`.

Like yaml.v3 with KnownFields(true): an unknown key anywhere is an error naming the valid
keys, string fields take the scalar's source text, and typed fields (epoch, booleans,
required-steps) must parse as such. `environment` blocks are apko image configurations and
go through apko's own reader.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from distroless.config import reader as apko
from distroless.config.yaml12 import YAML11_FALSE, YAML11_TRUE, Locator, Mark, NodePath, ScalarInfo, field_of, struct_fields
from distroless.errors import ConfigError
from distroless.melange import schema as s

_TRUE = ("true", "True", "TRUE") + YAML11_TRUE
_FALSE = ("false", "False", "FALSE") + YAML11_FALSE
_DURATION_RE = re.compile(r"^[-+]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|µs|μs|ms|s|m|h))+$")


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return "null" if value is None else "a scalar"


@dataclass(frozen=True, slots=True)
class Reader:
    """Reads one document's text-mode data; `strict=False` ignores unknown keys (melange
    decodes pipeline definition files with plain yaml.Unmarshal)."""

    loc: Locator
    typed: Any = None  # the same document loaded with typed scalars, for apko's reader
    strict: bool = True

    def fail(self, path: NodePath, message: str, *, key: bool = False) -> ConfigError:
        return self.loc.error(path, message, key=key)

    def origin(self, path: NodePath) -> s.Origin:
        return s.Origin(self.loc, path)

    def mapping(self, value: Any, path: NodePath, allowed: tuple[str, ...]) -> dict[str, tuple[NodePath, Any]]:
        return struct_fields(self.loc, value, path, allowed, strict=self.strict)

    def string(self, value: Any, path: NodePath) -> str:
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        raise self.fail(path, f"expected a string, got {_kind(value)}")

    def strings(self, value: Any, path: NodePath) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            raise self.fail(path, f"expected a list of strings, got {_kind(value)}")
        return tuple(self.string(item, path + (i,)) for i, item in enumerate(value))

    def boolean(self, value: Any, path: NodePath) -> bool:
        if value is None:
            return False
        if isinstance(value, str) and self._plain(path):
            if value in _TRUE:
                return True
            if value in _FALSE:
                return False
        raise self.fail(path, f"expected a boolean, got {value!r}" if isinstance(value, str)
                        else f"expected a boolean, got {_kind(value)}")

    def integer(self, value: Any, path: NodePath, *, unsigned: bool = False) -> int:
        if value is None:
            return 0
        number = apko.go_yaml_int(value) if isinstance(value, str) and self._plain(path) else None
        if number is None:
            raise self.fail(path, f"expected an integer, got {value!r}" if isinstance(value, str)
                            else f"expected an integer, got {_kind(value)}")
        if unsigned and number < 0:
            raise self.fail(path, f"expected an unsigned integer, got {number}")
        return number

    def _plain(self, path: NodePath) -> bool:
        info: ScalarInfo | None = self.loc.scalar(path)
        return info is None or info.plain or info.tag in (
            "tag:yaml.org,2002:int", "tag:yaml.org,2002:bool")

    def str_map(self, value: Any, path: NodePath) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping of strings, got {_kind(value)}")
        out: dict[str, str] = {}
        for key, item in value.items():
            sub = path + (key,)
            info = self.loc.key_scalar(sub)
            out[info.text if info else str(key)] = self.string(item, sub)
        return out

    def items(self, value: Any, path: NodePath) -> list[tuple[NodePath, Any]]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(path, f"expected a list, got {_kind(value)}")
        return [(path + (i,), item) for i, item in enumerate(value)]

    # -- apko environment ------------------------------------------------------------------

    def image_config(self, path: NodePath) -> apko.ImageConfig:
        data = self.typed
        for elem in path:
            if not isinstance(data, (dict, list)):
                data = None
                break
            data = data[elem] if isinstance(data, list) else data.get(elem)
        if data is None:
            return apko.ImageConfig()
        reader = apko._Reader(_PrefixedLocator(self.loc, path))  # apko's own strict reader
        return apko._read_config(reader, data)


@dataclass(frozen=True, slots=True)
class _PrefixedLocator:
    """A Locator view rooted at `prefix`, so apko's reader reports melange file positions."""

    loc: Locator
    prefix: NodePath

    @property
    def filename(self) -> str:
        return self.loc.filename

    def __contains__(self, path: NodePath) -> bool:
        return self.prefix + tuple(path) in self.loc

    def mark(self, path: NodePath) -> Mark:
        return self.loc.mark(self.prefix + tuple(path))

    def key_mark(self, path: NodePath) -> Mark:
        return self.loc.key_mark(self.prefix + tuple(path))

    def scalar(self, path: NodePath) -> ScalarInfo | None:
        return self.loc.scalar(self.prefix + tuple(path))

    def key_scalar(self, path: NodePath) -> ScalarInfo | None:
        return self.loc.key_scalar(self.prefix + tuple(path))

    def where(self, path: NodePath, *, key: bool = False) -> str:
        return self.loc.where(self.prefix + tuple(path), key=key)

    def error(self, path: NodePath, message: str, *, key: bool = False) -> ConfigError:
        return self.loc.error(self.prefix + tuple(path), message, key=key)


# --- records -----------------------------------------------------------------------------

_get = field_of


def read_dependencies(r: Reader, value: Any, path: NodePath) -> s.Dependencies:
    f = r.mapping(value, path, s.DEPENDENCIES_KEYS)
    return s.Dependencies(
        runtime=r.strings(*_swap(_get(f, "runtime", path))),
        provides=r.strings(*_swap(_get(f, "provides", path))),
        replaces=r.strings(*_swap(_get(f, "replaces", path))),
        provider_priority=r.string(*_swap(_get(f, "provider-priority", path))),
        replaces_priority=r.string(*_swap(_get(f, "replaces-priority", path))),
    )


def _swap(pair: tuple[NodePath, Any]) -> tuple[Any, NodePath]:
    return pair[1], pair[0]


def read_options(r: Reader, value: Any, path: NodePath) -> s.PackageOptions | None:
    if value is None:
        return None
    f = r.mapping(value, path, s.PACKAGE_OPTION_KEYS)
    b = {k: r.boolean(*_swap(_get(f, k, path))) for k in s.PACKAGE_OPTION_KEYS}
    return s.PackageOptions(b["no-provides"], b["no-depends"], b["no-commands"],
                            b["no-versioned-shlib-deps"])


def read_scriptlets(r: Reader, value: Any, path: NodePath) -> s.Scriptlets | None:
    if value is None:
        return None
    f = r.mapping(value, path, s.SCRIPTLET_KEYS)
    tpath, tvalue = _get(f, "trigger", path)
    tf = r.mapping(tvalue, tpath, s.TRIGGER_KEYS)
    text = {k: r.string(*_swap(_get(f, k, path))) for k in s.SCRIPTLET_KEYS[1:]}
    return s.Scriptlets(
        trigger=s.Trigger(script=r.string(*_swap(_get(tf, "script", tpath))),
                          paths=r.strings(*_swap(_get(tf, "paths", tpath)))),
        pre_install=text["pre-install"], post_install=text["post-install"],
        pre_deinstall=text["pre-deinstall"], post_deinstall=text["post-deinstall"],
        pre_upgrade=text["pre-upgrade"], post_upgrade=text["post-upgrade"],
    )


def read_checks(r: Reader, value: Any, path: NodePath) -> s.Checks:
    f = r.mapping(value, path, s.CHECKS_KEYS)
    return s.Checks(disabled=r.strings(*_swap(_get(f, "disabled", path))))


def read_setcap(r: Reader, value: Any, path: NodePath) -> tuple[s.Capability, ...]:
    out = []
    for sub, item in r.items(value, path):
        f = r.mapping(item, sub, s.SETCAP_KEYS)
        out.append(s.Capability(path=r.string(*_swap(_get(f, "path", sub))),
                                add=s.fmap(r.str_map(*_swap(_get(f, "add", sub)))),
                                reason=r.string(*_swap(_get(f, "reason", sub)))))
    return tuple(out)


def read_resources(r: Reader, value: Any, path: NodePath) -> s.Resources | None:
    if value is None:
        return None
    f = r.mapping(value, path, s.RESOURCES_KEYS)
    t = {k: r.string(*_swap(_get(f, k, path))) for k in s.RESOURCES_KEYS}
    return s.Resources(t["cpu"], t["cpumodel"], t["memory"], t["disk"])


def read_copyright(r: Reader, value: Any, path: NodePath) -> s.Copyright:
    f = r.mapping(value, path, s.COPYRIGHT_KEYS)
    t = {k: r.string(*_swap(_get(f, k, path))) for k in
         ("attestation", "license", "license-path", "detection-override", "operator")}
    lpath, lvalue = _get(f, "licenses", path)
    return s.Copyright(
        paths=r.strings(*_swap(_get(f, "paths", path))), attestation=t["attestation"],
        license=t["license"], license_path=t["license-path"],
        detection_override=t["detection-override"], operator=t["operator"],
        licenses=tuple(read_copyright(r, v, p) for p, v in r.items(lvalue, lpath)),
    )


def read_package(r: Reader, value: Any, path: NodePath) -> s.PackageSpec:
    if value is None:
        raise r.fail(path, "missing package section")
    f = r.mapping(value, path, s.PACKAGE_KEYS)

    def text(name: str) -> str:
        return r.string(*_swap(_get(f, name, path)))

    def sub(name: str) -> tuple[Any, NodePath]:
        return _swap(_get(f, name, path))

    timeout = text("timeout")
    if timeout and not (_DURATION_RE.match(timeout) or apko.go_yaml_int(timeout) is not None):
        raise r.fail(_get(f, "timeout", path)[0], f"invalid duration {timeout!r}")
    cpe_f = r.mapping(*sub("cpe"), s.CPE_KEYS)
    cpe_path = _get(f, "cpe", path)[0]
    return s.PackageSpec(
        name=text("name"), version=text("version"),
        epoch=r.integer(*sub("epoch"), unsigned=True),
        description=text("description"), annotations=s.fmap(r.str_map(*sub("annotations"))),
        url=text("url"), commit=text("commit"),
        target_architecture=r.strings(*sub("target-architecture")),
        copyright=tuple(read_copyright(r, v, p) for p, v in r.items(*sub("copyright"))),
        dependencies=read_dependencies(r, *sub("dependencies")),
        options=read_options(r, *sub("options")),
        scriptlets=read_scriptlets(r, *sub("scriptlets")),
        checks=read_checks(r, *sub("checks")),
        cpe=s.CPE(**{k: r.string(*_swap(_get(cpe_f, k, cpe_path))) for k in s.CPE_KEYS}),
        setcap=read_setcap(r, *sub("setcap")),
        timeout=timeout,
        resources=read_resources(r, *sub("resources")),
        test_resources=read_resources(r, *sub("test-resources")),
    )


def read_step(r: Reader, value: Any, path: NodePath) -> s.Step:
    f = r.mapping(value, path, s.PIPELINE_KEYS)

    def sub(name: str) -> tuple[Any, NodePath]:
        return _swap(_get(f, name, path))

    with_value, with_path = sub("with")
    needs = None
    if "needs" in f and f["needs"][1] is not None:
        npath, nvalue = f["needs"]
        nf = r.mapping(nvalue, npath, s.NEEDS_KEYS)
        needs = r.strings(*_swap(_get(nf, "packages", npath)))
    required_steps = None
    if "assertions" in f and f["assertions"][1] is not None:
        apath, avalue = f["assertions"]
        af = r.mapping(avalue, apath, s.ASSERTIONS_KEYS)
        required_steps = r.integer(*_swap(_get(af, "required-steps", apath)))
    inputs: dict[str, s.Input] = {}
    ivalue, ipath = sub("inputs")
    if ivalue is not None:
        if not isinstance(ivalue, dict):
            raise r.fail(ipath, f"expected a mapping of inputs, got {_kind(ivalue)}")
        for key, item in ivalue.items():
            kpath = ipath + (key,)
            kinfo = r.loc.key_scalar(kpath)
            inf = r.mapping(item, kpath, s.INPUT_KEYS)
            inputs[kinfo.text if kinfo else str(key)] = s.Input(
                description=r.string(*_swap(_get(inf, "description", kpath))),
                default=r.string(*_swap(_get(inf, "default", kpath))),
                required=r.boolean(*_swap(_get(inf, "required", kpath))))
    return s.Step(
        if_=r.string(*sub("if")), name=r.string(*sub("name")), uses=r.string(*sub("uses")),
        with_=s.fmap(r.str_map(with_value, with_path)) if with_value is not None else None,
        runs=r.string(*sub("runs")),
        pipeline=read_steps(r, *sub("pipeline")),
        inputs=s.fmap(inputs), needs=needs, label=r.string(*sub("label")),
        required_steps=required_steps,
        working_directory=r.string(*sub("working-directory")),
        environment=s.fmap(r.str_map(*sub("environment"))),
        origin=r.origin(path),
    )


def read_steps(r: Reader, value: Any, path: NodePath) -> tuple[s.Step, ...]:
    return tuple(read_step(r, v, p) for p, v in r.items(value, path))


def read_test(r: Reader, value: Any, path: NodePath) -> s.Test | None:
    if value is None:
        return None
    f = r.mapping(value, path, s.TEST_KEYS)
    env_path = _get(f, "environment", path)[0]
    return s.Test(environment=r.image_config(env_path),
                  pipeline=read_steps(r, *_swap(_get(f, "pipeline", path))),
                  origin=r.origin(path))


def read_subpackage(r: Reader, value: Any, path: NodePath) -> s.Subpackage:
    f = r.mapping(value, path, s.SUBPACKAGE_KEYS)

    def sub(name: str) -> tuple[Any, NodePath]:
        return _swap(_get(f, name, path))

    return s.Subpackage(
        if_=r.string(*sub("if")), range=r.string(*sub("range")), name=r.string(*sub("name")),
        pipeline=read_steps(r, *sub("pipeline")),
        dependencies=read_dependencies(r, *sub("dependencies")),
        options=read_options(r, *sub("options")), scriptlets=read_scriptlets(r, *sub("scriptlets")),
        description=r.string(*sub("description")), url=r.string(*sub("url")),
        commit=r.string(*sub("commit")), checks=read_checks(r, *sub("checks")),
        test=read_test(r, *sub("test")), setcap=read_setcap(r, *sub("setcap")),
        origin=r.origin(path),
    )


def read_build_option(r: Reader, value: Any, path: NodePath) -> s.BuildOption:
    f = r.mapping(value, path, s.BUILD_OPTION_KEYS)
    epath, evalue = _get(f, "environment", path)
    ef = r.mapping(evalue, epath, s.OPTION_ENV_KEYS)
    cpath, cvalue = _get(ef, "contents", epath)
    cf = r.mapping(cvalue, cpath, s.OPTION_CONTENTS_KEYS)
    ppath, pvalue = _get(cf, "packages", cpath)
    pf = r.mapping(pvalue, ppath, s.LIST_OPTION_KEYS)
    return s.BuildOption(vars=s.fmap(r.str_map(*_swap(_get(f, "vars", path)))),
                         packages_add=r.strings(*_swap(_get(pf, "add", ppath))),
                         packages_remove=r.strings(*_swap(_get(pf, "remove", ppath))))


def read_update(r: Reader, value: Any, path: NodePath, spec: Any = None) -> Any:
    """`update` is validated against its key set and kept as plain data."""
    spec = s.UPDATE_SCHEMA if spec is None else spec
    if spec == "any":
        return value
    if isinstance(spec, dict):
        f = r.mapping(value, path, tuple(spec))
        return {k: read_update(r, v, p, spec[k]) for k, (p, v) in f.items()}
    if isinstance(spec, list):
        return [read_update(r, v, p, spec[0]) for p, v in r.items(value, path)]
    if spec == "bool":
        return r.boolean(value, path)
    if spec == "int":
        return r.integer(value, path)
    return r.string(value, path)


def read_recipe(r: Reader, data: Any) -> s.Recipe:
    root: NodePath = ()
    if data is None:
        raise r.fail(root, "empty configuration")
    f = r.mapping(data, root, s.TOP_KEYS)

    def sub(name: str) -> tuple[Any, NodePath]:
        return _swap(_get(f, name, root))

    cf = r.mapping(*sub("capabilities"), s.CAPABILITIES_KEYS)
    cpath = _get(f, "capabilities", root)[0]
    data_records = []
    for p, v in r.items(*sub("data")):
        df = r.mapping(v, p, s.DATA_KEYS)
        data_records.append(s.RangeData(name=r.string(*_swap(_get(df, "name", p))),
                                        items=s.fmap(r.str_map(*_swap(_get(df, "items", p))))))
    transforms = []
    for p, v in r.items(*sub("var-transforms")):
        tf = r.mapping(v, p, s.VAR_TRANSFORM_KEYS)
        t = {k: r.string(*_swap(_get(tf, k, p))) for k in s.VAR_TRANSFORM_KEYS}
        transforms.append(s.VarTransform(t["from"], t["match"], t["replace"], t["to"], r.origin(p)))
    options: dict[str, s.BuildOption] = {}
    ovalue, opath = sub("options")
    if ovalue is not None:
        if not isinstance(ovalue, dict):
            raise r.fail(opath, f"expected a mapping of build options, got {_kind(ovalue)}")
        for key, item in ovalue.items():
            kinfo = r.loc.key_scalar(opath + (key,))
            options[kinfo.text if kinfo else str(key)] = read_build_option(r, item, opath + (key,))
    uvalue, upath = sub("update")
    return s.Recipe(
        package=read_package(r, *sub("package")),
        environment=r.image_config(("environment",)),
        capabilities=s.Capabilities(add=r.strings(*_swap(_get(cf, "add", cpath))),
                                    drop=r.strings(*_swap(_get(cf, "drop", cpath)))),
        pipeline=read_steps(r, *sub("pipeline")),
        subpackages=tuple(read_subpackage(r, v, p) for p, v in r.items(*sub("subpackages"))),
        data=tuple(data_records),
        update=s.fmap(read_update(r, uvalue, upath) if uvalue is not None else {}),
        vars=s.fmap(r.str_map(*sub("vars"))),
        var_transforms=tuple(transforms),
        options=s.fmap(options),
        test=read_test(r, *sub("test")),
        origin=r.origin(root),
    )
