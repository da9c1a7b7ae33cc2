"""The events object: what engine code reports, and how the text sink shows it."""

import io
import threading

import pytest

from distroless import events
from distroless.events import Events, Location, Recorder, TextSink


def test_phase_counts_items_and_bytes_and_ends_once():
    rec = Recorder()
    ev = Events(rec)
    with ev.phase("fetching packages", total=3, total_bytes=30) as ph:
        ph.advance(1, 10)
        ph.advance(2, 20)
    ph.end()  # a second end is ignored
    started, = rec.of(events.PhaseStarted)
    ended, = rec.of(events.PhaseEnded)
    assert started.phase.total == 3 and started.phase.done == 0
    assert (ended.phase.done, ended.phase.bytes, ended.ok) == (3, 30, True)
    assert [a.phase.done for a in rec.of(events.PhaseAdvanced)] == [1, 3]


def test_phase_ends_not_ok_on_exception():
    rec = Recorder()
    with pytest.raises(RuntimeError):
        with Events(rec).phase("x"):
            raise RuntimeError("boom")
    assert rec.of(events.PhaseEnded)[0].ok is False


def test_advance_from_many_threads_loses_nothing():
    rec = Recorder()
    ph = Events(rec).phase("p", total=800)
    threads = [threading.Thread(target=lambda: [ph.advance(1, 2) for _ in range(100)]) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ph.end()
    assert rec.of(events.PhaseEnded)[0].phase.done == 800
    assert rec.of(events.PhaseEnded)[0].phase.bytes == 1600


def test_text_sink_prints_notes_and_warnings_with_location_and_no_phases_to_a_log():
    out = io.StringIO()
    ev = Events(TextSink(out))
    ev.note("index sha256:ab")
    ev.warning("no such index, skipped", location=Location("image.yaml", 4, 7))
    with ev.phase("fetching packages", total=2) as ph:
        ph.advance(2, 2_000_000)
    assert out.getvalue().splitlines() == [
        "index sha256:ab",
        "distroless: warning: image.yaml:4:7: no such index, skipped",
    ]
    assert events.describe(ph.state) == "fetching packages: 2/2, 2.0 MB"


def test_live_text_sink_rewrites_one_line_and_breaks_it_before_a_warning():
    out = io.StringIO()
    ev = Events(TextSink(out, live=True))
    ph = ev.phase("fetching packages", total=2)
    ph.advance()
    ev.warning("w")
    ph.advance()
    ph.end()
    assert out.getvalue() == ("\rfetching packages: 1/2\ndistroless: warning: w\n"
                              "\rfetching packages: 2/2\rfetching packages: 2/2\n")


def test_null_events_drop_everything():
    events.NULL.note("x")
    events.NULL.warning("y")
    with events.NULL.phase("z") as ph:
        ph.advance()


class RecordingBridge:
    """Stands in for the gateway only to record what our sink asks of it; the real daemon's
    handling of Warn is exercised by tests/test_buildkit_frontend.py."""

    def __init__(self, caps):
        self.caps = caps
        self.warned = []

    def warn(self, digest, short, *, location=None):
        self.warned.append((digest, short, location))


def test_frontend_sink_sends_warnings_with_their_yaml_line_and_logs_everything():
    from distroless.buildkit import llb
    from distroless.buildkit.report import frontend_events
    from distroless.buildkit.transport import Caps

    spec = llb.SourceFile("image.yaml", b"contents:\n  packages: [x]\n")
    bridge = RecordingBridge(Caps({"gateway.warnings": True}))
    log = io.StringIO()
    ev = frontend_events(bridge, spec, "sha256:" + "a" * 64, log)
    ev.warning("unknown package option", location=Location("image.yaml", 2))
    ev.warning("no config checksum", location=Location("image.lock.json"))
    ev.note("hello")
    with ev.phase("fetching packages", total=1) as ph:
        ph.advance()
    (d1, s1, l1), (_, s2, l2) = bridge.warned
    assert d1 == "sha256:" + "a" * 64 and s1 == "unknown package option"
    assert l1 == llb.SourceLocation.lines(spec, 2)
    assert (s2, l2) == ("image.lock.json: no config checksum", None)
    assert log.getvalue().splitlines() == [
        "distroless frontend: warning: image.yaml:2: unknown package option",
        "distroless frontend: warning: image.lock.json: no config checksum",
        "distroless frontend: hello",
    ]
    # an older BuildKit (no gateway.warnings): the daemon log only
    old = RecordingBridge(Caps({}))
    frontend_events(old, spec, "sha256:" + "a" * 64, io.StringIO()).warning("w")
    assert old.warned == []


def test_engine_warnings_and_fetch_progress_arrive_as_events(tmp_path, capsys):
    """The fetcher reports a skipped index and its progress through the events it was given,
    and prints nothing itself."""
    from distroless.apk.keys import Keyring
    from distroless.fetch.fetcher import Fetcher
    from distroless.fetch.repository import Repository
    from distroless.store.cache import Cache

    rec = Recorder()
    f = Fetcher(Cache(tmp_path / "cache"), events=Events(rec))
    assert f.index(Repository(str(tmp_path / "no-repo")), "x86_64", Keyring()) == []
    (w,) = rec.of(events.Warning)
    assert "no-repo/x86_64/APKINDEX.tar.gz: no such index, skipped" in w.text
    assert f.packages([], "x86_64") == []
    assert [type(e).__name__ for e in rec.events[1:]] == ["PhaseStarted", "PhaseEnded"]
    assert capsys.readouterr() == ("", "")
