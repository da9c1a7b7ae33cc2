"""The CLI's entry point registers only the command it runs: `--help` loads no engine module,
and the placeholder table matches what the command modules register."""

from __future__ import annotations

import argparse
import subprocess
import sys

from distroless.cli import COMMANDS, build_parser


def _choices(parser: argparse.ArgumentParser) -> list[tuple[str, str]]:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return [(a.dest, a.help) for a in sub._choices_actions]


def test_table_matches_the_modules_registrations() -> None:
    real = _choices(build_parser())
    assert real[0][0] == "version"  # always registered: it needs nothing
    assert real[1:] == [(name, text) for name, (_, text) in COMMANDS.items()]
    assert build_parser([]).format_help() == build_parser().format_help()


def test_help_loads_no_engine_module() -> None:
    code = ("import sys\nfrom distroless.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('distroless')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = eval(out.strip().splitlines()[-1])
    assert loaded == ["distroless", "distroless.cli", "distroless.cli.flags", "distroless.errors",
                      "distroless.events"]


def test_a_command_registers_only_its_module() -> None:
    parser = build_parser(["keygen", "k"])
    assert parser.parse_args(["keygen", "k"]).func.__module__ == "distroless.cli.apk"
    # the other commands are placeholders: still listed, still valid words
    assert [n for n, _ in _choices(parser)] == ["version", *COMMANDS]
    r = subprocess.run([sys.executable, "-m", "distroless", "image", "show-packages", "--help"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "--format" in r.stdout
    r = subprocess.run([sys.executable, "-m", "distroless", "nosuch"], capture_output=True, text=True)
    assert r.returncode == 2 and "invalid choice: 'nosuch'" in r.stderr


def test_a_flag_value_that_looks_like_a_command_still_parses(tmp_path) -> None:
    """`-C image keygen k`: the first command word is the directory; the full parser takes over."""
    (tmp_path / "image").mkdir()
    r = subprocess.run([sys.executable, "-m", "distroless", "-C", "image", "keygen", "k"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "image" / "k").exists()
