"""Generate the Python protobuf modules for the BuildKit protos in this folder.

Usage: python proto/generate.py OUT_DIR   (`make proto` passes distroless/buildkit/_pb)

protoc names Python modules after the .proto path (`github.com/moby/...` becomes the
top-level package `github`), so the generated imports are rewritten to live under
`distroless.buildkit._pb`; that keeps the descriptor file names identical to BuildKit's
(`Any` type URLs and imports stay upstream-shaped) without putting `github` or `google.rpc`
on sys.path. The same function is used by tests/test_proto.py to check the committed output.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
PACKAGE = "distroless.buildkit._pb"
# Top-level packages protoc emits for our own files (google.protobuf stays as is).
_OWN_PACKAGES = ("github.com", "google.rpc")
_OWN = "(?:" + "|".join(re.escape(p) for p in _OWN_PACKAGES) + r")\b"
_IMPORT_RE = re.compile(rf"^from ({_OWN})", re.MULTILINE)
_MODULE_NAME_RE = re.compile(rf"(BuildTopDescriptorsAndMessages\(DESCRIPTOR, ')({_OWN})")


def proto_files(root: Path = PROTO_ROOT) -> list[str]:
    """All .proto files, relative to root, sorted so the protoc command line is stable."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.proto"))


def rewrite_imports(source: str) -> str:
    """Point generated imports (and the recorded module name) into PACKAGE."""
    source = _IMPORT_RE.sub(rf"from {PACKAGE}.\1", source)
    return _MODULE_NAME_RE.sub(rf"\g<1>{PACKAGE}.\2", source)


def generate(out_dir: Path, root: Path = PROTO_ROOT) -> list[Path]:
    """Run protoc into out_dir, fix imports, add package __init__ files; return generated files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "grpc_tools.protoc",
        f"-I{root}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        *proto_files(root),
    ]
    subprocess.run(cmd, check=True, cwd=root)
    generated = sorted(p for p in out_dir.rglob("*_pb2.py*"))
    for path in generated:
        path.write_text(rewrite_imports(path.read_text()))
    # Every directory below out_dir must be a package; out_dir's own __init__ is hand-written.
    for directory in sorted({p.parent for p in generated}):
        while directory != out_dir:
            init = directory / "__init__.py"
            if not init.exists():
                init.write_text("")
            directory = directory.parent
    return generated


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: generate.py OUT_DIR")
    for path in generate(Path(sys.argv[1]).resolve()):
        print(path)
