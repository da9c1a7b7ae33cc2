"""Run one hostile case in a child process under hard resource limits.

The limits are the bounds a test states: `RLIMIT_AS` (address space: the case must be refused
before it allocates more) and `RLIMIT_CPU` (a bomb must be refused before it burns more CPU
time; the kernel kills the child with SIGXCPU otherwise). Both are enforced by the kernel, so
the tests make no timing asserts of their own. `wait4` reports the child's peak RSS and CPU time,
which the README's security figures quote.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Outcome:
    status: int  # exit status, or -signal
    stdout: str
    stderr: str
    peak_rss_mb: float
    cpu_s: float

    @property
    def error_line(self) -> str:
        """The engine's error: the last non-empty stderr line."""
        lines = [ln for ln in self.stderr.splitlines() if ln.strip()]
        return lines[-1] if lines else ""

    def assert_one_line_error(self, *needles: str, stream: str = "stderr") -> str:
        """Exit 1 with exactly one line on stderr (no traceback) containing every needle.
        `stream="stdout"` for verbs that report per file on stdout (`package verify`)."""
        text = self.stdout if stream == "stdout" else self.stderr
        # the per-phase progress lines the CLI writes to a non-terminal are not part of the error
        lines = [ln for ln in text.splitlines() if ln.strip() and not PROGRESS_LINE.match(ln)]
        assert not self.stderr.strip() or stream == "stderr", self.stderr[-3000:]
        assert self.status == 1, f"exit {self.status}, stderr:\n{self.stderr[-3000:]}"
        assert len(lines) == 1, f"expected a one-line error, got:\n{text[-3000:]}"
        for n in needles:
            assert n in lines[0], f"{n!r} not in {lines[0]!r}"
        return lines[0]


def _limits(mem_mb: int, cpu_s: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (mem_mb << 20, mem_mb << 20))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))


def run_bounded(argv: list[str] | str, *, mem_mb: int, cpu_s: int, cwd: Path | None = None,
                env: dict[str, str] | None = None, wall_s: float = 120) -> Outcome:
    """`argv` is a command, or Python source (run with the repo's interpreter). The child gets
    `mem_mb` MiB of address space and `cpu_s` seconds of CPU."""
    if isinstance(argv, str):
        argv = [sys.executable, "-c", textwrap.dedent(argv)]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=err, preexec_fn=lambda: _limits(mem_mb, cpu_s))
        deadline = time.monotonic() + wall_s
        while True:  # wait4, not Popen.wait: it gives this one child's peak RSS and CPU time
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
            time.sleep(0.02)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Outcome(proc.returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace"),
                       usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime)


# `distroless: fetching packages: 2/2, 1.0 MB in 0.1 s (12.6 MB/s)` (cli/progress.py's LineSink)
PROGRESS_LINE = re.compile(r"^distroless: [^:]+: \d+(?:/\d+)?\b.* in \d+(?:\.\d+)? s\b")


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "distroless", *args]
