"""Configuration front ends: a positions-keeping YAML 1.2 loader and apko's image configuration."""

from __future__ import annotations

from distroless.config.image import (
    LoadedConfig,
    Overrides,
    apko_json_dict,
    config_checksum,
    go_json,
    load_image_config,
    load_image_config_bytes,
    merge_into,
    parse_annotation_flags,
    parse_build_date,
    resolve_build_date,
    split_flag_values,
    to_apko_json,
)
from distroless.config.model import (
    ALL_ARCHS,
    Accounts,
    BaseImage,
    Certificate,
    Certificates,
    Contents,
    DEFAULT_ENVIRONMENT,
    Entrypoint,
    Group,
    ImageConfig,
    Layering,
    PATH_TYPES,
    PathMutation,
    RuntimeKey,
    User,
    arch_to_apk,
    host_architecture,
    image_environment,
    parse_architecture,
    parse_architectures,
)
from distroless.config.reader import (
    go_yaml_int,
    parse_image_config,
)
from distroless.config.positions import (
    Locator,
    Mark,
    ScalarInfo,
    format_path,
)


def __getattr__(name: str):  # noqa: ANN202
    # the YAML loader (and PyYAML behind it) loads on first use: a configuration served from the
    # parsed-config cache never needs it
    if name in ("Core12Loader", "load"):
        from distroless.config import yaml12

        return getattr(yaml12, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ALL_ARCHS",
    "DEFAULT_ENVIRONMENT",
    "PATH_TYPES",
    "Accounts",
    "BaseImage",
    "Certificate",
    "Certificates",
    "Contents",
    "Core12Loader",
    "Entrypoint",
    "Group",
    "ImageConfig",
    "Layering",
    "LoadedConfig",
    "Locator",
    "Mark",
    "Overrides",
    "PathMutation",
    "RuntimeKey",
    "ScalarInfo",
    "User",
    "apko_json_dict",
    "arch_to_apk",
    "config_checksum",
    "format_path",
    "go_json",
    "go_yaml_int",
    "host_architecture",
    "image_environment",
    "load",
    "load_image_config",
    "load_image_config_bytes",
    "merge_into",
    "parse_annotation_flags",
    "parse_architecture",
    "parse_architectures",
    "parse_build_date",
    "parse_image_config",
    "resolve_build_date",
    "split_flag_values",
    "to_apko_json",
]
