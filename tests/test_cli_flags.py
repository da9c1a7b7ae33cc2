"""Go-style (cobra) flags on every command: walk every parser and try each flag's spellings."""

from __future__ import annotations

import argparse

import pytest

from distroless.cli import build_parser
from distroless.cli.flags import (FALSE_SPELLINGS, TRUE_SPELLINGS, GoArgumentParser, GoBool, GoBoolValue, GoList,
                                  leaves, parse_bool, split_csv)

PARSER = build_parser()
LEAVES = list(leaves(PARSER))


def _positional_fill(p: argparse.ArgumentParser) -> list[str]:
    """One word for each positional (two for nargs=2); a positional with choices gets its first."""
    words: list[str] = []
    for a in p._actions:
        if a.option_strings or isinstance(a, argparse._SubParsersAction):
            continue
        if a.nargs in (None, "+", "*", "?", 1):
            words.append(list(a.choices)[0] if a.choices else f"POS-{a.dest}")
        elif isinstance(a.nargs, int):
            words += [f"POS-{a.dest}-{i}" for i in range(a.nargs)]
    return words


def _required_options(p: argparse.ArgumentParser) -> list[str]:
    out: list[str] = []
    for a in p._actions:
        if a.option_strings and a.required:
            out += [a.option_strings[-1], "REQ"]
    return out


def _parse(path: tuple[str, ...], *words: str) -> argparse.Namespace:
    return PARSER.parse_args([*path, *words])


def _bools() -> list:
    return list(_iter_bools())


def _lists() -> list:
    return list(_iter_lists())


def _iter_bools():
    for path, p in LEAVES:
        for a in p._actions:
            if isinstance(a, GoBool):
                yield pytest.param(path, p, a, id=" ".join(path) + " " + a.option_strings[0])


def _iter_lists():
    for path, p in LEAVES:
        for a in p._actions:
            if isinstance(a, GoList):
                yield pytest.param(path, p, a, id=" ".join(path) + " " + a.option_strings[0])


def test_the_walk_finds_every_command():
    names = {" ".join(path) for path, _ in LEAVES}
    assert {"image build", "package create", "package verify", "sign", "verify"} <= names
    assert len([1 for _ in _bools()]) > 30 and len([1 for _ in _lists()]) > 20


@pytest.mark.parametrize("path,p", [pytest.param(path, p, id=" ".join(path) or "distroless") for path, p in LEAVES])
def test_no_option_takes_several_words_or_is_a_plain_argparse_boolean(path, p):
    for a in p._actions:
        if not a.option_strings or isinstance(a, (argparse._HelpAction, argparse._VersionAction, GoBoolValue)):
            continue
        assert isinstance(a, (GoBool, GoList)) or (a.nargs is None and isinstance(a, argparse._StoreAction)), \
            f"{' '.join(path)} {a.option_strings}: {type(a).__name__} nargs={a.nargs}"


@pytest.mark.parametrize("path,p,action", _bools())
def test_every_boolean_takes_each_parsebool_spelling_and_never_a_word(path, p, action):
    base = [*_required_options(p), *_positional_fill(p)]
    for opt in action.option_strings:
        for spelling in TRUE_SPELLINGS + FALSE_SPELLINGS:
            ns = _parse(path, *base, f"{opt}={spelling}")
            assert getattr(ns, action.dest) is parse_bool(spelling), f"{opt}={spelling}"
        # bare: True, and the next word stays a positional (`--yes REF`)
        fill = _positional_fill(p)
        if fill:
            ns = _parse(path, *_required_options(p), opt, *fill)
            assert getattr(ns, action.dest) is True
            assert fill[0] in str(vars(ns)), f"{opt} swallowed {fill[0]}"
        else:
            with pytest.raises(SystemExit):
                _parse(path, *base, opt, "false")  # a word after a bare bool is not its value
    with pytest.raises(SystemExit):
        _parse(path, *base, f"{action.option_strings[-1]}=maybe")


@pytest.mark.parametrize("path,p,action", _lists())
def test_every_list_appends_and_splits_on_commas(path, p, action):
    base = [*_required_options(p), *_positional_fill(p)]
    long = action.option_strings[-1]
    ns = _parse(path, *base, long, "a1,a2", long, "a3", f"{long}=a4")
    got = [str(v).rsplit("/", 1)[-1] for v in getattr(ns, action.dest)]
    assert got == ["a1", "a2", "a3", "a4"]
    fill = _positional_fill(p)
    if fill:  # one word per occurrence: the next word is a positional again
        ns = _parse(path, *_required_options(p), long, "only", *fill)
        assert [str(v).rsplit("/", 1)[-1] for v in getattr(ns, action.dest)] == ["only"]


def test_the_reported_invocations():
    ns = _parse((), "package", "verify", "--keyring", "K", "FILE")
    assert [str(k) for k in ns.keyring] == ["K"] and [str(f) for f in ns.files] == ["FILE"]
    ns = _parse((), "package", "create", "--depends", "a", "--depends", "b", "DIR", "--name", "n", "--version", "1-r0",
                "-o", "o.apk")
    assert ns.depends == ["a", "b"] and str(ns.dir) == "DIR"
    ns = _parse((), "package", "create", "DIR", "--provides", "a", "--provides", "b,c", "--name", "n",
                "--version", "1-r0", "-o", "o.apk")
    assert ns.provides == ["a", "b", "c"]
    ns = _parse((), "verify", "--key", "k.pub", "--insecure-ignore-tlog", "REF")
    assert ns.ref == ["REF"] and ns.insecure_ignore_tlog is True  # verify takes several images, as cosign
    ns = _parse((), "sign", "--key", "k", "-a", "k=v,k2=v2", "--tlog-upload", "--yes", "REF")
    assert ns.annotations == ["k=v", "k2=v2"] and ns.ref == "REF"
    ns = _parse((), "package", "build", "r.yaml", "--generate-index", "--empty-workspace=true")
    assert ns.generate_index is True and ns.empty_workspace is True
    ns = _parse((), "package", "index", "--merge=true", "a.apk")
    assert ns.merge is True
    # options after the positionals and between them, as cobra allows
    ns = _parse((), "package", "verify", "A.apk", "--keyring", "K", "B.apk")
    assert [str(f) for f in ns.files] == ["A.apk", "B.apk"]
    # global flags on any verb, after it
    ns = _parse((), "package", "info", "x.apk", "--log-level", "DEBUG", "-q")
    assert ns.log_level == "debug" and ns.quiet is True


def test_csv_quoting_as_pflag():
    assert split_csv('"a,b",c') == ["a,b", "c"]
    assert split_csv("") == []


@pytest.mark.parametrize("bad", [dict(action="store_true"), dict(action="append"), dict(nargs="+"), dict(nargs="*"),
                                 dict(nargs="?"), dict(action=argparse.BooleanOptionalAction)])
def test_the_parser_refuses_argparse_spellings_that_break_cobra_semantics(bad):
    p = GoArgumentParser(prog="x")
    with pytest.raises(ValueError):
        p.add_argument("--flag", **bad)
