"""Run one hostile case in a child process under hard resource limits.

The limits are the bounds a test states: `RLIMIT_AS` (address space: the case must be refused
before it allocates more) and `RLIMIT_CPU` (a bomb must be refused before it burns more CPU
time; the kernel kills the child with SIGXCPU otherwise). Both are enforced by the kernel, so
the tests make no timing asserts of their own. `wait4` reports the child's peak RSS and CPU time,
which the README's security figures quote.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
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


# The case runs as the grandchild of a small launcher, never as a child forked from pytest: a
# child's peak RSS counts the memory of the process it was forked from until its exec (the kernel
# records the old address space's high-water mark), which would charge pytest's size to the case.
_LAUNCHER = r"""
import json, os, resource, signal, sys
mem_mb, cpu_s, wall_s, report, argv = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5:]
pid = os.fork()
if pid == 0:
    try:
        resource.setrlimit(resource.RLIMIT_AS, (mem_mb << 20, mem_mb << 20))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
        os.execvp(argv[0], argv)
    except BaseException as e:
        sys.stderr.write(f"launcher: {argv[0]}: {e}\n")
    os._exit(127)
signal.signal(signal.SIGALRM, lambda *_: os.kill(pid, signal.SIGKILL))
signal.setitimer(signal.ITIMER_REAL, wall_s)
_, status, usage = os.wait4(pid, 0)
with open(report, "w") as f:
    json.dump([status, usage.ru_maxrss, usage.ru_utime + usage.ru_stime], f)
"""


def run_bounded(argv: list[str] | str, *, mem_mb: int, cpu_s: int, cwd: Path | None = None,
                env: dict[str, str] | None = None, wall_s: float = 120) -> Outcome:
    """`argv` is a command, or Python source (run with the repo's interpreter). The child gets
    `mem_mb` MiB of address space and `cpu_s` seconds of CPU; `wait4` in the launcher gives its
    own peak RSS and CPU time."""
    if isinstance(argv, str):
        argv = [sys.executable, "-c", textwrap.dedent(argv)]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile(suffix=".json") as report:
        launcher = [sys.executable, "-I", "-S", "-c", _LAUNCHER, str(mem_mb), str(cpu_s), str(wall_s), report.name]
        subprocess.run([*launcher, *argv], cwd=cwd, env=full_env, stdin=subprocess.DEVNULL, stdout=out,
                       stderr=err, check=True, timeout=wall_s + 60)
        status, maxrss_kb, cpu = json.loads(Path(report.name).read_text())
        out.seek(0)
        err.seek(0)
        return Outcome(os.waitstatus_to_exitcode(status), out.read().decode(errors="replace"),
                       err.read().decode(errors="replace"), maxrss_kb / 1024, cpu)


# `distroless: fetching packages: 2/2, 1.0 MB in 0.1 s (12.6 MB/s)` (cli/progress.py's LineSink)
PROGRESS_LINE = re.compile(r"^distroless: [^:]+: \d+(?:/\d+)?\b.* in \d+(?:\.\d+)? s\b")


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "distroless", *args]
