"""Digests recorded from the code before the step refactor (issue 12), checked after it.

These are a refactor's regression check, kept beside the independent checks (the CLI against
Bazel, the BuildKit tree against the CLI's, the images running on real daemons): they say
"unchanged", not "right". They hold for this machine's toolchain (the demo compiles C with the
host's gcc; the test repository carries the host's busybox). Re-record deliberately with
`DISTROLESS_RECORD_REGRESSION=1` when an intended change moves them, and say why in the commit.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

FILE = Path(__file__).with_name("regression_digests.json")


def tree_digest(tree: dict[str, tuple], skip: tuple[str, ...] = ()) -> str:
    """One digest over a `path → (type, mode, uid, gid, link, content sha256)` listing."""
    rows = [f"{p}\t{v!r}" for p, v in sorted(tree.items()) if not p.startswith(skip)]
    if os.environ.get("DISTROLESS_REGRESSION_DUMP"):  # to see what moved when a digest did
        with open(os.environ["DISTROLESS_REGRESSION_DUMP"], "a") as f:
            f.write("\n".join(rows) + "\n\n")
    return "sha256:" + hashlib.sha256("\n".join(rows).encode()).hexdigest()


def check(name: str, value: str) -> None:
    recorded = json.loads(FILE.read_text()) if FILE.exists() else {}
    if os.environ.get("DISTROLESS_RECORD_REGRESSION") == "1":
        recorded[name] = value
        FILE.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
        return
    assert name in recorded, f"{FILE.name} has no {name!r}: record it with DISTROLESS_RECORD_REGRESSION=1"
    assert value == recorded[name], f"{name} changed: {value} (recorded {recorded[name]})"
