"""The frontend's events sink: warnings go to BuildKit's build summary with the YAML lines they
point at (`Warn`, cap `gateway.warnings`, BuildKit 0.10+), and always to the daemon log (stderr,
the only place an older BuildKit lets a frontend leave a note). Progress phases are BuildKit's
own business (its vertices), so they are dropped."""

from __future__ import annotations

from typing import TextIO

from distroless.buildkit import llb, transport
from distroless.events import Event, Events, Note, Warning


class BuildKitSink:
    def __init__(self, bridge: transport.LLBBridge, spec: llb.SourceFile | None, digest: str, log: TextIO):
        self.bridge = bridge
        self.spec = spec  # the YAML the user wrote, for source ranges
        self.digest = digest  # the op that loaded it: BuildKit attaches warnings to an op
        self.log = log
        caps = getattr(bridge, "caps", None)
        self.can_warn = bool(digest) and caps is not None and caps.supports("gateway.warnings")

    def __call__(self, event: Event) -> None:
        if isinstance(event, Warning):
            self.log.write(f"distroless frontend: warning: {event}\n")
            if self.can_warn:
                self._warn(event)
        elif isinstance(event, Note):
            self.log.write(f"distroless frontend: {event.text}\n")

    def _warn(self, event: Warning) -> None:
        loc = event.location
        where = None
        if self.spec is not None and loc is not None and loc.line and loc.file == self.spec.filename:
            where = llb.SourceLocation.lines(self.spec, loc.line)
        text = event.text if where is not None or loc is None else str(event)
        try:
            self.bridge.warn(self.digest, text, location=where)
        except transport.BridgeError as e:  # a warning must never fail the build
            self.log.write(f"distroless frontend: Warn failed: {e}\n")


def frontend_events(bridge: transport.LLBBridge, spec: llb.SourceFile | None, digest: str, log: TextIO) -> Events:
    return Events(BuildKitSink(bridge, spec, digest, log))
