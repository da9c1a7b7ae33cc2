"""Named build contexts (`--build-context NAME=…`, bake's `contexts = { NAME = "target:…" }`) as
LLB states, so a graph can read from another build's result in the same invocation.

buildx hands a context over as the option `context:NAME`: `local:DIR` (a directory the client
sends, `local-sessionid:DIR` naming its session), `input:KEY` (another bake target's graph, among
the frontend's inputs: `llbdef.from_definition` embeds it with its ops' bytes and cache flags) or
`docker-image://REF`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from distroless.errors import DistrolessError

from . import llb, transport


@dataclass(slots=True)
class NamedContexts:
    env: transport.FrontendEnv
    inputs: Callable[[str], llb.State | None] = lambda key: None  # the frontend's inputs by key

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
            state = self.inputs(ref)
            if state is None:
                raise DistrolessError(f"build context {name}: input {ref!r} is not among the frontend's inputs")
            return state
        if value.startswith("docker-image://"):
            return llb.image(value[len("docker-image://"):], name=f"[internal] build context {name}")
        raise DistrolessError(f"build context {name}={value!r}: expected a directory, a bake target or an image")
