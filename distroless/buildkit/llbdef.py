"""LLB definitions read back: the ops of a marshalled graph, its result, and a graph made
elsewhere (bake's `target:` contexts) turned into states of the graph being built."""

from __future__ import annotations

from . import llb
from ._pb import ops as pb


def ops(definition: pb.Definition) -> list[tuple[str, pb.Op]]:
    """`(digest, op)` for every entry of `def`, in order."""
    return [(llb.op_digest(d), pb.Op.FromString(d)) for d in getattr(definition, "def")]


def output_of(definition: pb.Definition) -> pb.Input:
    """The terminal op's input: the op (and output index) the definition evaluates to."""
    return ops(definition)[-1][1].inputs[0]


def from_definition(definition: pb.Definition) -> llb.State:
    """A state for a definition made elsewhere (a named context `input:NAME` from bake, another
    target's result): its ops become vertices of the graph being built, names kept."""
    entries = ops(definition)
    if len(entries) < 2:
        return llb.scratch()
    vertices: dict[str, llb.Vertex] = {}
    for digest, op in entries[:-1]:
        body = pb.Op()
        body.CopyFrom(op)
        del body.inputs[:]
        md = definition.metadata.get(digest) or pb.OpMetadata()
        caps = frozenset(k for k, v in md.caps.items() if v)
        inputs = tuple(llb.Output(vertices[i.digest], i.index) for i in op.inputs)
        # Bytes (so digests), platform and cache bypass kept: one op loaded with and without
        # ignore_cache by two builds of one bake is two vertices in BuildKit 0.13, whose provenance
        # walk then meets one that never ran (nil pointer, solver/jobs.go walkProvenance).
        vertices[digest] = llb.Vertex(body, inputs, caps, llb.OpMeta(md.description.get(llb.CUSTOM_NAME), md.ignore_cache))
    out = output_of(definition)
    return llb.State(llb.Output(vertices[out.digest], out.index))
