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


def _image_verbs(parser: argparse.ArgumentParser) -> list[tuple[str, str]]:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return _choices(sub.choices["image"])


def test_image_verbs_table_matches_the_registrations() -> None:
    from distroless.cli.image import VERBS

    assert _image_verbs(build_parser()) == [(verb, text) for verb, (_, text) in VERBS.items()]
    assert _image_verbs(build_parser(["image", "show-packages"])) == _image_verbs(build_parser())
    parser = build_parser(["image", "show-packages", "x.yaml"])
    assert parser.parse_args(["image", "show-packages", "x.yaml"]).func.__name__ == "cmd_show_packages"
    assert not hasattr(parser.parse_args(["image", "build"]), "func")  # a placeholder
    assert build_parser(["image", "resolve"]).parse_args(["image", "resolve", "x.yaml"]).func.__name__ == "cmd_lock"


def test_a_warm_show_packages_loads_no_yaml_crypto_resolver_or_lock_format(tmp_path) -> None:
    """The second run answers from the caches: the config is not parsed (no PyYAML), the keys
    are not parsed, the index is not read, nothing is resolved (and the output is the same)."""
    from shared import APK

    (tmp_path / "repo" / "x86_64").mkdir(parents=True)
    (tmp_path / "repo" / "x86_64" / "APKINDEX.tar.gz").write_bytes(
        (APK / "alpine-v3.16-main-x86_64" / "APKINDEX.tar.gz").read_bytes())
    key = APK / "keys" / "alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub"
    (tmp_path / "image.yaml").write_text(f"contents:\n  repositories: [{tmp_path / 'repo'}]\n  keyring: [{key}]\n"
                                         "  packages: [busybox, ifupdown-any]\narchs: [x86_64]\n")
    code = ("import sys, io, contextlib\nfrom distroless.cli import main\nout = io.StringIO()\n"
            "with contextlib.redirect_stdout(out):\n"
            f"    main(['image', 'show-packages', {str(tmp_path / 'image.yaml')!r}, '--cache-dir', {str(tmp_path / 'c')!r}])\n"
            "print(out.getvalue().count(chr(10)), sorted(m for m in sys.modules if m.startswith(('distroless', 'crypto', 'yaml'))))")
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
            for _ in range(2)]
    (cold_lines, cold), (warm_lines, warm) = [(int(r.split(" ", 1)[0]), eval(r.split(" ", 1)[1])) for r in runs]
    assert cold_lines == warm_lines >= 3
    assert "distroless.resolve" in cold and "cryptography" in cold and "yaml" in cold
    assert not [m for m in warm if m.split(".")[0] in ("cryptography", "yaml") or m in (
        "distroless.resolve", "distroless.lock", "distroless.apk.keys", "distroless.apk.index", "distroless.cli.build")]
