"""`generate-key-pair`, `sign`, `attest`, `verify`, `verify-attestation`, `push`: cosign's verbs
(classic `.sig`/`.att` format, key-based, no transparency log) over a registry or an OCI layout."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from distroless import hostenv
from distroless.errors import ConfigError
from distroless.fsutil import atomic_write
from distroless.registry.client import RegistryClient
from distroless.sign.push import push_layout
from distroless.registry.reference import Reference, parse_reference
from distroless.sign import dsse, keys, layout, remote


def _annotations(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        k, eq, val = v.partition("=")
        if not eq or not k:
            raise ConfigError(f"-a {v!r}: expected key=value")
        out[k] = val
    return out


def _target(p: argparse.ArgumentParser) -> None:
    p.add_argument("ref", nargs="?", metavar="REF", help="image reference (registry/repo[:tag][@digest])")
    p.add_argument("--layout", type=Path, metavar="DIR", help="an OCI layout instead of a registry image")
    p.add_argument("--allow-insecure-registry", action="bool",
                   help="plain http to the registry (loopback registries use http anyway)")
    p.add_argument("--allow-http-registry", action="bool", help="same as --allow-insecure-registry")


def _check_target(args: argparse.Namespace) -> Reference | None:
    if bool(args.ref) == bool(args.layout):
        raise ConfigError("give exactly one of REF or --layout DIR")
    return parse_reference(args.ref) if args.ref else None


def _client(args: argparse.Namespace, ref: Reference) -> RegistryClient:
    insecure = True if (args.allow_insecure_registry or args.allow_http_registry) else None
    return RegistryClient(ref.registry, insecure=insecure, docker_config=hostenv.docker_config())


def _log(msg: str) -> None:
    print(msg, file=sys.stderr)


# --------------------------------------------------------------------------- commands


def cmd_generate_key_pair(args: argparse.Namespace) -> int:
    prefix = args.output_key_prefix
    priv_path, pub_path = Path(f"{prefix}.key"), Path(f"{prefix}.pub")
    for p in (priv_path, pub_path):
        if p.exists() and not args.force:
            raise ConfigError(f"{p} exists; remove it or pass --force")
    password = hostenv.cosign_password(confirm=True)
    priv, pub = keys.generate_key_pair(password)
    atomic_write(priv_path, priv, mode=0o600)
    atomic_write(pub_path, pub, mode=0o644)
    print(f"Private key written to {priv_path}")
    print(f"Public key written to {pub_path}")
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    ref = _check_target(args)
    annotations = _annotations(args.annotations)
    key = keys.read_private_key(args.key, hostenv.key_password)
    if ref is None:
        subject, _ = layout.sign_layout(args.layout, key, identity=args.identity, annotations=annotations)
        print(f"Signed {args.layout} ({subject.digest})")
        return 0
    digest, _ = remote.sign_image(_client(args, ref), ref, key, identity=args.identity,
                                  annotations=annotations, log=_log)
    print(f"Signed {ref.name}@{digest}")
    return 0


def cmd_attest(args: argparse.Namespace) -> int:
    ref = _check_target(args)
    ptype = dsse.predicate_type_uri(args.type)
    try:
        raw = Path(args.predicate).read_bytes()
    except OSError as e:
        raise ConfigError(f"{args.predicate}: cannot read predicate: {e.strerror or e}") from e
    predicate = dsse.predicate_for(args.type, raw, str(args.predicate), timestamp=hostenv.predicate_timestamp())
    key = keys.read_private_key(args.key, hostenv.key_password)
    if ref is None:
        subject, _ = layout.attest_layout(args.layout, key, ptype, predicate, subject_name=args.subject_name or "",
                                          statement_version=args.statement)
        print(f"Attested {args.layout} ({subject.digest}) with {ptype}")
        return 0
    digest, _ = remote.attest_image(_client(args, ref), ref, key, ptype, predicate,
                                    statement_version=args.statement, log=_log)
    print(f"Attested {ref.name}@{digest} with {ptype}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    ref = _check_target(args)
    pub = keys.read_public_key(args.key)
    annotations = _annotations(args.annotations)
    if ref is None:
        subject, ok = layout.verify_layout(args.layout, pub, annotations=annotations, identity=args.identity)
        where = f"{args.layout} ({subject.digest})"
    else:
        digest, ok = remote.verify_image(_client(args, ref), ref, pub, annotations=annotations,
                                         identity=args.identity)
        where = f"{ref.name}@{digest}"
    print(f"Verification for {where} --")
    print(f"  {len(ok)} valid signature(s) by {args.key}; checked: signature over the payload, "
          "payload digest = image digest" + (", identity" if args.identity else "")
          + (", annotations" if annotations else ""))
    for v in ok:
        print(json.dumps(json.loads(v.raw), separators=(",", ":")))
    return 0


def cmd_verify_attestation(args: argparse.Namespace) -> int:
    ref = _check_target(args)
    pub = keys.read_public_key(args.key)
    ptype = dsse.predicate_type_uri(args.type) if args.type else None
    if ref is None:
        subject, ok = layout.verify_layout_attestations(args.layout, pub, ptype)
        where = f"{args.layout} ({subject.digest})"
    else:
        digest, ok = remote.verify_image_attestations(_client(args, ref), ref, pub, ptype)
        where = f"{ref.name}@{digest}"
    print(f"Verification for {where} --")
    print(f"  {len(ok)} valid attestation(s) by {args.key}; checked: DSSE signature, subject digest"
          + (f", predicate type {ptype}" if ptype else ""))
    for v in ok:
        print(f"  predicateType {v.statement.predicate_type} ({v.statement.type})")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    ref = parse_reference(args.ref)
    insecure = True if (args.allow_insecure_registry or args.allow_http_registry) else None
    client = RegistryClient(ref.registry, insecure=insecure, docker_config=hostenv.docker_config())
    result = push_layout(args.layout_dir, ref, client=client, mount_from=tuple(args.mount_from),
                         log=_log if args.verbose else (lambda _m: None))
    print(f"{ref.name}@{result.digest}")
    return 0


# --------------------------------------------------------------------------- registration


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate-key-pair", help="write cosign.key (encrypted) and cosign.pub")
    p.add_argument("--output-key-prefix", default="cosign", help="file name prefix (default cosign)")
    p.add_argument("--force", action="bool", help="overwrite existing files")
    p.set_defaults(func=cmd_generate_key_pair)

    p = sub.add_parser("sign", help="sign an image (registry .sig tag) or an OCI layout")
    _target(p)
    p.add_argument("--key", required=True, help="cosign private key file (COSIGN_PASSWORD or prompt)")
    p.add_argument("-a", "--annotations", action="list", metavar="KEY=VALUE",
                   help="extra claims in the payload's optional section")
    p.add_argument("--identity", "--sign-container-identity", dest="identity", default=None,
                   help="docker-reference to sign (default REG/REPO:TAG, or REG/REPO for a digest)")
    p.add_argument("-y", "--yes", action="bool", help="accepted for cosign compatibility (no prompt is shown)")
    p.add_argument("--tlog-upload", action="bool", help="accepted; no transparency log is used")
    p.set_defaults(func=cmd_sign)

    p = sub.add_parser("attest", help="attach a signed in-toto attestation (.att tag) to an image or layout")
    _target(p)
    p.add_argument("--key", required=True)
    p.add_argument("--predicate", required=True, type=Path, metavar="FILE")
    p.add_argument("--type", default="custom", help="spdxjson, cyclonedx, custom, ... or a predicate URI")
    p.add_argument("--statement", choices=("v0.1", "v1"), default="v0.1", help="in-toto statement version")
    p.add_argument("--subject-name", default=None, help="layout only: statement subject name")
    p.add_argument("-y", "--yes", action="bool", help="accepted for cosign compatibility (no prompt is shown)")
    p.add_argument("--tlog-upload", action="bool", help="accepted; no transparency log is used")
    p.set_defaults(func=cmd_attest)

    p = sub.add_parser("verify", help="verify an image's (or layout's) signatures with a public key")
    _target(p)
    p.add_argument("--key", required=True, help="cosign.pub")
    p.add_argument("-a", "--annotations", action="list", metavar="KEY=VALUE",
                   help="require these claims in the payload")
    p.add_argument("--identity", default=None, help="require this docker-reference (repository[:tag])")
    p.add_argument("--insecure-ignore-tlog", action="bool", help="accepted; no transparency log is used")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("verify-attestation", help="verify an image's (or layout's) attestations")
    _target(p)
    p.add_argument("--key", required=True)
    p.add_argument("--type", default=None, help="require this predicate type (name or URI); default any")
    p.add_argument("--insecure-ignore-tlog", action="bool", help="accepted; no transparency log is used")
    p.set_defaults(func=cmd_verify_attestation)

    p = sub.add_parser("push", help="push an OCI layout (index or image, with signatures) to REF")
    p.add_argument("layout_dir", type=Path, metavar="LAYOUT")
    p.add_argument("ref", metavar="REF")
    p.add_argument("--mount-from", action="list", metavar="REPO",
                   help="same-registry repositories to mount existing blobs from")
    p.add_argument("--allow-insecure-registry", action="bool", help="plain http to the registry")
    p.add_argument("--allow-http-registry", action="bool", help="same as --allow-insecure-registry")
    p.add_argument("-v", "--verbose", action="bool", help="log each upload")
    p.set_defaults(func=cmd_push)
