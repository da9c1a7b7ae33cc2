"""The committed BuildKit protobuf modules are exactly what `make proto` generates, and the
hand-written protos agree with BuildKit's upstream .proto files (`tests/data/buildkit_wire.tsv`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from distroless.buildkit import _pb

ROOT = Path(__file__).resolve().parents[1]
PROTO = ROOT / "proto"
COMMITTED = ROOT / "distroless" / "buildkit" / "_pb"


def _load_generator():
    spec = importlib.util.spec_from_file_location("proto_generate", PROTO / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tree(root: Path) -> dict[str, bytes]:
    """Generated files below root (the hand-written top-level __init__.py excluded)."""
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*"))
            if p.is_file() and p.parent != root and "__pycache__" not in p.parts}


def test_committed_modules_are_regenerated_byte_identical(tmp_path):
    _load_generator().generate(tmp_path)
    fresh, committed = _tree(tmp_path), _tree(COMMITTED)
    assert sorted(fresh) == sorted(committed), "run `make proto`"
    for name in fresh:
        assert fresh[name] == committed[name], f"{name} is stale: run `make proto`"


def test_generated_imports_stay_inside_the_package():
    for path in COMMITTED.rglob("*_pb2.py"):
        for line in path.read_text().splitlines():
            if line.startswith("from "):
                module = line.split()[1]
                assert module.startswith(("google.protobuf", "distroless.buildkit._pb.")), line


@pytest.mark.parametrize("module,package,filename", [
    (_pb.gateway, "moby.buildkit.v1.frontend", "github.com/moby/buildkit/frontend/gateway/pb/gateway.proto"),
    (_pb.ops, "pb", "github.com/moby/buildkit/solver/pb/ops.proto"),
    (_pb.caps, "moby.buildkit.v1.apicaps", "github.com/moby/buildkit/util/apicaps/pb/caps.proto"),
    (_pb.worker, "moby.buildkit.v1.types", "github.com/moby/buildkit/api/types/worker.proto"),
    (_pb.stat, "fsutil.types", "github.com/tonistiigi/fsutil/types/stat.proto"),
    (_pb.errdefs, "errdefs", "github.com/moby/buildkit/solver/errdefs/errdefs.proto"),
    (_pb.status, "google.rpc", "google/rpc/status.proto"),
])
def test_packages_and_file_names_match_upstream(module, package, filename):
    assert module.DESCRIPTOR.package == package
    assert module.DESCRIPTOR.name == filename


# BuildKit's wire contract, read from the upstream .proto files (provenance in the file's header).
UPSTREAM = ROOT / "tests" / "data" / "buildkit_wire.tsv"
OURS = [_pb.gateway, _pb.ops, _pb.caps, _pb.worker, _pb.stat, _pb.errdefs, _pb.status]

Row = tuple[str, ...]  # kind, file, scope, name, number, label, type, type_name


def _upstream() -> tuple[list[list[str]], set[Row]]:
    sources, rows = [], set()
    for line in UPSTREAM.read_text().splitlines():
        if line.startswith("# source\t"):
            sources.append(line.split("\t")[1:])
        elif line and not line.startswith(("#", "kind\t")):
            cols = line.split("\t")
            assert len(cols) == 8, line
            rows.add(tuple(cols))
    return sources, rows


def _lower(enum_type, value: int, cut: int) -> str:
    return enum_type.values_by_number[value].name[cut:].lower()


def _our_rows(module) -> set[Row]:
    """The same facts, read from the descriptors our hand-written protos compile to."""
    fd = descriptor_pb2.FileDescriptorProto()
    module.DESCRIPTOR.CopyToProto(fd)
    F = descriptor_pb2.FieldDescriptorProto
    rows: set[Row] = set()

    def enum(scope: str, e) -> None:
        for v in e.value:
            rows.add(("enum", fd.name, f"{scope}.{e.name}", v.name, str(v.number), "", "", ""))

    def message(scope: str, m) -> None:
        full = f"{scope}.{m.name}"
        rows.add(("message", fd.name, full, "", "", "", "", ""))
        for f in m.field:
            rows.add(("field", fd.name, full, f.name, str(f.number),
                      _lower(F.DESCRIPTOR.enum_types_by_name["Label"], f.label, 6),
                      _lower(F.DESCRIPTOR.enum_types_by_name["Type"], f.type, 5), f.type_name))
        for e in m.enum_type:
            enum(full, e)
        for n in m.nested_type:
            message(full, n)

    for m in fd.message_type:
        message(fd.package, m)
    for e in fd.enum_type:
        enum(fd.package, e)
    for s in fd.service:
        for meth in s.method:
            streaming = "stream" if meth.client_streaming or meth.server_streaming else ""
            rows.add(("rpc", fd.name, f"{fd.package}.{s.name}", meth.name, "", streaming,
                      meth.input_type, meth.output_type))
    return rows


def test_upstream_table_has_provenance():
    sources, rows = _upstream()
    files = {m.DESCRIPTOR.name for m in OURS}
    assert {s[0] for s in sources} == files
    for name, repo, commit, path in sources:
        assert "/" in repo and len(commit) == 40 and name.endswith(path), (name, repo, commit, path)
    assert len(rows) > 500 and {r[1] for r in rows} == files


@pytest.mark.parametrize("module", OURS, ids=lambda m: m.DESCRIPTOR.name.rsplit("/", 1)[-1])
def test_protos_match_upstream(module):
    """Every message, field (name, number, label, type), enum value and RPC we declare is
    BuildKit's; we may leave fields out (proto3 skips unknown ones), never change one."""
    _, upstream = _upstream()
    ours = _our_rows(module)
    assert ours, module
    assert sorted(ours - upstream) == []


def test_service_methods():
    service = _pb.gateway.DESCRIPTOR.services_by_name["LLBBridge"]
    assert service.full_name == "moby.buildkit.v1.frontend.LLBBridge"
    assert {"Ping", "Solve", "ReadFile", "ReadDir", "StatFile", "Return", "Inputs",
            "ResolveImageConfig", "Evaluate", "Warn"} <= set(service.methods_by_name)


def test_status_any_round_trip():
    st = _pb.status.Status(code=3, message="bad")
    detail = st.details.add()
    detail.type_url, detail.value = "github.com/moby/buildkit/errdefs.Source+json", b"{}"
    again = _pb.status.Status.FromString(st.SerializeToString())
    assert again == st and again.details[0].type_url.endswith("Source+json")

