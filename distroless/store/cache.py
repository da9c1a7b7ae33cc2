"""The content-addressed cache: every blob stored once under its sha256, verified before it enters.

Layout under the cache root:
  blobs/sha256/<hex>        verified bytes (packages and index files), read-only
  refs/apk/<control sha1>   "<sha256> <size>": which blob holds the package with that `C:`
  refs/index/<sha256(url)>  "<sha256>": the last verified index fetched from that URL
  refs/local/<control sha1> "<sha256> <size>": a package read in place from a local repository
                            (its expansion is kept under expanded/<sha256>, the file is not copied)
  expanded/<sha256>/        a verified package's data tar and metadata (`store.expand`)
  tmp/                      downloads in progress
  parsed/, parsed-configs/, steps/resolve/
                            derived entries (`store.entries`): parsed indexes (`fetch.parsedindex`),
                            parsed config files (`store.parsedconfig`), the resolve step's answers
                            (`resolvecache`); each module says what its key covers
Every write is a temp file renamed into place, so concurrent processes never see partial files.
"""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

from distroless.errors import DistrolessError
from distroless.fsutil import clean_stale, hold


class Cache:
    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)  # the front door chooses it (hostenv.cache_root by default)
        for d in ("blobs/sha256", "refs/apk", "refs/index", "refs/local", "expanded", "tmp"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        # What a killed run left: downloads, expansions and image staging directories.
        clean_stale(self.root / "tmp", ("dl-*", "ref-*", "expand-*", "build-*"))

    def blob(self, sha256: str) -> Path:
        return self.root / "blobs" / "sha256" / sha256

    @contextmanager
    def incoming(self) -> Iterator[tuple[BinaryIO, Path]]:
        """A temp file for a download; removed unless `admit` moved it into the store."""
        import tempfile

        fd, name = tempfile.mkstemp(dir=self.root / "tmp", prefix="dl-")
        path = Path(name)
        try:
            with open(name, "w+b") as f:  # by name, so that errors (disk full) name the file
                os.close(fd)
                hold(f.fileno())  # a live download: the next run's cleanup leaves it alone
                yield f, path
        finally:
            path.unlink(missing_ok=True)

    def admit(self, tmp: Path, sha256: str) -> Path:
        """Move a verified temp file into the store under its digest (idempotent across processes)."""
        dest = self.blob(sha256)
        os.chmod(tmp, 0o444)
        os.replace(tmp, dest)
        return dest

    def _write_ref(self, path: Path, text: str) -> None:
        import tempfile

        fd, tmp = tempfile.mkstemp(dir=self.root / "tmp", prefix="ref-")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, path)
        except OSError as e:  # a full disk names nothing: name the ref
            Path(tmp).unlink(missing_ok=True)
            raise OSError(e.errno, e.strerror, str(path)) from None

    # packages, keyed by the control checksum an index or lock gives
    def record_apk(self, checksum: str, sha256: str, size: int) -> None:
        self._write_ref(self._apk_ref("apk", checksum), f"{sha256} {size}\n")

    def find_apk(self, checksum: str, sha256: str | None = None, size: int | None = None) -> Path | None:
        """The cached package with control checksum `checksum`, re-checked cheaply: the blob's size
        and its control member's SHA-1. A blob that fails is evicted and reported as a miss.

        The control checksum does not cover the signature member, so the same package re-signed
        elsewhere has the same checksum but other bytes: `sha256` (from a lock) or `size` (the
        index's `S:`) tell such copies apart."""
        ref = self._apk_ref("apk", checksum)
        found = _read_ref(ref, sha256, size)
        if found is None:
            return None
        path = self.blob(found[0])
        if not _is_package(path, *found[1:]):
            path.unlink(missing_ok=True)
            ref.unlink(missing_ok=True)
            return None
        return path

    def record_local(self, checksum: str, sha256: str, size: int) -> None:
        self._write_ref(self._apk_ref("local", checksum), f"{sha256} {size}\n")

    def find_local(self, path: Path, checksum: str, sha256: str | None = None, size: int | None = None) -> str | None:
        """The sha256 under which the package at `path` (a local repository's file, read in
        place) was expanded, if it still is that package: `find_apk`'s checks, made on `path`
        (which is the user's: a miss leaves it alone, and the caller reads it again)."""
        found = _read_ref(self._apk_ref("local", checksum), sha256, size)
        return found[0] if found is not None and _is_package(path, *found[1:]) else None

    def _apk_ref(self, kind: str, checksum: str) -> Path:
        from distroless.apk.package import q1_to_hex  # the package reader: only when packages are used

        return self.root / "refs" / kind / q1_to_hex(checksum, "cache")

    # indexes, keyed by URL (the content is re-verified whenever it is parsed)
    def record_index(self, url: str, sha256: str) -> None:
        self._write_ref(self._index_ref(url), sha256 + "\n")

    def find_index(self, url: str) -> Path | None:
        try:
            digest = self._index_ref(url).read_text().strip()
        except OSError:
            return None
        path = self.blob(digest)
        return path if path.exists() else None

    def _index_ref(self, url: str) -> Path:
        return self.root / "refs" / "index" / hashlib.sha256(url.encode()).hexdigest()


def _read_ref(ref: Path, sha256: str | None, size: int | None) -> tuple[str, int, str] | None:
    """(digest, size, control SHA-1) from a package ref, if it matches what the caller pins."""
    try:
        digest, stored = ref.read_text().split()
        stored_size = int(stored)
    except (OSError, ValueError):
        return None
    if (sha256 is not None and digest != sha256) or (size is not None and stored_size != size):
        return None
    return digest, stored_size, ref.name


def _is_package(path: Path, size: int, control_sha1: str) -> bool:
    """`path` holds the package a ref names: the right size and control member (cheap checks)."""
    try:
        return path.stat().st_size == size and _control_sha1(path) == control_sha1
    except (OSError, DistrolessError):
        return False


def _control_sha1(path: Path) -> str:
    """SHA-1 of the control member, reading only the first one or two members."""
    from distroless.apk.gzmember import MemberReader
    from distroless.apk.package import CONTROL_CAP
    from distroless.apk.signature import is_signature_tar

    with open(path, "rb") as f:
        reader = MemberReader(f, str(path))
        sha1 = hashlib.sha1()
        first = reader.next("first member", CONTROL_CAP, sha1)
        signed = is_signature_tar(first.read(6))
        first.drain()
        if signed:
            sha1 = hashlib.sha1()
            reader.next("control member", CONTROL_CAP, sha1).drain()
        return sha1.hexdigest()
