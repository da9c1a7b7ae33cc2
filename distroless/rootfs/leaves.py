"""Where the tree keeps the leaves packages install: rows of an unnamed SQLite database.

A build installs tens of thousands of files, symlinks and devices; held as Python objects they
cost ~0.6 KB each, so memory would grow with the package count. Here each is one row keyed by
(directory number, name), and SQLite keeps a bounded page cache (pages beyond it go to its
temporary file), so the build's memory stays flat. Names are stored as their UTF-8 bytes (with
surrogate escapes), so `ORDER BY name` is the bytewise order a layer's walk needs.
"""

from __future__ import annotations

from collections.abc import Iterator

CACHE_KIB = 1024  # SQLite's page cache: what this store may hold in memory
_BATCH = 256  # rows fetched at a time while a directory is listed


def encode(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def decode(name: bytes) -> str:
    return name.decode("utf-8", "surrogateescape")


class LeafStore:
    """(directory, name) → (owner number, an opaque record). SQLite removes the database when
    the store is collected."""

    def __init__(self) -> None:
        import sqlite3  # here: a small image never needs it

        # "" is a private temporary database on disk; one transaction for its whole life,
        # since nothing here needs to survive a crash (no journal, no sync)
        self._db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
        self._run = self._db.execute
        self._run(f"PRAGMA cache_size=-{CACHE_KIB}")
        self._run("PRAGMA journal_mode=OFF")
        self._run("PRAGMA synchronous=OFF")
        self._run("CREATE TABLE leaf (dir INTEGER, name BLOB, owner INTEGER, rec BLOB, PRIMARY KEY (dir, name))"
                  " WITHOUT ROWID")
        self._run("BEGIN")

    def get(self, directory: int, name: str) -> tuple[int, bytes] | None:
        """(owner, record) of one row."""
        return self._run("SELECT owner, rec FROM leaf WHERE dir=? AND name=?",
                         (directory, name.encode("utf-8", "surrogateescape"))).fetchone()

    def add(self, directory: int, name: str, owner: int, rec: bytes) -> bool:
        """Store a new row; False (and nothing written) when the name is taken."""
        return self._run("INSERT OR IGNORE INTO leaf VALUES (?, ?, ?, ?)",
                         (directory, name.encode("utf-8", "surrogateescape"), owner, rec)).rowcount > 0

    def delete(self, directory: int, name: str) -> int | None:
        """Remove a row; its owner, or None if there was none."""
        row = self._run("DELETE FROM leaf WHERE dir=? AND name=? RETURNING owner", (directory, encode(name))).fetchone()
        return None if row is None else row[0]

    def count(self, directory: int) -> int:
        return self._run("SELECT count(*) FROM leaf WHERE dir=?", (directory,)).fetchone()[0]

    def rows(self, directory: int) -> Iterator[tuple[bytes, int, bytes]]:
        """(encoded name, owner, record) of one directory, bytewise by name, a batch at a time."""
        cur = self._run("SELECT name, owner, rec FROM leaf WHERE dir=? ORDER BY name", (directory,))
        while batch := cur.fetchmany(_BATCH):
            yield from batch
