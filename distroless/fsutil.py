"""Filesystem edges: every output is written to a temporary file and renamed into place."""

from __future__ import annotations

import os
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
