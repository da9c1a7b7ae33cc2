"""What every step process shares at its edges: where its notes go and how it writes outputs
(Bazel pre-creates tree-artifact outputs; a step's result appears whole or not at all)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from distroless.events import Events, TextSink
from distroless.fsutil import atomic_write


def stderr_events() -> Events:
    """A step's warnings and notes, as lines on stderr (Bazel shows them with the action)."""
    return Events(TextSink(sys.stderr))


def write_json(path: Path, doc: object) -> None:
    atomic_write(path, (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode())


def fresh_dir(path: Path) -> None:
    """Bazel pre-creates tree-artifact outputs; other callers may not. Either way: empty."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)


def publish_dir(staging: Path, out: Path) -> None:
    """Move a finished staging directory's contents into `out` (the atomic part is the staging)."""
    fresh_dir(out)
    for child in staging.iterdir():
        os.replace(child, out / child.name)


def staging(near: Path) -> Path:
    near.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{near.name}.", dir=near.parent))
