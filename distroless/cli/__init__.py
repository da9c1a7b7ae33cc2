# PYTHON_ARGCOMPLETE_OK (argcomplete: this entry point completes itself)
"""The `distroless` command line: a thin front door over the engine's steps."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from distroless import __version__
from distroless.errors import ConfigError, DistrolessError
from distroless.events import Events


# Every top-level command, the module under distroless/cli that registers it, and its help, in
# help order: `distroless --help` and a command's parsing import only the module they need (the
# engine behind the others is not loaded). tests/test_cli_entry.py holds this table to the
# modules' own registrations. A module's `register(sub, words)` is given the command line
# (None: register everything); `image` uses it the same way for its verbs.
COMMANDS: dict[str, tuple[str, str]] = {
    "keygen": ("apk", "generate an RSA key pair for signing packages and indexes"),
    "package": ("apk", "create, index, sign, verify and inspect APK packages"),
    "image": ("image", "build distroless images from apko YAML"),
    "generate-key-pair": ("sign", "write cosign.key (encrypted) and cosign.pub"),
    "sign": ("sign", "sign an image (registry .sig tag) or an OCI layout"),
    "attest": ("sign", "attach a signed in-toto attestation (.att tag) to an image or layout"),
    "verify": ("sign", "verify an image's (or layout's) signatures with a public key"),
    "verify-attestation": ("sign", "verify an image's (or layout's) attestations"),
    "push": ("sign", "push an OCI layout (index or image, with signatures) to REF"),
    "download": ("cosign", "print an image's signatures, attestations or SBOM"),
    "tree": ("cosign", "list an image's signatures, attestations and SBOMs"),
    "triangulate": ("cosign", "print the tag holding an image's signatures (or others)"),
    "sign-blob": ("cosign", "sign a file with a cosign key; prints the base64 signature"),
    "verify-blob": ("cosign", "verify a file's signature with a cosign public key"),
    "public-key": ("cosign", "print the public key of a cosign private key"),
    "copy": ("cosign", "copy an image with its signatures and attestations"),
    "save": ("cosign", "save an image and its signatures to an OCI layout directory"),
    "load": ("cosign", "push a saved layout (image and signatures) to REF"),
    "demo": ("bundled", "build, sign and verify the embedded example (packages, image) offline"),
    "frontend": ("bundled", "the BuildKit frontend image"),
    "completion": ("bundled", "print the shell completion script (bash: source <(distroless completion bash))"),
}


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with `argv`, only the module of the command it names is registered for
    real (the others are placeholders that only show in help)."""
    import importlib

    from distroless.cli.flags import GoArgumentParser, add_global_flags, leaves

    parser = GoArgumentParser(prog="distroless", description=__doc__)
    parser.add_argument("--version", action="version", version=f"distroless {__version__}")
    add_global_flags(parser, suppress_defaults=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    v = sub.add_parser("version", help="print the version (apko/melange/cosign `version`)")
    v.add_argument("--json", action="bool", help="print JSON")
    v.set_defaults(func=cmd_version)
    wanted = None if argv is None else _command_modules(argv)
    registered: set[str] = set()
    for name, (module, text) in COMMANDS.items():
        if wanted is None or module in wanted:
            if module not in registered:
                importlib.import_module(f"distroless.cli.{module}").register(sub, argv)
                registered.add(module)
        else:
            sub.add_parser(name, help=text)
    # cobra's persistent flags work after the verb too; the top level holds their defaults.
    # Every real command sets `func`; a placeholder (no `func`) is never the one a parse of the
    # same words selects (each command word in them was registered for real), so it needs none.
    for _path, leaf in leaves(parser):
        if leaf is not parser and leaf.get_default("func") is not None:
            add_global_flags(leaf, suppress_defaults=True)
    return parser


def _command_modules(argv: Sequence[str]) -> set[str]:
    """The modules registering any command word in `argv` (a flag's value may look like one)."""
    return {COMMANDS[w][0] for w in argv if w in COMMANDS}


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None and "_ARGCOMPLETE" in os.environ:  # a shell asks for completions
        import argcomplete

        argcomplete.autocomplete(build_parser())
    words = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(words).parse_args(words)
    if not hasattr(args, "func"):  # a placeholder answered (a flag's value looked like a command)
        args = build_parser().parse_args(words)
    return run_command(args)


def progress_sink(args: argparse.Namespace | None = None):  # noqa: ANN201
    """What the engine reports, on stderr: live `rich` bars on a terminal, one line per phase
    elsewhere; filtered by `--log-level` and `-q` (see `distroless.cli.progress`)."""
    from distroless.cli.progress import sink_for

    return sink_for(sys.stderr, log_level=getattr(args, "log_level", None) or "info",
                    quiet=bool(getattr(args, "quiet", False)))


def terminal_events(args: argparse.Namespace | None = None) -> Events:
    return Events(progress_sink(args))


def events_of(args: argparse.Namespace) -> Events:
    return getattr(args, "events", None) or terminal_events()


def version_info() -> dict[str, str]:
    import platform

    return {"gitVersion": __version__, "pythonVersion": platform.python_version(),
            "platform": f"{sys.platform}/{platform.machine()}"}


def cmd_version(args: argparse.Namespace) -> int:
    info = version_info()
    if args.json:
        import json

        print(json.dumps(info, indent=2))
    else:
        print(f"distroless {info['gitVersion']}")
        print(f"GitVersion:    {info['gitVersion']}\nPythonVersion: {info['pythonVersion']}\n"
              f"Platform:      {info['platform']}")
    return 0


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed command: bad input is a one-line `distroless: error: …` and exit 1."""
    sink = None
    if getattr(args, "events", None) is None:
        sink = progress_sink(args)
        args.events = Events(sink)
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
    finally:
        if sink is not None:
            sink.close()  # a live bar must not outlive the command


if __name__ == "__main__":
    sys.exit(main())
