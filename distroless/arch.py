"""The one architecture table: apko's names, apk's spellings, host machine names, GNU and Rust
triplets. Everything that maps one spelling to another reads it from here; the Starlark copy
(`bazel/private/arch.bzl`) is generated from it (`make bazel/private/arch.bzl`) and a test keeps
the two equal.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Arch:
    name: str  # apko's (OCI) name: `amd64`, `arm/v7`
    apk: str  # apk's spelling: `x86_64`, `armv7`
    aliases: tuple[str, ...] = ()  # other input spellings that mean this arch
    triplet: str = ""  # apko's ToTriplet, `{}` = libc flavour
    rust_triplet: str = ""  # apko's ToRustTriplet


# apko's AllArchs, in its own (not sorted) order: what gets built when neither --arch nor
# `archs` says otherwise, and what `--arch all` means.
TABLE: tuple[Arch, ...] = (
    Arch("386", "x86", ("x86",), "i486-pc-linux-{}", "i686-unknown-linux-{}"),
    Arch("amd64", "x86_64", ("x86_64",), "x86_64-pc-linux-{}", "x86_64-unknown-linux-{}"),
    Arch("arm64", "aarch64", ("aarch64",), "aarch64-unknown-linux-{}", "aarch64-unknown-linux-{}"),
    Arch("arm/v6", "armhf", ("armhf",), "arm-unknown-linux-{}eabihf", "armv6-unknown-linux-{}eabihf"),
    Arch("arm/v7", "armv7", ("armv7",), "armv7l-unknown-linux-{}eabihf", "armv7-unknown-linux-{}eabihf"),
    Arch("loong64", "loongarch64", ("loongarch64",)),
    Arch("ppc64le", "ppc64le", (), "powerpc64le-unknown-linux-{}", "powerpc64le-unknown-linux-{}"),
    Arch("riscv64", "riscv64"),
    Arch("s390x", "s390x", (), "s390x-ibm-linux-{}", "s390x-unknown-linux-{}"),
)
ALL: tuple[str, ...] = tuple(a.name for a in TABLE)
BY_NAME = {a.name: a for a in TABLE}
_ALIASES = {alias: a.name for a in TABLE for alias in (a.name, *a.aliases)}

# platform.machine() spellings -> Go's runtime.GOARCH, which is what apko's `host` means.
# 32-bit ARM machines are plain `arm` to Go (no variant), which apko passes through unchanged.
MACHINE_TO_GOARCH = {
    "x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "i386": "386",
    "i486": "386", "i586": "386", "i686": "386", "x86": "386", "armv6l": "arm", "armv7l": "arm",
    "armv8l": "arm", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64",
    "loongarch64": "loong64",
}


def parse(name: str) -> str:
    """apko's ParseArchitecture: apk spellings become apko's names; unknown names pass through."""
    return _ALIASES.get(name, name)


def to_apk(name: str) -> str:
    """The apk spelling (`x86_64`, `aarch64`, `armhf`, …) of any spelling of an architecture."""
    arch = BY_NAME.get(parse(name))
    return arch.apk if arch else parse(name)


def from_machine(machine: str) -> str:
    """apko's name for a `platform.machine()` value (Go's GOARCH, then `parse`)."""
    m = machine.lower()
    return parse(MACHINE_TO_GOARCH.get(m, m))


def starlark() -> str:
    """`bazel/private/arch.bzl`: the table as Starlark dicts (Bazel cannot import Python)."""
    def d(pairs: list[tuple[str, str]]) -> str:
        return "{\n" + "".join(f'    "{k}": "{v}",\n' for k, v in pairs) + "}"

    return (
        '"""Generated from distroless/arch.py by `make bazel/private/arch.bzl`; do not edit."""\n\n'
        f"ALL_ARCHS = [{', '.join(repr(n).replace(chr(39), chr(34)) for n in ALL)}]\n\n"
        f"APK_ARCH = {d([(a.name, a.apk) for a in TABLE])}\n\n"
        f"ARCH_ALIASES = {d(sorted(_ALIASES.items()))}\n"
    )
