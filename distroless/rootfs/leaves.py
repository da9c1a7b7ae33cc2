"""Where the tree keeps the leaves packages install: rows of an unnamed SQLite database.

A build installs tens of thousands of files, symlinks and devices; held as Python objects they
cost ~0.6 KB each, so memory would grow with the package count. Here each is one row keyed by
(directory number, name), and SQLite keeps a bounded page cache (pages beyond it go to its
temporary file), so the build's memory stays flat. Names are stored as their UTF-8 bytes (with
surrogate escapes), so `ORDER BY name` is the bytewise order a layer's walk needs.

New rows wait in a short list and go in together: a statement per file cost ~3 µs and handed
the GIL to other threads twice. Whether a name is new is asked of a fixed-size Bloom filter
first; only a "maybe" (a name seen before, or rarely a false one) costs a query.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from typing import TypeVar

from distroless.errors import DistrolessError

CACHE_KIB = 1024  # SQLite's page cache: what this store may hold in memory
_BATCH = 256  # rows written, or fetched while a directory is listed, at a time
_BLOOM_BITS = 1 << 21  # 256 KiB, two probes: ~0.03 % false "maybe"s at 20,000 rows, 3 % at 200,000
_MASK = _BLOOM_BITS - 1
T = TypeVar("T")


class LeafStoreError(DistrolessError):
    pass


def encode(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def decode(name: bytes) -> str:
    return name.decode("utf-8", "surrogateescape")


class LeafStore:
    """(directory, name) → (owner number, an opaque record). SQLite removes the database when
    the store is collected."""

    def __init__(self) -> None:
        import sqlite3  # here: a small image never needs it

        self._errors = sqlite3.Error
        self._where = tempfile.gettempdir()
        # "" is a private temporary database on disk; one transaction for its whole life,
        # since nothing here needs to survive a crash (no journal, no sync). Its file goes where
        # the engine's other temporary files go (SQLite's own order would try /var/tmp first).
        self._db = self._sql(sqlite3.connect, "", isolation_level=None, check_same_thread=False)
        self._run("PRAGMA temp_store_directory = " + "'" + self._where.replace("'", "''") + "'")
        for statement in (f"PRAGMA cache_size=-{CACHE_KIB}", "PRAGMA journal_mode=OFF", "PRAGMA synchronous=OFF",
                          "CREATE TABLE leaf (dir INTEGER, name BLOB, owner INTEGER, rec BLOB,"
                          " PRIMARY KEY (dir, name)) WITHOUT ROWID", "BEGIN"):
            self._run(statement)
        self._bloom = bytearray(_BLOOM_BITS // 8)  # every (dir, name) ever added
        self._pending: list[tuple[int, bytes, int, bytes]] = []  # added, not yet written

    def _sql(self, call: Callable[..., T], *args: object, **kwargs: object) -> T:
        """`call`, with SQLite's errors (a full disk, an unwritable temporary directory) named."""
        try:
            return call(*args, **kwargs)
        except self._errors as e:
            raise LeafStoreError(f"the build's file list (a temporary SQLite database in {self._where}): {e}") from None

    def _run(self, statement: str, args: tuple = ()):  # type: ignore[no-untyped-def]
        return self._sql(self._db.execute, statement, args)

    def _flush(self) -> None:
        if self._pending:
            self._sql(self._db.executemany, "INSERT INTO leaf VALUES (?, ?, ?, ?)", self._pending)
            self._pending.clear()

    def add(self, directory: int, name: str, owner: int, rec: bytes) -> bool:
        """Store a new row; False (and nothing written) when the name is taken."""
        enc = name.encode("utf-8", "surrogateescape")  # encode(), inline: this runs once per file
        h = hash((directory, enc))
        a, b = h & _MASK, (h >> 24) & _MASK
        bloom = self._bloom
        if bloom[a >> 3] & (1 << (a & 7)) and bloom[b >> 3] & (1 << (b & 7)):
            self._flush()
            if not self._run("INSERT OR IGNORE INTO leaf VALUES (?, ?, ?, ?)", (directory, enc, owner, rec)).rowcount:
                return False
        else:
            self._pending.append((directory, enc, owner, rec))
            if len(self._pending) >= _BATCH:
                self._flush()
        bloom[a >> 3] |= 1 << (a & 7)
        bloom[b >> 3] |= 1 << (b & 7)
        return True

    def get(self, directory: int, name: str) -> tuple[int, bytes] | None:
        """(owner, record) of one row."""
        self._flush()
        return self._run("SELECT owner, rec FROM leaf WHERE dir=? AND name=?", (directory, encode(name))).fetchone()

    def delete(self, directory: int, name: str) -> int | None:
        """Remove a row; its owner, or None if there was none."""
        self._flush()
        row = self._run("DELETE FROM leaf WHERE dir=? AND name=? RETURNING owner", (directory, encode(name))).fetchone()
        return None if row is None else row[0]

    def count(self, directory: int) -> int:
        self._flush()
        return self._run("SELECT count(*) FROM leaf WHERE dir=?", (directory,)).fetchone()[0]

    def rows(self, directory: int) -> Iterator[tuple[bytes, int, bytes]]:
        """(encoded name, owner, record) of one directory, bytewise by name, a batch at a time."""
        self._flush()
        cur = self._run("SELECT name, owner, rec FROM leaf WHERE dir=? ORDER BY name", (directory,))
        while batch := self._sql(cur.fetchmany, _BATCH):
            yield from batch
