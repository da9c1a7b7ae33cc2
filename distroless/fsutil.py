"""Filesystem edges: every output is written to a temporary file and renamed into place."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable, Iterator


@contextmanager
def staged_output(directory: str | os.PathLike[str], mode: int = 0o644) -> Iterator[tuple[BinaryIO, Callable[[str], Path]]]:
    """A temp file in `directory` and `place(name)`, which moves it to `directory/name` — for
    outputs named by their own content. A file never placed is removed."""
    directory = Path(directory)
    fd, tmp = tempfile.mkstemp(prefix=".staged.", suffix=".tmp", dir=directory)
    placed: list[Path] = []
    with os.fdopen(fd, "wb") as f:
        def place(name: str) -> Path:
            f.flush()
            os.fchmod(f.fileno(), mode)
            final = directory / name
            os.replace(tmp, final)
            placed.append(final)
            return final
        try:
            yield f, place
        finally:
            if not placed:
                Path(tmp).unlink(missing_ok=True)


@contextmanager
def atomic_output(path: str | os.PathLike[str], mode: int = 0o644) -> Iterator[BinaryIO]:
    """A file object whose contents appear at `path` only if the block completes."""
    path = Path(path)
    with staged_output(path.parent if str(path.parent) else ".", mode) as (f, place):
        yield f
        place(path.name)


def atomic_write(path: str | os.PathLike[str], data: bytes, mode: int = 0o644) -> None:
    with atomic_output(path, mode) as f:
        f.write(data)


# Inputs a user names (configs, includes, recipes, keys) are small: anything bigger, or anything
# that is not a regular file (/dev/zero, a FIFO, a directory), is refused before it is read.
CONFIG_CAP = 4 << 20
KEY_CAP = 1 << 20


class InputFileError(OSError):
    """A named input is not a regular file, or is larger than its cap. Carries the file name,
    like any OSError, so the CLI's one-line report names it."""


def read_regular(path: str | os.PathLike[str], cap: int, what: str = "file") -> bytes:
    """The bytes of `path`, which must be a regular file of at most `cap` bytes. Opened with
    O_NONBLOCK so that a FIFO cannot block the open; checked with fstat on the opened file, so
    the check and the read concern the same file."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputFileError(errno.EINVAL, f"not a regular file (a {what} must be one)", os.fspath(path))
        if st.st_size > cap:
            raise InputFileError(errno.EFBIG, f"{what} is larger than the cap of {cap} bytes", os.fspath(path))
        os.set_blocking(fd, True)
        chunks: list[bytes] = []
        total = 0
        while chunk := os.read(fd, min(1 << 20, cap + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > cap:  # grew while being read
                raise InputFileError(errno.EFBIG, f"{what} is larger than the cap of {cap} bytes", os.fspath(path))
        return b"".join(chunks)
    finally:
        os.close(fd)
