"""Commands over what the package ships: `demo` (the embedded example, anywhere) and
`frontend build` (the BuildKit frontend image's recipe, `frontend/build.py`)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import runpy
import shutil
import sys
from pathlib import Path

from distroless import resources
from distroless.cli.demo import run_demo


def cmd_demo(args: argparse.Namespace) -> int:
    work = args.dir.resolve()
    examples = work / "examples"
    if not (examples / "image.yaml").exists():
        shutil.copytree(resources.examples_dir(), examples,
                        ignore=shutil.ignore_patterns("bazel", "demo.py", "__pycache__", "BUILD.bazel"))
    out = run_demo(examples, work)
    print(f"examples: {examples} (edit and re-run `distroless demo --dir {args.dir}`); output: {out}")
    return 0


def cmd_frontend_build(args: argparse.Namespace) -> int:
    recipe = resources.frontend_recipe()
    argv = [str(recipe), "--work", str(args.work)] + (["--push", args.push] if args.push else [])
    saved = sys.argv
    sys.argv = argv
    try:
        runpy.run_path(str(recipe), run_name="__main__")
    except SystemExit as e:
        return int(e.code) if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = saved
    return 0


def cmd_completion(args: argparse.Namespace) -> int:
    import argcomplete

    sys.stdout.write(argcomplete.shellcode(["distroless"], shell=args.shell))
    return 0


def register(sub: argparse._SubParsersAction, words: Sequence[str] | None = None) -> None:  # noqa: ARG001
    p = sub.add_parser("demo", help="build, sign and verify the embedded example (packages, image) offline")
    p.add_argument("--dir", type=Path, default=Path("distroless-demo"),
                   help="working directory: examples/ is copied there, output goes to out/demo/ (default ./distroless-demo)")
    p.set_defaults(func=cmd_demo)

    f = sub.add_parser("frontend", help="the BuildKit frontend image")
    fsub = f.add_subparsers(dest="frontend_command", required=True, metavar="COMMAND")
    b = fsub.add_parser("build", help="build the frontend image (Debian python3 + this package) and push it")
    b.add_argument("--push", metavar="REF", help="registry reference to push the image to")
    b.add_argument("--work", type=Path, default=Path("/var/cache/distroless-frontend"),
                   help="work directory; the Debian base and wheels are cached there between builds")
    b.set_defaults(func=cmd_frontend_build)

    c = sub.add_parser("completion", help="print the shell completion script (bash: source <(distroless completion bash))")
    c.add_argument("shell", choices=("bash", "zsh", "fish", "tcsh", "powershell"), help="the shell to complete in")
    c.set_defaults(func=cmd_completion)
