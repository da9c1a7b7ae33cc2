"""Every argument of every command has `--help` text, and `--help` works on every command."""

from __future__ import annotations

import argparse
import contextlib
import io

import pytest

from distroless.cli import build_parser
from distroless.cli.flags import GoBoolValue, walk

PARSER = build_parser()
PARSERS = list(walk(PARSER))


def undocumented(parser: argparse.ArgumentParser) -> list[str]:
    skip = (argparse._HelpAction, argparse._SubParsersAction, argparse._VersionAction, GoBoolValue)
    return [a.option_strings[-1] if a.option_strings else a.dest
            for a in parser._actions if not isinstance(a, skip) and not a.help]


@pytest.mark.parametrize("path, parser", PARSERS, ids=[" ".join(p) or "distroless" for p, _ in PARSERS])
def test_every_argument_has_help(path, parser):
    assert undocumented(parser) == [], f"`distroless {' '.join(path)}`: arguments without help"
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as e:
        PARSER.parse_args([*path, "--help"])
    assert e.value.code == 0 and "usage: distroless" in out.getvalue()


def test_the_check_can_fail():
    p = argparse.ArgumentParser()
    p.add_argument("--documented", help="yes")
    p.add_argument("--bare")
    p.add_argument("positional")
    assert undocumented(p) == ["--bare", "positional"]
    assert {("download", "signature"), ("frontend", "build"), ("image", "build")} <= {p for p, _ in PARSERS}
