"""Go-style (cobra/pflag) flag semantics on argparse, shared by every `distroless` command.

apko, melange and cosign are cobra programs, and the scripts users bring call them that way:

- a boolean is `--flag`, `--flag=true` or `--flag=false` (any `strconv.ParseBool` spelling), and a
  bare boolean never takes the next word as its value (`--yes REF` leaves REF a positional);
- a list flag takes one value per occurrence, repeats append, and each value is split on commas
  as CSV (`--arch a,b --arch c` is a, b, c; `-a k=v,k2=v2` is two annotations);
- no option consumes more than one word, so options never swallow positionals;
- options and positionals may be interleaved, and options are never abbreviated.

`GoArgumentParser` enforces this: `action="bool"` and `action="list"` are the only boolean and
list spellings it accepts (`store_true`, `append`, `nargs='+'` on an option raise at definition
time), so a new flag cannot quietly regress.
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Callable, Iterator, Sequence
from typing import Any

# strconv.ParseBool, which pflag's bool flags use.
TRUE_SPELLINGS = ("1", "t", "T", "TRUE", "true", "True")
FALSE_SPELLINGS = ("0", "f", "F", "FALSE", "false", "False")
LOG_LEVELS = ("debug", "info", "warn", "warning", "error", "fatal", "panic")  # apko's slag levels


def parse_bool(text: str) -> bool:
    """Go's strconv.ParseBool: exactly these twelve spellings."""
    if text in TRUE_SPELLINGS:
        return True
    if text in FALSE_SPELLINGS:
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {text!r} (true or false)")


def split_csv(value: str) -> list[str]:
    """pflag's StringSlice reading of one occurrence: CSV fields (quotes allowed), blanks dropped."""
    try:
        rows = list(csv.reader([value], skipinitialspace=False))
    except csv.Error as e:
        raise argparse.ArgumentTypeError(f"{value!r}: {e}") from None
    return [field for row in rows for field in row if field != ""]


class GoBool(argparse.Action):
    """`--flag` sets True. Its `--flag=<spelling>` forms are exact option strings of a hidden
    companion action (`GoBoolValue`), so argparse never needs an explicit value for this one."""

    def __init__(self, option_strings: Sequence[str], dest: str, default: Any = False, **kw: Any) -> None:
        kw.pop("nargs", None)
        kw.pop("type", None)
        super().__init__(option_strings, dest, nargs=0, default=default, **kw)

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # noqa: ANN001
        setattr(namespace, self.dest, True)


class GoBoolValue(argparse.Action):
    """The hidden `--flag=true|false|1|0|…` spellings of one GoBool."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kw: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # noqa: ANN001
        setattr(namespace, self.dest, parse_bool(str(option_string).split("=", 1)[1]))


class GoList(argparse.Action):
    """One value per occurrence, split as CSV; the first occurrence replaces the default and
    later ones append (pflag's StringSlice); `type` applies to each element."""

    def __init__(self, option_strings: Sequence[str], dest: str, default: Any = None,
                 type: Callable[[str], Any] | None = None, **kw: Any) -> None:  # noqa: A002
        if kw.get("nargs") not in (None, 1):
            raise ValueError(f"{option_strings}: a list flag takes one value per occurrence")
        kw.pop("nargs", None)
        self.element_type = type or str
        super().__init__(option_strings, dest, default=list(default or []), **kw)

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # noqa: ANN001
        # pflag: the first occurrence replaces the default, later ones append
        current = getattr(namespace, self.dest, None)
        current = [] if current is None or current is self.default else list(current)
        try:
            current.extend(self.element_type(v) for v in split_csv(str(values)))
        except (TypeError, ValueError) as e:
            raise argparse.ArgumentError(self, str(e)) from None
        setattr(namespace, self.dest, current)


class GoArgumentParser(argparse.ArgumentParser):
    """argparse with cobra's flag rules (see the module doc)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        kw.setdefault("allow_abbrev", False)
        super().__init__(*args, **kw)
        self.register("action", "bool", GoBool)
        self.register("action", "list", GoList)
        self._intermixing = False

    def add_argument(self, *args: Any, **kw: Any) -> argparse.Action:
        optional = bool(args) and args[0][:1] in self.prefix_chars
        action = kw.get("action")
        if optional and action in ("store_true", "store_false", "append", "extend",
                                   argparse.BooleanOptionalAction):
            raise ValueError(f"{args}: use action='bool' or action='list' (Go-style flags)")
        if optional and kw.get("nargs") not in (None, 1, "?") and action not in ("help", "version"):
            raise ValueError(f"{args}: an option takes one value per occurrence (cobra semantics)")
        if optional and kw.get("nargs") == "?":
            raise ValueError(f"{args}: nargs='?' on an option swallows positionals; use action='bool'")
        if action == "bool" and kw.get("default") is True and kw.get("help") not in (None, argparse.SUPPRESS):
            long = next((a for a in args if a.startswith("--")), args[0])
            kw["help"] = f"{kw['help']} (default true; {long}=false turns it off)"
        added = super().add_argument(*args, **kw)
        if isinstance(added, GoBool):
            spellings = [f"{o}={v}" for o in added.option_strings for v in TRUE_SPELLINGS + FALSE_SPELLINGS]
            super().add_argument(*spellings, dest=added.dest, action=GoBoolValue)
        return added

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None):
        # cobra lets options and positionals interleave (`verify FILE --keyring K FILE2`);
        # argparse's intermixed mode does that for parsers without subcommands.
        if self._intermixing or self._subparsers is not None:
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return super().parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False

    def error(self, message: str):  # noqa: ANN201
        # `--flag=maybe` on a bool reads "ignored explicit argument"; say what is expected.
        if "ignored explicit argument" in message:
            message += " (a boolean flag takes --flag, --flag=true or --flag=false)"
        super().error(message)


def add_global_flags(p: argparse.ArgumentParser, *, suppress_defaults: bool) -> None:
    """`--log-level`, `-q` and `-C`, accepted on every command (cobra's persistent flags)."""
    d = (lambda v: argparse.SUPPRESS) if suppress_defaults else (lambda v: v)
    p.add_argument("--log-level", default=d("info"), choices=LOG_LEVELS, type=str.lower,
                   metavar="LEVEL", help="debug, info, warn or error")
    p.add_argument("-q", "--quiet", action="bool", default=d(False), help="only errors on stderr")
    p.add_argument("-C", "--workdir", default=d(""), metavar="DIR",
                   help="change to DIR first (apko's -C; relative paths start there)")


def walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every parser under `parser` (itself first), with its command path."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen: set[int] = set()
            for name, sub in action.choices.items():
                if id(sub) in seen:  # aliases
                    continue
                seen.add(id(sub))
                yield from walk(sub, (*path, name))


def leaves(parser: argparse.ArgumentParser) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """The parsers that run a command (no further subcommands)."""
    for path, p in walk(parser):
        if p._subparsers is None:
            yield path, p
