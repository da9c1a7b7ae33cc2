"""The committed BuildKit protobuf modules are exactly what `make proto` generates, and the
protos carry BuildKit's package names and field numbers (the wire contract)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

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
    pytest.importorskip("grpc_tools")
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


def _numbers(message) -> dict[str, int]:
    return {f.name: f.number for f in message.DESCRIPTOR.fields}


# Wire facts from shared/reference/buildkit.md §2.2, §3.
WIRE = [
    (_pb.gateway.PongResponse, {"FrontendAPICaps": 1, "LLBCaps": 2, "Workers": 3}),
    (_pb.gateway.SolveRequest, {"Definition": 1, "Frontend": 2, "FrontendOpt": 3,
                                "allowResultReturn": 5, "allowResultArrayRef": 6, "Final": 10,
                                "ExporterAttr": 11, "CacheImports": 12, "FrontendInputs": 13,
                                "Evaluate": 14}),
    (_pb.gateway.SolveResponse, {"ref": 1, "result": 3}),
    (_pb.gateway.Result, {"refDeprecated": 1, "refsDeprecated": 2, "ref": 3, "refs": 4,
                          "metadata": 10, "attestations": 12}),
    (_pb.gateway.Ref, {"id": 1, "def": 2}),
    (_pb.gateway.ReturnRequest, {"result": 1, "error": 2}),
    (_pb.gateway.ReadFileRequest, {"Ref": 1, "FilePath": 2, "Range": 3}),
    (_pb.gateway.FileRange, {"Offset": 1, "Length": 2}),
    (_pb.gateway.ReadDirRequest, {"Ref": 1, "DirPath": 2, "IncludePattern": 3}),
    (_pb.gateway.StatFileRequest, {"Ref": 1, "Path": 2}),
    (_pb.gateway.ResolveImageConfigRequest, {"Ref": 1, "Platform": 2, "ResolveMode": 3,
                                             "LogName": 4, "ResolverType": 5, "SessionID": 6,
                                             "StoreID": 7}),
    (_pb.gateway.ResolveImageConfigResponse, {"Digest": 1, "Config": 2, "Ref": 3}),
    (_pb.gateway.Attestation, {"kind": 1, "metadata": 2, "ref": 3, "path": 4,
                               "inTotoPredicateType": 5, "inTotoSubjects": 6}),
    (_pb.gateway.WarnRequest, {"digest": 1, "level": 2, "short": 3, "detail": 4, "url": 5,
                               "info": 6, "ranges": 7}),
    (_pb.caps.APICap, {"ID": 1, "Enabled": 2, "Deprecated": 3, "DisabledReason": 4,
                       "DisabledReasonMsg": 5, "DisabledAlternative": 6}),
    (_pb.worker.WorkerRecord, {"ID": 1, "Labels": 2, "platforms": 3}),
    (_pb.stat.Stat, {"path": 1, "mode": 2, "uid": 3, "gid": 4, "size": 5, "modTime": 6,
                     "linkname": 7, "devmajor": 8, "devminor": 9, "xattrs": 10}),
    (_pb.status.Status, {"code": 1, "message": 2, "details": 3}),
    (_pb.ops.Definition, {"def": 1, "metadata": 2, "Source": 3}),
    (_pb.ops.Op, {"inputs": 1, "exec": 2, "source": 3, "file": 4, "build": 5, "merge": 6,
                  "diff": 7, "platform": 10, "constraints": 11}),
    (_pb.ops.Platform, {"Architecture": 1, "OS": 2, "Variant": 3, "OSVersion": 4, "OSFeatures": 5}),
    (_pb.ops.Input, {"digest": 1, "index": 2}),
    (_pb.ops.SourceOp, {"identifier": 1, "attrs": 2}),
    (_pb.ops.FileOp, {"actions": 2}),
    (_pb.ops.FileAction, {"input": 1, "secondaryInput": 2, "output": 3, "copy": 4, "mkfile": 5,
                          "mkdir": 6, "rm": 7, "symlink": 8}),
    (_pb.ops.FileActionCopy, {"src": 1, "dest": 2, "owner": 3, "mode": 4, "followSymlink": 5,
                              "dirCopyContents": 6, "attemptUnpackDockerCompatibility": 7,
                              "createDestPath": 8, "allowWildcard": 9, "allowEmptyWildcard": 10,
                              "timestamp": 11, "include_patterns": 12, "exclude_patterns": 13,
                              "alwaysReplaceExistingDestPaths": 14, "modeStr": 15,
                              "required_paths": 16}),
    (_pb.ops.FileActionMkFile, {"path": 1, "mode": 2, "data": 3, "owner": 4, "timestamp": 5}),
    (_pb.ops.FileActionMkDir, {"path": 1, "mode": 2, "makeParents": 3, "owner": 4, "timestamp": 5}),
    (_pb.ops.FileActionRm, {"path": 1, "allowNotFound": 2, "allowWildcard": 3}),
    (_pb.ops.FileActionSymlink, {"oldpath": 1, "newpath": 2, "owner": 3, "timestamp": 4}),
    (_pb.ops.ChownOpt, {"user": 1, "group": 2}),
    (_pb.ops.UserOpt, {"byName": 1, "byID": 2}),
    (_pb.ops.ExecOp, {"meta": 1, "mounts": 2, "network": 3, "security": 4}),
    (_pb.ops.Mount, {"input": 1, "selector": 2, "dest": 3, "output": 4, "readonly": 5,
                     "mountType": 6, "TmpfsOpt": 19, "cacheOpt": 20, "secretOpt": 21,
                     "SSHOpt": 22, "resultID": 23}),
    (_pb.ops.MergeOp, {"inputs": 1}),
    (_pb.ops.DiffOp, {"lower": 1, "upper": 2}),
    (_pb.ops.OpMetadata, {"ignore_cache": 1, "description": 2, "export_cache": 4, "caps": 5,
                          "progress_group": 6}),
    (_pb.ops.Source, {"locations": 1, "infos": 2}),
    (_pb.ops.SourceInfo, {"filename": 1, "data": 2, "definition": 3, "language": 4}),
    (_pb.ops.Location, {"sourceIndex": 1, "ranges": 2}),
    (_pb.ops.Range, {"start": 1, "end": 2}),
    (_pb.ops.Position, {"line": 1, "character": 2}),
    (_pb.errdefs.Source, {"info": 1, "ranges": 2}),
]


@pytest.mark.parametrize("message,expected", WIRE, ids=[m.DESCRIPTOR.full_name for m, _ in WIRE])
def test_field_numbers(message, expected):
    numbers = _numbers(message)
    assert {k: numbers.get(k) for k in expected} == expected


def test_enums():
    ops = _pb.ops
    assert (ops.UNSET, ops.HOST, ops.NONE) == (0, 1, 2)
    assert (ops.BIND, ops.SECRET, ops.SSH, ops.CACHE, ops.TMPFS) == (0, 1, 2, 3, 4)
    assert (ops.SHARED, ops.PRIVATE, ops.LOCKED) == (0, 1, 2)
    assert (_pb.gateway.InToto, _pb.gateway.Bundle) == (0, 1)


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

