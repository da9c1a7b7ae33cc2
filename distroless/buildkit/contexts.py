"""Named build contexts (`--build-context NAME=…`, bake's `contexts = { NAME = "target:…" }`) as
LLB states, so a graph can read from another build's result in the same invocation.

buildx hands a context over as the option `context:NAME`: `local:DIR` (a directory the client
sends, `local-sessionid:DIR` naming its session), `input:KEY` (a definition among the frontend's
inputs: another bake target), or `docker-image://REF`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from distroless.errors import DistrolessError

from . import llb, transport


@dataclass(slots=True)
class NamedContexts:
    env: transport.FrontendEnv
    bridge: transport.LLBBridge
    _inputs: dict | None = field(default=None, repr=False)

    def names(self) -> set[str]:
        return {k.split(":", 1)[1].split("::", 1)[0] for k in self.env.opts if k.startswith("context:")}

    def state(self, name: str) -> llb.State:
        value = self.env.opts.get(f"context:{name}", "")
        kind, _, ref = value.partition(":")
        if kind == "local":
            session = self.env.opts.get(f"local-sessionid:{ref}") or self.env.session_id
            return llb.local(ref, session_id=session, shared_key_hint=ref,
                             custom_name=f"[internal] load build context {name}")
        if kind == "input":
            if self._inputs is None:
                self._inputs = self.bridge.inputs()
            if ref not in self._inputs:
                raise DistrolessError(f"build context {name}: input {ref!r} is not among the frontend's inputs")
            return llb.from_definition(self._inputs[ref])
        if value.startswith("docker-image://"):
            return llb.image(value[len("docker-image://"):], name=f"[internal] build context {name}")
        raise DistrolessError(f"build context {name}={value!r}: expected a directory, a bake target or an image")
