"""What people see: progress drawn from the engine's events. In a log (not a terminal) one line
per phase with counts, bytes and time; on a terminal (a real pty here) rich's live bars."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import subprocess
import sys

import pytest

from distroless.cli.progress import LEVELS, LineSink, RichSink, sink_for
from distroless.events import Events, Location
from httpserver import StaticServer
from imagerepo import image_yaml, make_repo

PHASES = ("fetching packages", r"expanding packages \(amd64\)", r"installing packages \(amd64\)",
          r"compressing layers \(amd64\)")


@pytest.fixture(scope="module")
def served(tmp_path_factory, peers):
    root = tmp_path_factory.mktemp("progressrepo")
    repo, pub = make_repo(root, peers.busybox)
    server = StaticServer(repo).start()
    yield server, pub
    server.stop()


def _build_args(tmp_path, served):
    server, pub = served
    (tmp_path / "image.yaml").write_text(image_yaml(server.url, pub, ["busybox"]))
    return [sys.executable, "-m", "distroless", "image", "build", "image.yaml", "t:1", "out.tar",
            "--cache-dir", "cache", "--sbom-path", "sbom"]


def test_one_line_per_phase_in_a_log(tmp_path, served):
    r = subprocess.run(_build_args(tmp_path, served), cwd=tmp_path, capture_output=True, text=True,
                       env={**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    for name in PHASES:
        hits = [l for l in lines if re.fullmatch(rf"distroless: {name}: (\d+)/\1(, [\d.]+ [kMG]?B)? in [\d.]+ s.*", l)]
        assert len(hits) == 1, (name, r.stderr)
    assert "\r" not in r.stderr and "\x1b[" not in r.stderr  # no terminal control in a log


def test_log_level_and_quiet_on_the_command_line(tmp_path, served):
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    args = _build_args(tmp_path, served)
    warn = subprocess.run(args + ["--log-level", "warn"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert warn.returncode == 0 and warn.stderr == "", warn.stderr
    quiet = subprocess.run(args[:3] + ["-q"] + args[3:], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    debug = subprocess.run(args + ["--log-level=debug"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert "distroless: fetching packages: started" in debug.stderr


def test_live_bars_on_a_terminal(tmp_path, served):
    master, slave = pty.openpty()
    proc = subprocess.Popen(_build_args(tmp_path, served), cwd=tmp_path, stdin=slave, stdout=subprocess.PIPE,
                            stderr=slave, env={**os.environ, "SOURCE_DATE_EPOCH": "1700000000",
                                               "TERM": "xterm", "COLUMNS": "120"})
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    assert proc.wait(60) == 0, out.decode(errors="replace")
    text = out.decode(errors="replace")
    assert "\x1b[" in text  # rich drew on the terminal (cursor control / colour)
    for name in PHASES:
        assert re.search(rf"distroless: {name}: \d+/\d+", text), (name, text)


def test_levels_filter_what_is_shown():
    def run(level: str, quiet: bool = False) -> str:
        buf = io.StringIO()
        ev = Events(sink_for(buf, log_level=level, quiet=quiet, live=False))
        ev.note("a note")
        ev.warning("careful", location=Location("image.yaml", 3, 5))
        with ev.phase("work", total=2) as ph:
            ph.advance(1, 2_000_000)
            ph.advance(1, 2_000_000)
        return buf.getvalue()

    info = run("info")
    assert "a note" in info and "distroless: warning: image.yaml:3:5: careful" in info
    assert re.search(r"distroless: work: 2/2, 4.0 MB in [\d.]+ s", info)
    assert "started" not in info and "started (2 items)" in run("debug")
    assert run("warn").strip() == "distroless: warning: image.yaml:3:5: careful"
    assert run("error") == "" and run("info", quiet=True) == ""


def test_rich_sink_keeps_finished_phases_as_lines():
    buf = io.StringIO()
    sink = RichSink(buf, LEVELS["info"])
    ev = Events(sink)
    with ev.phase("fetching packages", total=3) as ph:
        for _ in range(3):
            ph.advance(1, 1000)
    sink.close()
    assert re.search(r"distroless: fetching packages: 3/3, 3.0 kB in [\d.]+ s", buf.getvalue())
    assert isinstance(sink_for(io.StringIO(), live=False), LineSink)


USERS = "accounts:\n  users:\n    - username: app\n      uid: 1000\n      gid: 1000\n"


@pytest.mark.parametrize("package, extra, warned", [
    ("clash", "", False),  # no base layout and no accounts: nothing to warn about
    ("clash", USERS, True),  # users whose group is nowhere
    ("clash", USERS + "  groups:\n    - groupname: app\n      gid: 1000\n", False),
    ("busybox", USERS, False),  # its base layout ships /etc/group
])
def test_missing_group_file_warned_only_when_accounts_need_it(tmp_path, served, package, extra, warned):
    server, pub = served
    (tmp_path / "image.yaml").write_text(image_yaml(server.url, pub, [package], extra))
    r = subprocess.run([sys.executable, "-m", "distroless", "image", "build", "image.yaml", "t:1", "out.tar",
                        "--cache-dir", "cache", "--sbom-path", "sbom"], cwd=tmp_path, capture_output=True,
                       text=True, env={**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}, timeout=300)
    assert r.returncode == 0, r.stderr
    warnings = [l for l in r.stderr.splitlines() if "warning" in l]
    if warned:
        assert warnings == ["distroless: warning: amd64: /etc/group is missing, but accounts.users need groups "
                            "(gid 1000): add accounts.groups or a base layout package that ships /etc/group"]
    else:
        assert warnings == []
