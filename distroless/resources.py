"""Files the package ships besides code: the examples and the frontend image's recipe.

In a checkout they are the top-level `examples/` and `frontend/` folders; in an installed wheel
the build copied them to `distroless/_data/` (see setup.py), so `distroless demo` and
`distroless frontend build` work from anywhere.
"""

from __future__ import annotations

from pathlib import Path

from distroless.errors import ConfigError

PACKAGE = Path(__file__).resolve().parent
DATA = PACKAGE / "_data"
CHECKOUT = PACKAGE.parent


def _first(*candidates: Path) -> Path:
    for c in candidates:
        if c.exists():
            return c
    raise ConfigError(f"{candidates[-1]}: missing from this installation (a broken wheel?)")


def examples_dir() -> Path:
    """The demo's recipes and image YAML."""
    return _first(CHECKOUT / "examples" / "image.yaml", DATA / "examples" / "image.yaml").parent


def frontend_recipe() -> Path:
    """`frontend/build.py`: builds and pushes the BuildKit frontend image."""
    return _first(CHECKOUT / "frontend" / "build.py", DATA / "frontend" / "build.py")
