"""`make demo`: the demo (see `distroless/cli/demo.py`) on this checkout's examples; output in out/demo/."""

from __future__ import annotations

import sys
from pathlib import Path

from distroless.cli.demo import run_demo
from distroless.errors import DistrolessError

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    try:
        run_demo(HERE, HERE.parent)
    except DistrolessError as e:
        sys.exit(str(e))
