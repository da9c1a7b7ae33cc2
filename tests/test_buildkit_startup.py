"""What the frontend costs before it builds anything: its image carries bytecode Python accepts
(the layer's timestamps would otherwise make every .pyc stale), and the image mode does not load
melange's engine. The daemon tests (test_buildkit_frontend.py) check the same in the real image."""

from __future__ import annotations

import importlib.util
import os
import py_compile
import subprocess
import sys
import textwrap
from pathlib import Path

from distroless.rootfs.importdir import import_dir
from distroless.rootfs.tree import Tree

ROOT = Path(__file__).resolve().parents[1]
EPOCH = 1700000000


def frontend_build_module():
    spec = importlib.util.spec_from_file_location("frontend_build", ROOT / "frontend/build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def materialise(tree: Tree, dest: Path) -> None:
    """The tree as the image has it: contents and every file's mtime from the layer."""
    for path, node in tree.walk():
        target = dest / path
        if node.type == "dir":
            target.mkdir(parents=True, exist_ok=True)
        elif node.type == "reg":
            target.write_bytes(node.data())
            os.utime(target, (node.mtime, node.mtime))


def python_verdicts(pythonpath: Path, *modules: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "PYTHONDONTWRITEBYTECODE": "1"}
    r = subprocess.run([sys.executable, "-v", "-c", "; ".join(f"import {m}" for m in modules)],
                       env=env, capture_output=True, text=True, check=True)
    return r.stderr


def test_restamped_bytecode_is_used_and_stale_bytecode_is_left_alone(tmp_path) -> None:
    build = frontend_build_module()
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "__init__.py").write_text("")
    (src / "pkg" / "fresh.py").write_text("VALUE = 1\n")
    (src / "pkg" / "edited.py").write_text("VALUE = 2\n")
    for name in ("__init__", "fresh", "edited"):
        py_compile.compile(str(src / "pkg" / f"{name}.py"), doraise=True)
    (src / "pkg" / "edited.py").write_text("VALUE = 22\n")  # its .pyc no longer matches it
    tree = import_dir(src, mtime=EPOCH)
    assert build.restamp_bytecode(tree, EPOCH) == 2
    out = tmp_path / "image"
    materialise(tree, out)
    log = python_verdicts(out, "pkg.fresh", "pkg.edited")
    assert f"fresh.{sys.implementation.cache_tag}.pyc matches {out}/pkg/fresh.py" in log, log
    assert "bytecode is stale for 'pkg.edited'" in log, log

    # without the re-stamp every .pyc of the layer is stale: what the image had before
    plain = tmp_path / "plain"
    materialise(import_dir(src, mtime=EPOCH), plain)
    assert "bytecode is stale for 'pkg.fresh'" in python_verdicts(plain, "pkg.fresh")


def test_the_image_mode_does_not_load_melange() -> None:
    """Dispatching an image YAML stops short of melange's engine (~0.2 s of imports a build)."""
    script = textwrap.dedent("""
        import sys
        from distroless.buildkit import frontend, transport
        from distroless.buildkit._pb import gateway, status

        SPEC = b"contents:\\n  repositories: [https://example.invalid/os]\\n  packages: [x]\\n" \\
               b"entrypoint:\\n  command: /bin/x\\narchs: [x86_64]\\n"

        class Enough(Exception):
            pass

        class Bridge:
            caps = transport.Caps({}, {c: True for c in frontend.REQUIRED_LLB_CAPS})
            solves = 0

            def solve(self, definition=None, **kw):
                Bridge.solves += 1
                if Bridge.solves > 1:  # past the spec: the image mode's first index download
                    raise Enough()
                r = gateway.Result()
                r.ref.id = "spec"
                return r

            def read_file(self, ref, path, offset=None, length=None):
                if path == "image.yaml":
                    return SPEC[offset or 0:]
                raise transport.BridgeError("ReadFile", status.Status(code=5, message="not found"))

            def inputs(self):
                return {}

        env = transport.FrontendEnv(opts={"filename": "image.yaml", "source": "reg.invalid/fe:1"}, session_id="s")
        try:
            frontend.build(Bridge(), env)
        except Enough:
            pass
        loaded = sorted(m for m in sys.modules if m.startswith("distroless.melange"))
        print(loaded)
        assert Bridge.solves == 2 and not loaded, loaded
    """)
    r = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stdout + r.stderr
