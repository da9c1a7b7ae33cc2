"""The identity of the host toolchain a `--host-toolchain` build compiles with: the C compiler's
`--version` line, the C library's version and the machine. Bazel puts it in the action key of
every host-toolchain package build (the repository rule @distroless_host_toolchain records it
with bazel/private/host_identity.py, so this module imports nothing but the standard library),
and the build step re-computes it and refuses to run when the host changed since it was recorded.
"""

from __future__ import annotations

import os
import subprocess


def compiler_version(cc: str) -> str:
    """The first line of `CC --version`, or why there is none (a host without a compiler still
    has an identity: recipes that compile nothing can build there)."""
    try:
        proc = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=60,
                              env={"PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C"})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"none ({cc}: {exc.__class__.__name__})"
    first = (proc.stdout or proc.stderr).strip().splitlines()
    return first[0].strip() if proc.returncode == 0 and first else f"none ({cc} exited {proc.returncode})"


def libc_version() -> str:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") or "unknown"
    except (ValueError, OSError):
        return "unknown"  # not glibc (musl has no such name)


def host_identity(cc: str = "cc") -> str:
    return (f"cc: {compiler_version(cc)}\n"
            f"libc: {libc_version()}\n"
            f"machine: {os.uname().machine}\n")
