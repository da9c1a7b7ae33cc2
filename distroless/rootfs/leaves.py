"""Where the tree keeps the leaves packages install: rows of an unnamed SQLite database.

A build installs tens of thousands of files, symlinks and devices; held as Python objects they
cost ~0.6 KB each, so memory would grow with the package count. Here each is one row keyed by
(directory number, name), and SQLite keeps a bounded page cache (pages beyond it go to its
temporary file), so the build's memory stays flat. Names are stored as their UTF-8 bytes (with
surrogate escapes), so `ORDER BY name` is the bytewise order a layer's walk needs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

CACHE_KIB = 1024  # SQLite's page cache: what this store may hold in memory
_BATCH = 256  # rows fetched at a time while a directory is listed


def encode(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def decode(name: bytes) -> str:
    return name.decode("utf-8", "surrogateescape")


class LeafStore:
    """(directory, name) → an opaque record. The database is made on first write and removed
    by SQLite when the store is closed or collected."""

    def __init__(self) -> None:
        self._db: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            # "" is a private temporary database on disk; one transaction for its whole life,
            # since nothing here needs to survive a crash (no journal, no sync)
            db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
            db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            db.execute("PRAGMA journal_mode=OFF")
            db.execute("PRAGMA synchronous=OFF")
            db.execute("CREATE TABLE leaf (dir INTEGER, name BLOB, rec BLOB, PRIMARY KEY (dir, name)) WITHOUT ROWID")
            db.execute("BEGIN")
            self._db = db
        return self._db

    def get(self, directory: int, name: str) -> bytes | None:
        if self._db is None:
            return None
        row = self._db.execute("SELECT rec FROM leaf WHERE dir=? AND name=?", (directory, encode(name))).fetchone()
        return row[0] if row else None

    def put(self, directory: int, name: str, rec: bytes) -> None:
        self._conn().execute("INSERT OR REPLACE INTO leaf VALUES (?, ?, ?)", (directory, encode(name), rec))

    def delete(self, directory: int, name: str) -> bool:
        if self._db is None:
            return False
        return self._db.execute("DELETE FROM leaf WHERE dir=? AND name=?", (directory, encode(name))).rowcount > 0

    def count(self, directory: int) -> int:
        if self._db is None:
            return 0
        return self._db.execute("SELECT count(*) FROM leaf WHERE dir=?", (directory,)).fetchone()[0]

    def rows(self, directory: int) -> Iterator[tuple[bytes, bytes]]:
        """(encoded name, record) of one directory, bytewise by name, a batch at a time."""
        if self._db is None:
            return
        cur = self._db.execute("SELECT name, rec FROM leaf WHERE dir=? ORDER BY name", (directory,))
        while batch := cur.fetchmany(_BATCH):
            yield from batch

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
