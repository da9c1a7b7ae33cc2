"""Generated from distroless/arch.py by `make bazel/private/arch.bzl`; do not edit."""

ALL_ARCHS = ["386", "amd64", "arm64", "arm/v6", "arm/v7", "loong64", "ppc64le", "riscv64", "s390x"]

APK_ARCH = {
    "386": "x86",
    "amd64": "x86_64",
    "arm64": "aarch64",
    "arm/v6": "armhf",
    "arm/v7": "armv7",
    "loong64": "loongarch64",
    "ppc64le": "ppc64le",
    "riscv64": "riscv64",
    "s390x": "s390x",
}

ARCH_ALIASES = {
    "386": "386",
    "aarch64": "arm64",
    "amd64": "amd64",
    "arm/v6": "arm/v6",
    "arm/v7": "arm/v7",
    "arm64": "arm64",
    "armhf": "arm/v6",
    "armv7": "arm/v7",
    "loong64": "loong64",
    "loongarch64": "loong64",
    "ppc64le": "ppc64le",
    "riscv64": "riscv64",
    "s390x": "s390x",
    "x86": "386",
    "x86_64": "amd64",
}
