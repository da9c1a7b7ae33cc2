"""Expansions on every core: `expand` in forked worker processes.

Verifying and unpacking a package is CPU work, a third of it Python (tar headers, entries) that
threads serialise on the GIL: two threads on two cores reach ~1.5× one thread, two processes ~1.9×.
The workers are forked when the pool is made, before the caller starts any thread (forking a
threaded process can copy a lock that another thread holds); where that cannot be promised (a
thread already runs, no fork, one core) the pool expands in the calling thread instead.
"""

from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from types import TracebackType

from distroless.errors import DistrolessError
from distroless.limits import DEFAULT_LIMITS, Limits
from distroless.store.cache import Cache
from distroless.store.expand import Expanded, expand


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class ExpandPool:
    """`pool(apk, cache, ...)` is `expand(apk, cache, ...)`, run by one of `workers` processes."""

    def __init__(self, workers: int):
        self._procs: ProcessPoolExecutor | None = None
        if workers > 1 and sys.platform == "linux" and threading.active_count() == 1:
            import multiprocessing

            self._procs = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
            # The first task forks every worker now, while this is the only thread.
            self._procs.submit(os.getpid).result()

    @property
    def forked(self) -> bool:
        return self._procs is not None

    def __call__(self, apk_path: Path, cache: Cache, *, expected_checksum: str | None = None,
                 expected_sha256: str | None = None, source: str | None = None,
                 limits: Limits = DEFAULT_LIMITS) -> Expanded:
        kwargs = dict(expected_checksum=expected_checksum, expected_sha256=expected_sha256, source=source,
                      limits=limits)
        if self._procs is None:
            return expand(apk_path, cache, **kwargs)  # type: ignore[arg-type]
        try:
            return self._procs.submit(expand, apk_path, cache, **kwargs).result()
        except BrokenProcessPool:
            raise DistrolessError(f"{source or apk_path}: the process expanding it died (killed, or out of memory?); "
                                  "nothing of it was kept") from None

    def close(self) -> None:
        if self._procs is not None:
            self._procs.shutdown(wait=True, cancel_futures=True)
            self._procs = None

    def __enter__(self) -> ExpandPool:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
