"""Filesystem edges: every output is written to a temporary file and renamed into place."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import fnmatch
import os
import stat
import time
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable, Iterator


# Leftovers of a killed process (temp files, work directories) are removed at the next start,
# but only when old enough and not locked: every live writer holds an flock on its temp file or
# work directory for as long as it works.
STALE_AGE = 60.0


def hold(fd: int) -> None:
    """Mark an open temp file or directory (by descriptor) as in use until it is closed."""
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)


@contextmanager
def held_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold a work directory (created by the caller) for the block."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        hold(fd)
        yield Path(path)
    finally:
        os.close(fd)


def _in_use(path: str) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return True  # vanished or unreadable: leave it alone
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def clean_stale(directory: str | os.PathLike[str], patterns: tuple[str, ...], *,
                min_age: float = STALE_AGE) -> list[str]:
    """Remove entries of `directory` matching `patterns` that are older than `min_age` seconds
    and held by no live process. Returns the names removed."""
    removed: list[str] = []
    now = time.time()
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        if not any(fnmatch.fnmatchcase(entry.name, p) for p in patterns):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if now - st.st_mtime < min_age or _in_use(entry.path):
            continue
        if stat.S_ISDIR(st.st_mode):
            _rmtree(entry.path)
        else:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
        removed.append(entry.name)
    return removed


def _rmtree(path: str) -> None:
    def fix(func, p, _exc):  # type: ignore[no-untyped-def]  # modes inside may deny deletion
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(p), 0o700)
            func(p)
    import shutil

    shutil.rmtree(path, onerror=fix)


_cleaned: set[str] = set()
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS)


def _named(e: OSError, name: Path) -> OSError:
    """The same error, naming the file being written (a bare ENOSPC names nothing)."""
    if e.filename is not None or e.errno not in _WRITE_ERRNOS:
        return e
    return OSError(e.errno, e.strerror or str(e), str(name))


@contextmanager
def staged_output(directory: str | os.PathLike[str], mode: int = 0o644) -> Iterator[tuple[BinaryIO, Callable[[str], Path]]]:
    """A temp file in `directory` and `place(name)`, which moves it to `directory/name` — for
    outputs named by their own content. A file never placed is removed. The first use of a
    directory in a process removes stale temp files a killed run left there."""
    directory = Path(directory)
    key = os.path.abspath(directory)
    if key not in _cleaned:
        _cleaned.add(key)
        clean_stale(directory, (".staged.*.tmp",))
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=".staged.", suffix=".tmp", dir=directory)
    hold(fd)
    placed: list[Path] = []
    try:
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
    except OSError as e:  # also a failed flush on close: it would otherwise name no file
        raise _named(e, Path(tmp)) from None


@contextmanager
def atomic_output(path: str | os.PathLike[str], mode: int = 0o644) -> Iterator[BinaryIO]:
    """A file object whose contents appear at `path` only if the block completes."""
    path = Path(path)
    try:
        with staged_output(path.parent if str(path.parent) else ".", mode) as (f, place):
            yield f
            place(path.name)
    except OSError as e:
        if e.filename and os.path.basename(str(e.filename)).startswith(".staged."):
            raise OSError(e.errno, e.strerror, str(path)) from None  # name the output, not its temp
        raise


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
