"""A host-toolchain package build records the host compiler and libc (its Bazel action key holds
that record) and refuses to run on a host that differs from the record."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from distroless.melange.hostid import host_identity

ROOT = Path(__file__).resolve().parent.parent


def test_identity_names_compiler_libc_and_machine():
    ident = host_identity()
    lines = dict(line.split(": ", 1) for line in ident.splitlines())
    assert set(lines) == {"cc", "libc", "machine"}
    assert lines["machine"] == os.uname().machine
    assert lines["libc"].startswith("glibc ")  # Debian's
    assert not lines["cc"].startswith("none"), lines["cc"]  # the peers install gcc (make demo-deps)
    # the script the repository rule runs prints exactly the same, from any directory
    script = subprocess.run([sys.executable, "-I", "-B", str(ROOT / "bazel/private/host_identity.py")],
                            capture_output=True, text=True, check=True, cwd="/")
    assert script.stdout == ident


def test_a_host_without_the_compiler_has_another_identity():
    assert host_identity("no-such-cc-here") != host_identity()
    assert "cc: none (no-such-cc-here" in host_identity("no-such-cc-here")


def test_melange_step_refuses_a_changed_host(tmp_path):
    recorded = tmp_path / "identity.txt"
    recorded.write_text(host_identity().replace("cc: ", "cc: gcc 4.2 was here; "))
    proc = subprocess.run([sys.executable, "-m", "distroless.steps", "melange", "--recipe", "none.yaml",
                           "--out", str(tmp_path / "x.apk"), "--host-identity", str(recorded)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(recorded) in lines[0] and "host toolchain changed" in lines[0], proc.stderr
    assert "gcc 4.2 was here" in lines[0]
