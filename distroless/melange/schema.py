"""melange's build-configuration schema as immutable records.

Key sets are exactly melange's (`pkg/config/config.go`), in struct order, which is also the
order `.melange.yaml` renders them in. Every string keeps the scalar's source text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from distroless.config.model import ImageConfig
from distroless.config.yaml12 import Locator, NodePath
from distroless.errors import ConfigError

StrMap = Mapping[str, str]
EMPTY: StrMap = MappingProxyType({})


def fmap(items: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """A read-only copy (records are frozen; their maps should be too)."""
    return MappingProxyType(dict(items)) if items else EMPTY


# --- key sets (yaml.v3 KnownFields: anything else is an error) -----------------------------

TOP_KEYS = ("package", "environment", "capabilities", "pipeline", "subpackages", "data",
            "update", "vars", "var-transforms", "options", "test")
PACKAGE_KEYS = ("name", "version", "epoch", "description", "annotations", "url", "commit",
                "target-architecture", "copyright", "dependencies", "options", "scriptlets",
                "checks", "cpe", "setcap", "timeout", "resources", "test-resources")
COPYRIGHT_KEYS = ("paths", "attestation", "license", "license-path", "detection-override",
                  "operator", "licenses")
DEPENDENCIES_KEYS = ("runtime", "provides", "replaces", "provider-priority", "replaces-priority")
PACKAGE_OPTION_KEYS = ("no-provides", "no-depends", "no-commands", "no-versioned-shlib-deps")
SCRIPTLET_KEYS = ("trigger", "pre-install", "post-install", "pre-deinstall", "post-deinstall",
                  "pre-upgrade", "post-upgrade")
TRIGGER_KEYS = ("script", "paths")
CHECKS_KEYS = ("disabled",)
CPE_KEYS = ("part", "vendor", "product", "edition", "language", "sw_edition", "target_sw",
            "target_hw", "other")
SETCAP_KEYS = ("path", "add", "reason")
RESOURCES_KEYS = ("cpu", "cpumodel", "memory", "disk")
PIPELINE_KEYS = ("if", "name", "uses", "with", "runs", "pipeline", "inputs", "needs", "label",
                 "assertions", "working-directory", "environment")
NEEDS_KEYS = ("packages",)
ASSERTIONS_KEYS = ("required-steps",)
INPUT_KEYS = ("description", "default", "required")
SUBPACKAGE_KEYS = ("if", "range", "name", "pipeline", "dependencies", "options", "scriptlets",
                   "description", "url", "commit", "checks", "test", "setcap")
CAPABILITIES_KEYS = ("add", "drop")
DATA_KEYS = ("name", "items")
VAR_TRANSFORM_KEYS = ("from", "match", "replace", "to")
BUILD_OPTION_KEYS = ("vars", "environment")
OPTION_ENV_KEYS = ("contents",)
OPTION_CONTENTS_KEYS = ("packages",)
LIST_OPTION_KEYS = ("add", "remove")
TEST_KEYS = ("environment", "pipeline")
# `update` is read by the bots only; its keys are still checked (they are part of the struct).
UPDATE_SCHEMA: dict[str, Any] = {
    "enabled": "bool", "manual": "bool", "require-sequential": "bool", "shared": "bool",
    "version-separator": "str", "ignore-regex-patterns": ["str"],
    "release-monitor": {"identifier": "int", "strip-prefix": "str", "strip-suffix": "str",
                        "version-filter-contains": "str", "version-filter-prefix": "str"},
    "github": {"identifier": "str", "strip-prefix": "str", "strip-suffix": "str",
               "tag-filter": "str", "tag-filter-prefix": "str", "tag-filter-contains": "str",
               "use-tag": "bool"},
    "git": {"strip-prefix": "str", "strip-suffix": "str", "tag-filter-prefix": "str",
            "tag-filter-contains": "str"},
    "oci": {"identifier": "str", "strip-prefix": "str", "strip-suffix": "str",
            "tag-filter-prefix": "str", "tag-filter-contains": "str"},
    "version_data": {"version_format": "str", "sources": "any"},
    "version-transform": [{"match": "str", "replace": "str"}],
    "exclude-reason": "str",
    "schedule": {"reason": "str", "period": "str"},
    "enable-prerelease-tags": "bool",
}


# --- records -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Origin:
    """Where a record was written: its Locator and path, for `file:line:col` errors."""

    locator: Locator = field(compare=False, repr=False)
    path: NodePath = ()

    def at(self, *sub: Any) -> Origin:
        return Origin(self.locator, self.path + sub)

    def error(self, message: str, *sub: Any, key: bool = False) -> ConfigError:
        return self.locator.error(self.path + sub, message, key=key)

    def where(self) -> str:
        return str(self.locator.mark(self.path))


@dataclass(frozen=True, slots=True)
class Trigger:
    script: str = ""
    paths: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Scriptlets:
    trigger: Trigger = Trigger()
    pre_install: str = ""
    post_install: str = ""
    pre_deinstall: str = ""
    post_deinstall: str = ""
    pre_upgrade: str = ""
    post_upgrade: str = ""


@dataclass(frozen=True, slots=True)
class PackageOptions:
    no_provides: bool = False
    no_depends: bool = False
    no_commands: bool = False
    no_versioned_shlib_deps: bool = False


@dataclass(frozen=True, slots=True)
class Checks:
    disabled: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CPE:
    part: str = ""
    vendor: str = ""
    product: str = ""
    edition: str = ""
    language: str = ""
    sw_edition: str = ""
    target_sw: str = ""
    target_hw: str = ""
    other: str = ""


@dataclass(frozen=True, slots=True)
class Capability:
    path: str = ""
    add: StrMap = field(default_factory=lambda: EMPTY)
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Resources:
    cpu: str = ""
    cpumodel: str = ""
    memory: str = ""
    disk: str = ""


@dataclass(frozen=True, slots=True)
class Copyright:
    paths: tuple[str, ...] = ()
    attestation: str = ""
    license: str = ""
    license_path: str = ""
    detection_override: str = ""
    operator: str = ""
    licenses: tuple[Copyright, ...] = ()


@dataclass(frozen=True, slots=True)
class Dependencies:
    runtime: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    replaces: tuple[str, ...] = ()
    provider_priority: str = ""
    replaces_priority: str = ""


@dataclass(frozen=True, slots=True)
class PackageSpec:
    name: str = ""
    version: str = ""
    epoch: int = 0
    description: str = ""
    annotations: StrMap = field(default_factory=lambda: EMPTY)
    url: str = ""
    commit: str = ""
    target_architecture: tuple[str, ...] = ()
    copyright: tuple[Copyright, ...] = ()
    dependencies: Dependencies = Dependencies()
    options: PackageOptions | None = None
    scriptlets: Scriptlets | None = None
    checks: Checks = Checks()
    cpe: CPE = CPE()
    setcap: tuple[Capability, ...] = ()
    timeout: str = ""  # a Go duration, kept as written
    resources: Resources | None = None
    test_resources: Resources | None = None

    @property
    def full_version(self) -> str:
        return f"{self.version}-r{self.epoch}"


@dataclass(frozen=True, slots=True)
class Input:
    description: str = ""
    default: str = ""
    required: bool = False


@dataclass(frozen=True, slots=True)
class Step:
    """One `pipeline[]` entry (or a pipeline definition file, which has the same shape)."""

    if_: str = ""
    name: str = ""
    uses: str = ""
    with_: StrMap | None = None  # None: no `with:` key at all (matters for validation)
    runs: str = ""
    pipeline: tuple[Step, ...] = ()
    inputs: Mapping[str, Input] = field(default_factory=lambda: EMPTY)
    needs: tuple[str, ...] | None = None
    label: str = ""
    required_steps: int | None = None  # assertions.required-steps
    working_directory: str = ""
    environment: StrMap = field(default_factory=lambda: EMPTY)
    origin: Origin | None = field(default=None, compare=False, repr=False)

    @property
    def identity(self) -> str:
        return self.name or self.uses or "???"


@dataclass(frozen=True, slots=True)
class Test:
    environment: ImageConfig = ImageConfig()
    pipeline: tuple[Step, ...] = ()
    origin: Origin | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Subpackage:
    if_: str = ""
    range: str = ""
    name: str = ""
    pipeline: tuple[Step, ...] = ()
    dependencies: Dependencies = Dependencies()
    options: PackageOptions | None = None
    scriptlets: Scriptlets | None = None
    description: str = ""
    url: str = ""
    commit: str = ""
    checks: Checks = Checks()
    test: Test | None = None
    setcap: tuple[Capability, ...] = ()
    origin: Origin | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Capabilities:
    add: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RangeData:
    name: str = ""
    items: StrMap = field(default_factory=lambda: EMPTY)


@dataclass(frozen=True, slots=True)
class VarTransform:
    from_: str = ""
    match: str = ""
    replace: str = ""
    to: str = ""
    origin: Origin | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class BuildOption:
    vars: StrMap = field(default_factory=lambda: EMPTY)
    packages_add: tuple[str, ...] = ()
    packages_remove: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Recipe:
    """A melange build configuration (after parse-time substitution when from `load_recipe`)."""

    package: PackageSpec
    environment: ImageConfig = ImageConfig()
    capabilities: Capabilities = Capabilities()
    pipeline: tuple[Step, ...] = ()
    subpackages: tuple[Subpackage, ...] = ()
    data: tuple[RangeData, ...] = ()
    update: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    vars: StrMap = field(default_factory=lambda: EMPTY)
    var_transforms: tuple[VarTransform, ...] = ()
    options: Mapping[str, BuildOption] = field(default_factory=lambda: EMPTY)
    test: Test | None = None
    origin: Origin | None = field(default=None, compare=False, repr=False)

    @property
    def filename(self) -> str:
        return self.origin.locator.filename if self.origin else "<recipe>"

    def package_names(self) -> tuple[str, ...]:
        return (self.package.name,) + tuple(sp.name for sp in self.subpackages)
