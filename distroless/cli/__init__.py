"""The `distroless` command line: a thin front door over the engine's steps."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from typing import Sequence

from distroless import __version__
from distroless.errors import ConfigError, DistrolessError
from distroless.events import Events, TextSink


def build_parser() -> argparse.ArgumentParser:
    from distroless.cli import apk, image, sign
    from distroless.cli.flags import GoArgumentParser, add_global_flags, leaves

    parser = GoArgumentParser(prog="distroless", description=__doc__)
    parser.add_argument("--version", action="version", version=f"distroless {__version__}")
    add_global_flags(parser, suppress_defaults=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    v = sub.add_parser("version", help="print the version (apko/melange/cosign `version`)")
    v.add_argument("--json", action="bool", help="print JSON")
    v.set_defaults(func=cmd_version)
    apk.register(sub)
    image.register(sub)
    sign.register(sub)
    # cobra's persistent flags work after the verb too; the top level holds their defaults.
    for _path, leaf in leaves(parser):
        if leaf is not parser:
            add_global_flags(leaf, suppress_defaults=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser().parse_args(argv))


def terminal_events() -> Events:
    """What the engine reports, on stderr: warnings and notes as lines; progress as one
    rewriting line only on a terminal."""
    return Events(TextSink(sys.stderr, live=sys.stderr.isatty()))


def events_of(args: argparse.Namespace) -> Events:
    return getattr(args, "events", None) or terminal_events()


def version_info() -> dict[str, str]:
    return {"gitVersion": __version__, "pythonVersion": platform.python_version(),
            "platform": f"{sys.platform}/{platform.machine()}"}


def cmd_version(args: argparse.Namespace) -> int:
    info = version_info()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"distroless {info['gitVersion']}")
        print(f"GitVersion:    {info['gitVersion']}\nPythonVersion: {info['pythonVersion']}\n"
              f"Platform:      {info['platform']}")
    return 0


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed command: bad input is a one-line `distroless: error: …` and exit 1."""
    if getattr(args, "events", None) is None:
        args.events = terminal_events()
    try:
        if getattr(args, "workdir", None):  # apko's -C/--workdir: relative paths start there
            try:
                os.chdir(args.workdir)
            except OSError as e:
                raise ConfigError(f"-C {args.workdir}: cannot change to it: {e.strerror}") from None
        return int(args.func(args) or 0)
    except DistrolessError as e:
        print(f"distroless: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        print(f"distroless: error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
