"""Dependency atoms: parsing, printing, matching, errors."""

from __future__ import annotations

import pytest

from distroless.apk.atom import Atom, parse_atoms
from distroless.errors import FormatError


@pytest.mark.parametrize(
    ("text", "name", "op", "version", "pin", "conflict"),
    [
        ("busybox", "busybox", "", "", "", False),
        ("musl=1.2.3-r0", "musl", "=", "1.2.3-r0", "", False),
        ("openssl>3", "openssl", ">", "3", "", False),
        ("openssl<3", "openssl", "<", "3", "", False),
        ("openssl>=3.0", "openssl", ">=", "3.0", "", False),
        ("openssl<=3.0", "openssl", "<=", "3.0", "", False),
        ("python3~3.10", "python3", "~", "3.10", "", False),
        ("python3=~3.10", "python3", "~", "3.10", "", False),
        ("a>~2.5", "a", ">~", "2.5", "", False),
        ("!b>1", "b", ">", "1", "", True),
        ("!mail-reader", "mail-reader", "", "", "", True),
        ("a@testing", "a", "", "", "testing", False),
        ("a@testing>=2", "a", ">=", "2", "testing", False),
        ("a>=2@testing", "a", ">=", "2", "testing", False),
        ("so:libc.musl-x86_64.so.1", "so:libc.musl-x86_64.so.1", "", "", "", False),
        ("so:libssl.so.3=3", "so:libssl.so.3", "=", "3", "", False),
        ("cmd:busybox=1.37.0-r0", "cmd:busybox", "=", "1.37.0-r0", "", False),
        ("pc:libcurl>=7", "pc:libcurl", ">=", "7", "", False),
        ("/bin/sh", "/bin/sh", "", "", "", False),
        ("so:openjdk8:libawt.so=0", "so:openjdk8:libawt.so", "=", "0", "", False),
        ("foo><Q1abc=", "foo", "><", "Q1abc=", "", False),
    ],
)
def test_parse(text: str, name: str, op: str, version: str, pin: str, conflict: bool) -> None:
    atom = Atom.parse(text)
    assert atom == Atom(name, op, version, pin, conflict)
    assert Atom.parse(str(atom)) == atom  # round trip through apk's spelling


def test_str_uses_apk_order() -> None:
    assert str(Atom.parse("a>=2@testing")) == "a@testing>=2"
    assert str(Atom.parse("!b>1")) == "!b>1"
    assert str(Atom.parse("python3=~3.10")) == "python3~3.10"


@pytest.mark.parametrize("text", ["", "!", "foo=", "foo==", "foo=invalid", "foo@", "=1", "foo<>1", "foo=1@a@b", "a b"])
def test_malformed_names_the_atom(text: str) -> None:
    with pytest.raises(FormatError) as exc:
        Atom.parse(text)
    assert repr(text.strip()) in str(exc.value) or text.strip() == ""


def test_matches() -> None:
    assert Atom.parse("a>=2").matches("2.1")
    assert not Atom.parse("a>=2").matches("1.9")
    assert Atom.parse("a").matches("0")
    assert Atom.parse("a~2.2").matches("2.2.9") and not Atom.parse("a~2.2").matches("2.10")
    assert not Atom.parse("!b>1").matches("2")  # a conflict atom is violated by b-2
    assert Atom.parse("!b>1").matches("1")
    assert Atom.parse("a").matches(None)  # an unversioned provide satisfies an unversioned atom
    assert not Atom.parse("a>1").matches(None)


def test_so_version_rewrite() -> None:
    # apko's rule for melange-built so: dependencies: `=V` without -rN also accepts `0.V`.
    assert Atom.parse("so:libfoo.so.1=1").matches("0.1")
    assert Atom.parse("so:libfoo.so.1=1").matches("1")
    assert not Atom.parse("so:libfoo.so.1=1-r0").matches("0.1-r0")
    assert not Atom.parse("libfoo=1").matches("0.1")


def test_parse_atoms() -> None:
    assert [a.name for a in parse_atoms("so:libc.so.6 !musl  busybox")] == ["so:libc.so.6", "musl", "busybox"]
