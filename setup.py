"""Only the build hook: the wheel carries `examples/` (recipes, image YAML) and `frontend/build.py`
as `distroless/_data/`, so `distroless demo` and `distroless frontend build` work outside a
checkout (`distroless/resources.py` finds them). Everything else is in pyproject.toml."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
SHIPPED = {  # source (relative to the checkout) -> destination under distroless/_data
    "examples/image.yaml": "examples/image.yaml",
    "examples/recipes": "examples/recipes",
    "frontend/build.py": "frontend/build.py",
}


class BuildWithData(build_py):
    def run(self) -> None:
        super().run()
        data = Path(self.build_lib) / "distroless" / "_data"
        for src, dst in SHIPPED.items():
            s, d = HERE / src, data / dst
            d.parent.mkdir(parents=True, exist_ok=True)
            if s.is_dir():
                shutil.copytree(s, d, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("BUILD.bazel", "__pycache__"))
            else:
                shutil.copy2(s, d)


setup(cmdclass={"build_py": BuildWithData})
