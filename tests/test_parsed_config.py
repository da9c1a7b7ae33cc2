"""The parsed-config cache: the same records as a fresh parse, for the same bytes only; a damaged
or foreign entry is ignored; a file that fails to parse is never cached."""

from __future__ import annotations

from pathlib import Path

import pytest

from distroless.config import Overrides, load_image_config, reader
from distroless.config.reader import parse_image_config
from distroless.errors import ConfigError
from distroless.store import entries, parsedconfig
from shared import FIXTURES

EXAMPLES = sorted((FIXTURES / "configs" / "apko-examples").glob("*.yaml"))


def refuse_parsing(monkeypatch) -> None:
    def refuse(*a, **k):
        raise AssertionError("parsed again")

    monkeypatch.setattr(reader, "parse_image_config", refuse)


def same(a, b) -> bool:
    """Equal records, and equal positions (which dataclass equality leaves out for key origins)."""
    (ca, la), (cb, lb) = a, b
    origins = [(k.origin for k in c.contents.runtime_keyring) for c in (ca, cb)]
    return ca == cb and la == lb and la._entries == lb._entries and list(origins[0]) == list(origins[1])


def test_every_apko_example_reads_back_as_parsed(tmp_path: Path, monkeypatch) -> None:
    parse = parsedconfig.cached_parser(tmp_path)
    fresh = {}
    for path in EXAMPLES:
        try:
            fresh[path] = parse_image_config(path.read_bytes(), path.name)
        except ConfigError:
            continue  # refused examples are covered by test_a_file_that_fails_is_not_cached
        assert same(parse(path.read_bytes(), path.name), fresh[path])
    assert len(fresh) >= 15
    refuse_parsing(monkeypatch)
    for path, want in fresh.items():
        assert same(parse(path.read_bytes(), path.name), want), path.name
    with pytest.raises(AssertionError, match="parsed again"):  # another name shows other positions
        parse(EXAMPLES[0].read_bytes(), "elsewhere.yaml")


def test_includes_overrides_and_the_checksum_are_applied_as_without_the_cache(tmp_path: Path) -> None:
    src = FIXTURES / "configs" / "apko-examples"
    (tmp_path / "examples").mkdir()  # include.yaml names examples/alpine-base.yaml, as in apko's tree
    (tmp_path / "examples" / "alpine-base.yaml").write_bytes((src / "alpine-base.yaml").read_bytes())
    (tmp_path / "include.yaml").write_bytes((src / "include.yaml").read_bytes())
    ov = Overrides(archs=("x86_64",), package_append=("extra",))
    plain = load_image_config("include.yaml", ov, cwd=tmp_path)
    assert len(plain.files) == 2
    parse = parsedconfig.cached_parser(tmp_path / "cache")
    for _ in range(2):
        assert load_image_config("include.yaml", ov, cwd=tmp_path, parse=parse) == plain
    assert len(list((tmp_path / "cache" / "parsed-configs").iterdir())) == 2


def test_a_damaged_or_foreign_entry_is_ignored_and_written_again(tmp_path: Path) -> None:
    parse = parsedconfig.cached_parser(tmp_path)
    data = (FIXTURES / "configs" / "apko-examples" / "nginx.yaml").read_bytes()
    want = parse(data, "nginx.yaml")
    (entry,) = (tmp_path / "parsed-configs").iterdir()
    blob = bytearray(entry.read_bytes())
    blob[-3] ^= 0xFF
    entry.write_bytes(bytes(blob))
    assert same(parse(data, "nginx.yaml"), want)
    assert entry.read_bytes() != bytes(blob)  # written again
    # intact entries that are not records of ours: a class outside the table, another shape
    mark = ("D", "Mark", ["x", 1, 1])
    for value in [("D", "Popen", ["rm -rf /"]), ("T", [mark]), ("T", [mark, mark]), ["not", "a", "pair"]]:
        entries.store(entry, parsedconfig.MAGIC, value)
        assert same(parse(data, "nginx.yaml"), want)


def test_changed_bytes_are_parsed_again(tmp_path: Path) -> None:
    parse = parsedconfig.cached_parser(tmp_path)
    base = b"contents:\n  packages: [a]\narchs: [x86_64]\n"
    assert parse(base, "c.yaml")[0].contents.packages == ("a",)
    assert parse(base.replace(b"[a]", b"[b]"), "c.yaml")[0].contents.packages == ("b",)


def test_a_file_that_fails_is_not_cached(tmp_path: Path) -> None:
    parse = parsedconfig.cached_parser(tmp_path)
    bad = b"contents:\n  packagez: [a]\n"
    for _ in range(2):
        with pytest.raises(ConfigError, match="unknown key 'packagez'"):
            parse(bad, "bad.yaml")
    assert not (tmp_path / "parsed-configs").exists()
