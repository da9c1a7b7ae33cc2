"""Expansions on every core: `expand` in forked worker processes.

Verifying and unpacking a package is CPU work, a third of it Python (tar headers, entries) that
threads serialise on the GIL: two threads on two cores reach ~1.5× one thread, two processes ~1.9×.
The workers are forked when the pool is made, before the caller starts any thread (forking a
threaded process can copy a lock that another thread holds); where that cannot be promised (a
thread already runs, no fork, one core) the pool expands in the calling thread instead.

Each worker serves one request at a time over its own socket pair (pickled arguments in, the
`Expanded` or the exception out): a caller checks a worker out, so no broker thread is needed
(`concurrent.futures`' process pool spent ~1 ms of this process's CPU per package on its manager
thread and queues).
"""

from __future__ import annotations

import os
import pickle
import queue
import socket
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

from distroless.errors import DistrolessError
from distroless.limits import DEFAULT_LIMITS, Limits
from distroless.store.cache import Cache
from distroless.store.expand import Expanded, expand

_LEN = 8  # bytes of a message's length prefix


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _send(sock: socket.socket, obj: object) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(len(data).to_bytes(_LEN, "little") + data)


def _recv_exactly(sock: socket.socket, n: int) -> bytearray:
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = sock.recv_into(view[got:])
        if not k:
            raise EOFError("the other end closed the socket")
        got += k
    return buf


def _recv(sock: socket.socket) -> object:
    n = int.from_bytes(_recv_exactly(sock, _LEN), "little")
    return pickle.loads(_recv_exactly(sock, n))


def _serve(sock: socket.socket) -> None:
    """A worker's loop: expand what is asked until the pool closes its end."""
    while True:
        try:
            args, kwargs = _recv(sock)  # type: ignore[misc]
        except (EOFError, OSError, KeyboardInterrupt):
            return
        try:
            reply: tuple[bool, object] = (True, expand(*args, **kwargs))
        except BaseException as e:  # noqa: BLE001 - the caller re-raises it
            reply = (False, e)
        try:
            _send(sock, reply)
        except (pickle.PicklingError, TypeError, AttributeError):  # an exception that does not pickle
            _send(sock, (False, DistrolessError(f"{type(reply[1]).__name__}: {reply[1]}")))


class _Worker:
    def __init__(self, pid: int, sock: socket.socket):
        self.pid, self.sock = pid, sock


def _fork_worker(others: list[_Worker]) -> _Worker:
    ours, theirs = socket.socketpair()
    try:
        pid = os.fork()
    except OSError:
        ours.close()
        theirs.close()
        raise
    if pid == 0:  # the worker: only its own socket stays open, so each sees the pool close it
        try:
            ours.close()
            for w in others:
                w.sock.close()
            _serve(theirs)
        finally:
            os._exit(0)  # never the parent's exit handlers (temp directories, buffered output)
    theirs.close()
    return _Worker(pid, ours)


class ExpandPool:
    """`pool(apk, cache, ...)` is `expand(apk, cache, ...)`, run by one of `workers` processes."""

    def __init__(self, workers: int):
        self._workers: list[_Worker] = []
        self._idle: queue.SimpleQueue[_Worker] | None = None
        if workers > 1 and sys.platform == "linux" and threading.active_count() == 1:
            try:
                for _ in range(workers):
                    self._workers.append(_fork_worker(self._workers))
            except OSError:  # no more processes allowed: expand here, as on one core
                self.close()
                return
            self._idle = queue.SimpleQueue()
            for w in self._workers:
                self._idle.put(w)

    @property
    def forked(self) -> bool:
        return self._idle is not None

    def __call__(self, apk_path: Path, cache: Cache, *, expected_checksum: str | None = None,
                 expected_sha256: str | None = None, source: str | None = None,
                 limits: Limits = DEFAULT_LIMITS) -> Expanded:
        kwargs = dict(expected_checksum=expected_checksum, expected_sha256=expected_sha256, source=source,
                      limits=limits)
        if self._idle is None:
            return expand(apk_path, cache, **kwargs)  # type: ignore[arg-type]
        worker = self._idle.get()
        try:
            _send(worker.sock, ((apk_path, cache), kwargs))
            ok, value = _recv(worker.sock)  # type: ignore[misc]
        except (EOFError, OSError):
            raise DistrolessError(f"{source or apk_path}: the process expanding it died (killed, or out of memory?); "
                                  "nothing of it was kept") from None
        finally:
            self._idle.put(worker)  # a dead one too: the next caller fails fast instead of waiting
        if not ok:
            raise value  # type: ignore[misc]
        return value  # type: ignore[return-value]

    def close(self) -> None:
        for w in self._workers:
            w.sock.close()  # the worker's recv sees the end and it exits
        for w in self._workers:
            os.waitpid(w.pid, 0)
        self._workers, self._idle = [], None

    def __enter__(self) -> ExpandPool:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def expand_pinned(pins: Sequence, apks: Sequence[str | os.PathLike[str]], cache: Cache, *,
                  jobs: int = 4) -> list[Expanded]:
    """Verify and expand each .apk against its pin (`packages.Pinned`: control checksum and,
    when locked, whole-file sha256), in pin order; the caller has matched their counts."""
    with ExpandPool(min(max(1, jobs), cores())) as pool, ThreadPoolExecutor(max_workers=max(1, jobs)) as threads:
        return list(threads.map(lambda pa: pool(Path(pa[1]), cache, expected_checksum=pa[0].package.checksum or None,
                                                expected_sha256=pa[0].sha256 or None, source=pa[0].url),
                                zip(pins, apks)))
