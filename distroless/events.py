"""Events: how engine code reports what it is doing, without printing.

The engine never writes to stderr. A front door builds an `Events` around a sink (the CLI prints to
the terminal, the BuildKit frontend turns warnings into `Warn` calls with their YAML position,
Bazel steps write lines to stderr) and passes it down. Engine code calls:

- `warning(text, location=…)`: something the user should fix or know about;
- `note(text)`: a one-line fact about the result (a step's output, a digest);
- `phase(name, total=…, total_bytes=…)`: a counted piece of work. The phase is a context manager
  whose `advance(items, nbytes)` moves it on; sinks get its start, each advance and its end,
  with counts and bytes, which is all a progress bar needs.

Events are plain frozen dataclasses so a sink can queue them, record them or send them elsewhere.
Every method is thread-safe (fetches advance one phase from many threads).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO


@dataclass(frozen=True, slots=True)
class Location:
    """Where in an input file a warning points (1-based line and column; 0 when unknown)."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        return ":".join([self.file] + [str(n) for n in (self.line, self.column) if n])


@dataclass(frozen=True, slots=True)
class Note:
    text: str


@dataclass(frozen=True, slots=True)
class Warning:  # noqa: A001 - the event, not the builtin category
    text: str
    location: Location | None = None

    def __str__(self) -> str:
        return f"{self.location}: {self.text}" if self.location else self.text


@dataclass(frozen=True, slots=True)
class PhaseState:
    """A snapshot of one phase: `total`/`total_bytes` are None when not known in advance."""

    id: int
    name: str
    done: int = 0
    bytes: int = 0
    total: int | None = None
    total_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class PhaseStarted:
    phase: PhaseState


@dataclass(frozen=True, slots=True)
class PhaseAdvanced:
    phase: PhaseState


@dataclass(frozen=True, slots=True)
class PhaseEnded:
    phase: PhaseState
    ok: bool = True


Event = Note | Warning | PhaseStarted | PhaseAdvanced | PhaseEnded
Sink = Callable[[Event], None]


class Phase:
    """A running phase; use as a context manager (ends with ok=False on an exception)."""

    def __init__(self, events: Events, state: PhaseState):
        self._events = events
        self._state = state
        self._ended = False

    @property
    def state(self) -> PhaseState:
        return self._state

    def advance(self, items: int = 1, nbytes: int = 0) -> None:
        with self._events._lock:
            s = self._state
            self._state = PhaseState(s.id, s.name, s.done + items, s.bytes + nbytes, s.total,
                                     s.total_bytes)
            self._events._emit(PhaseAdvanced(self._state))

    def end(self, ok: bool = True) -> None:
        with self._events._lock:
            if not self._ended:
                self._ended = True
                self._events._emit(PhaseEnded(self._state, ok))

    def __enter__(self) -> Phase:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.end(ok=exc_type is None)


class Events:
    """The object front doors hand to the engine. With no sink, every event is dropped."""

    def __init__(self, sink: Sink | None = None):
        self._sink = sink
        self._lock = threading.RLock()
        self._ids = itertools.count(1)

    def _emit(self, event: Event) -> None:
        if self._sink is not None:
            self._sink(event)

    def note(self, text: str) -> None:
        with self._lock:
            self._emit(Note(text))

    def warning(self, text: str, *, location: Location | None = None) -> None:
        with self._lock:
            self._emit(Warning(text, location))

    def phase(self, name: str, *, total: int | None = None, total_bytes: int | None = None) -> Phase:
        with self._lock:
            state = PhaseState(next(self._ids), name, total=total, total_bytes=total_bytes)
            self._emit(PhaseStarted(state))
            return Phase(self, state)


NULL = Events()  # for callers (mostly tests) that do not care


@dataclass
class Recorder:
    """A sink that keeps every event (tests; the frontend collects warnings to send at the end)."""

    events: list[Event] = field(default_factory=list)

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]


class TextSink:
    """Plain-text lines on a stream: notes as they are, warnings prefixed, and phases as one
    self-rewriting status line when `live` (a terminal); a log (not live) gets no phase lines."""

    def __init__(self, stream: TextIO, *, prefix: str = "distroless", live: bool = False):
        self.stream = stream
        self.prefix = prefix
        self.live = live
        self._dirty = False

    def __call__(self, event: Event) -> None:
        if isinstance(event, Note):
            self._line(event.text)
        elif isinstance(event, Warning):
            self._line(f"{self.prefix}: warning: {event}")
        elif isinstance(event, PhaseAdvanced) and self.live:
            self.stream.write(f"\r{describe(event.phase)}")
            self.stream.flush()
            self._dirty = True
        elif isinstance(event, PhaseEnded) and self.live and self._dirty:
            self.stream.write(f"\r{describe(event.phase)}\n")
            self.stream.flush()
            self._dirty = False

    def _line(self, text: str) -> None:
        if self._dirty:
            self.stream.write("\n")
            self._dirty = False
        self.stream.write(text + "\n")
        self.stream.flush()


def describe(s: PhaseState) -> str:
    """`fetching packages: 3/10, 1.2 MB`."""
    count = f"{s.done}/{s.total}" if s.total is not None else str(s.done)
    size = f", {s.bytes / 1e6:.1f} MB" if s.bytes or s.total_bytes else ""
    return f"{s.name}: {count}{size}"
