"""What people see while the engine works, drawn from its events (`distroless.events`).

- On a terminal: `rich` live bars, one per phase (count, bytes, rate, elapsed), with notes and
  warnings printed above them.
- Elsewhere (CI logs, pipes): one line per phase when it ends, with its counts, bytes and time,
  e.g. `distroless: fetching packages: 12/12, 3.4 MB in 0.8 s (4.2 MB/s)`, plus the notes and
  warnings as lines.

`--log-level` filters: `error` (and `-q`) shows nothing but the final error, `warn` adds
warnings, `info` (the default) adds notes and progress, `debug` adds each phase's start.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from distroless.events import Event, Note, PhaseAdvanced, PhaseEnded, PhaseStarted, PhaseState, Warning

LEVELS = {"debug": 10, "info": 20, "warn": 30, "warning": 30, "error": 40}


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def phase_line(s: PhaseState, seconds: float, ok: bool = True) -> str:
    """`fetching packages: 12/12, 3.4 MB in 0.8 s (4.2 MB/s)`."""
    count = f"{s.done}/{s.total}" if s.total is not None else str(s.done)
    size = f", {human_bytes(s.bytes)}" if s.bytes else ""
    rate = f" ({human_bytes(s.bytes / seconds)}/s)" if s.bytes and seconds > 0.05 else ""
    return f"{s.name}: {count}{size} in {seconds:.1f} s{rate}" + ("" if ok else " (failed)")


class LineSink:
    """Not a terminal: plain lines, one per finished phase."""

    def __init__(self, stream: TextIO, level: int = LEVELS["info"], prefix: str = "distroless"):
        self.stream = stream
        self.level = level
        self.prefix = prefix
        self._started: dict[int, float] = {}

    def __call__(self, event: Event) -> None:
        if isinstance(event, Warning):
            if self.level <= LEVELS["warn"]:
                self._line(f"{self.prefix}: warning: {event}")
        elif self.level > LEVELS["info"]:
            return
        elif isinstance(event, Note):
            self._line(event.text)
        elif isinstance(event, PhaseStarted):
            self._started[event.phase.id] = time.monotonic()
            if self.level <= LEVELS["debug"]:
                self._line(f"{self.prefix}: {event.phase.name}: started"
                           + (f" ({event.phase.total} items)" if event.phase.total is not None else ""))
        elif isinstance(event, PhaseEnded):
            start = self._started.pop(event.phase.id, time.monotonic())
            self._line(f"{self.prefix}: {phase_line(event.phase, time.monotonic() - start, event.ok)}")

    def _line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        pass


class RichSink:
    """A terminal: one live `rich` bar per phase while it runs; a finished phase stays as a line."""

    def __init__(self, stream: TextIO, level: int = LEVELS["info"], prefix: str = "distroless"):
        from rich.console import Console
        from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TransferSpeedColumn)

        self.level = level
        self.prefix = prefix
        self.console = Console(file=stream, highlight=False)
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 DownloadColumn(), TransferSpeedColumn(), TimeElapsedColumn(),
                                 console=self.console, transient=True)
        self._tasks: dict[int, tuple[int, float]] = {}
        self._lock = threading.Lock()
        self._live = False

    def __call__(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, Warning):
                if self.level <= LEVELS["warn"]:
                    self.console.print(f"{self.prefix}: warning: {event}", markup=False)
            elif self.level > LEVELS["info"]:
                return
            elif isinstance(event, Note):
                self.console.print(event.text, markup=False)
            elif isinstance(event, PhaseStarted):
                if not self._live:
                    self.progress.start()
                    self._live = True
                task = self.progress.add_task(event.phase.name, total=event.phase.total)
                self._tasks[event.phase.id] = (task, time.monotonic())
            elif isinstance(event, PhaseAdvanced) and event.phase.id in self._tasks:
                self.progress.update(self._tasks[event.phase.id][0], completed=event.phase.done)
            elif isinstance(event, PhaseEnded) and event.phase.id in self._tasks:
                task, start = self._tasks.pop(event.phase.id)
                self.progress.remove_task(task)
                self.console.print(f"{self.prefix}: {phase_line(event.phase, time.monotonic() - start, event.ok)}",
                                   markup=False)
                if not self._tasks:
                    self.progress.stop()
                    self._live = False

    def close(self) -> None:
        with self._lock:
            if self._live:
                self.progress.stop()
                self._live = False


def sink_for(stream: TextIO | None = None, *, log_level: str = "info", quiet: bool = False,
             live: bool | None = None) -> LineSink | RichSink:
    stream = stream or sys.stderr
    level = LEVELS["error"] if quiet else LEVELS.get(log_level, LEVELS["info"])
    if live is None:
        live = stream.isatty()
    return RichSink(stream, level) if live else LineSink(stream, level)
