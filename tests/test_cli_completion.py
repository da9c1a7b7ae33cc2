"""Shell completion through argcomplete, end to end in a real bash: the script printed by
`distroless completion bash` is sourced and its completion function asked, as bash does on TAB."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def complete(line: str) -> list[str]:
    words = line.split(" ")
    script = (
        "source <(distroless completion bash)\n"
        f"COMP_LINE={line!r}; COMP_POINT={len(line)}; COMP_WORDS=({' '.join(repr(w) for w in words)}); "
        f"COMP_CWORD={len(words) - 1}\n"
        f"_python_argcomplete distroless {words[-1]!r} {words[-2]!r}\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    return [w.strip() for w in r.stdout.splitlines() if w.strip()]


def test_commands_and_flags_complete_in_bash():
    assert complete("distroless veri") == ["verify", "verify-attestation", "verify-blob"]
    assert complete("distroless verify --ke") == ["--key"]
    assert sorted(complete("distroless triangulate --type s")) == ["sbom", "signature"]  # the choices
    assert {"build", "lock", "publish"} <= set(complete("distroless image "))
