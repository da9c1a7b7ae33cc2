"""Named build contexts (`--build-context NAME=…`, bake's `contexts = { NAME = "target:…" }`) as
LLB states, so a graph can read from another build's result in the same invocation.

buildx hands a context over as the option `context:NAME`: `local:DIR` (a directory the client
sends, `local-sessionid:DIR` naming its session) or `docker-image://REF`; `input:KEY` (another bake
target's graph) is refused, see `NamedContexts.state`.
"""

from __future__ import annotations

from dataclasses import dataclass

from distroless.errors import DistrolessError

from . import llb, transport


@dataclass(slots=True)
class NamedContexts:
    env: transport.FrontendEnv

    def names(self) -> set[str]:
        return {k.split(":", 1)[1].split("::", 1)[0] for k in self.env.opts if k.startswith("context:")}

    def state(self, name: str) -> llb.State:
        value = self.env.opts.get(f"context:{name}", "")
        kind, _, ref = value.partition(":")
        if kind == "local":
            session = self.env.opts.get(f"local-sessionid:{ref}") or self.env.session_id
            # differ=none: a repository's files all carry SOURCE_DATE_EPOCH as mtime, and a rebuilt
            # index often has the old size, so fsutil's metadata check would keep the stale bytes
            return llb.local(ref, session_id=session, shared_key_hint=ref, differ="none",
                             custom_name=f"[internal] load build context {name}")
        if kind == "input":
            # Another build's graph (bake `target:`) embedded here makes dockerd 26.1's BuildKit
            # (v0.13) panic while it records provenance (solver/jobs.go walkProvenance), taking the
            # daemon down: refused until a daemon that survives it is tested.
            raise DistrolessError(
                f"build context {name}: a bake target as a repository is not supported (BuildKit 0.13 crashes "
                f"on it); build the packages first (-o type=local,dest=DIR) and pass --build-context {name}=DIR")
        if value.startswith("docker-image://"):
            return llb.image(value[len("docker-image://"):], name=f"[internal] build context {name}")
        raise DistrolessError(f"build context {name}={value!r}: expected a directory or an image")
