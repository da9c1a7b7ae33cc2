"""`generate-key-pair`, `sign`, `attest`, `verify`, `verify-attestation`, `push`: cosign's verbs
(classic `.sig`/`.att` format, key-based, no transparency log) over a registry or an OCI layout."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import os
import sys
from pathlib import Path

from distroless import hostenv
from distroless.errors import ConfigError
from distroless.fsutil import atomic_write
from distroless.registry.client import RegistryClient
from distroless.sign.push import push_layout
from distroless.registry.reference import Reference, parse_reference
from distroless.sign import dsse, inspect, keys, layout, remote


def _annotations(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        k, eq, val = v.partition("=")
        if not eq or not k:
            raise ConfigError(f"-a {v!r}: expected key=value")
        out[k] = val
    return out


KMS_SCHEMES = ("awskms://", "gcpkms://", "azurekms://", "hashivault://", "k8s://", "gitlab://", "pkcs11:")
MAX_REMOTE_FILE = 1 << 20  # a key or a signature is a few hundred bytes


def fetch_small(url: str, what: str) -> bytes:
    """A key or signature named by URL (cosign's `--key https://…`, `--signature https://…`)."""
    import requests

    from distroless import neterrors

    try:
        with requests.get(url, timeout=30, stream=True) as r:
            if r.status_code != 200:
                raise ConfigError(f"{what} {url}: HTTP {r.status_code}")
            data = r.raw.read(MAX_REMOTE_FILE + 1, decode_content=True)
    except requests.RequestException as e:
        raise ConfigError(f"{what} {url}: {neterrors.describe(e, url)}") from None
    if len(data) > MAX_REMOTE_FILE:
        raise ConfigError(f"{what} {url}: larger than {MAX_REMOTE_FILE} bytes")
    return data


def key_source(spec: str) -> tuple[bytes | None, str]:
    """cosign's `--key` forms: a path (bytes None: read as a file), `https://…`, `env://VAR`;
    KMS and other key stores are refused by name."""
    if spec.startswith(KMS_SCHEMES):
        raise ConfigError(f"--key {spec}: key management services are not supported; export the key "
                          "(cosign public-key --key …) and pass the file")
    if spec.startswith(("https://", "http://")):
        return fetch_small(spec, "--key"), spec
    if spec.startswith("env://"):
        value = os.environ.get(spec[len("env://"):])
        if value is None:
            raise ConfigError(f"--key {spec}: the environment variable is not set")
        return value.encode(), spec
    return None, spec


def public_key_arg(spec: str):  # noqa: ANN201
    data, source = key_source(str(spec))
    return keys.read_public_key(spec) if data is None else keys.load_public_key(data, source)


def private_key_arg(spec: str) -> keys.PrivateKey:
    data, source = key_source(str(spec))
    if data is None:
        return keys.read_private_key(spec, hostenv.key_password)
    password = hostenv.key_password(f"Enter password for private key {source}: ") \
        if keys.key_is_encrypted(data, source) else None
    return keys.load_private_key(data, password, source)


def registry_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-insecure-registry", action="bool",
                   help="plain http to the registry (loopback registries use http anyway)")
    p.add_argument("--allow-http-registry", action="bool", help="same as --allow-insecure-registry")


def _target(p: argparse.ArgumentParser, *, local_image: bool = False) -> None:
    if local_image:  # verify-style commands take several images, as cosign
        p.add_argument("ref", nargs="*", metavar="REF", help="image references (registry/repo[:tag][@digest])")
    else:
        p.add_argument("ref", nargs="?", metavar="REF", help="image reference (registry/repo[:tag][@digest])")
    p.add_argument("--layout", type=Path, metavar="DIR", help="an OCI layout instead of a registry image")
    if local_image:
        p.add_argument("--local-image", action="bool",
                       help="REF is an OCI layout directory (as written by `save`), cosign's spelling of --layout")
    registry_flags(p)


def _check_target(args: argparse.Namespace) -> Reference | None:
    if bool(args.ref) == bool(args.layout):
        raise ConfigError("give exactly one of REF or --layout DIR")
    return parse_reference(args.ref) if args.ref else None


def _check_targets(args: argparse.Namespace) -> list[tuple[str, Reference | None]]:
    """verify's targets: several images, or one layout (`--layout DIR` / `--local-image DIR`)."""
    if args.local_image:
        if args.layout or len(args.ref) != 1:
            raise ConfigError("--local-image takes the layout directory as its one argument")
        return [(args.ref[0], None)]
    if bool(args.ref) == bool(args.layout):
        raise ConfigError("give image references or --layout DIR, not both or neither")
    return [(str(args.layout), None)] if args.layout else [(r, parse_reference(r)) for r in args.ref]


def client_for(args: argparse.Namespace, ref: Reference) -> RegistryClient:
    insecure = True if (args.allow_insecure_registry or args.allow_http_registry) else None
    return RegistryClient(ref.registry, insecure=insecure, docker_config=hostenv.docker_config())


def info(args: argparse.Namespace, msg: str) -> None:
    """Headers and notes go to stderr at --log-level info or debug, never with -q (stdout stays
    for results)."""
    if not getattr(args, "quiet", False) and getattr(args, "log_level", "info") in ("info", "debug"):
        print(msg, file=sys.stderr)


def emit(args: argparse.Namespace, data: bytes) -> None:
    """A command's result: stdout, or `--output-file` (written whole, atomically)."""
    out = getattr(args, "output_file", None)
    if out:
        atomic_write(Path(out), data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()


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
    key = private_key_arg(args.key)
    if ref is None:
        subject, _ = layout.sign_layout(args.layout, key, identity=args.identity, annotations=annotations)
        print(f"Signed {args.layout} ({subject.digest})")
        return 0
    digest, _ = remote.sign_image(client_for(args, ref), ref, key, identity=args.identity,
                                  annotations=annotations, log=lambda m: info(args, m))
    print(f"Signed {ref.name}@{digest}")
    return 0


def cmd_attest(args: argparse.Namespace) -> int:
    ref = _check_target(args)
    if bool(args.predicate) == bool(args.statement):
        raise ConfigError("give exactly one of --predicate FILE or --statement FILE")
    statement = predicate = None
    ptype = dsse.predicate_type_uri(args.type)
    if args.statement:
        statement = _read_input(args.statement, "statement")
    else:
        predicate = dsse.predicate_for(args.type, _read_input(args.predicate, "predicate"), str(args.predicate),
                                       timestamp=hostenv.predicate_timestamp())
    key = private_key_arg(args.key)
    if ref is None:
        subject, layer = layout.attest_layout(args.layout, key, ptype, predicate, subject_name=args.subject_name or "",
                                              statement_version=args.statement_version, statement=statement)
        print(f"Attested {args.layout} ({subject.digest}) with {layer.annotations[dsse.PREDICATE_TYPE_ANNOTATION]}")
        return 0
    digest, layer = remote.attest_image(client_for(args, ref), ref, key, ptype, predicate,
                                        statement_version=args.statement_version, statement=statement, log=lambda m: info(args, m))
    print(f"Attested {ref.name}@{digest} with {layer.annotations[dsse.PREDICATE_TYPE_ANNOTATION]}")
    return 0


def _read_input(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read {what}: {e.strerror or e}") from e


def cmd_verify(args: argparse.Namespace) -> int:
    """cosign's contract: per image, the header on stderr and a JSON array of the verified
    payloads on stdout."""
    targets = _check_targets(args)
    pub = public_key_arg(args.key)
    annotations = _annotations(args.annotations)
    out = b""
    for target, ref in targets:
        if ref is None:
            _, ok = layout.verify_layout(Path(target), pub, annotations=annotations, identity=args.identity,
                                         check_claims=args.check_claims)
        else:
            _, ok = remote.verify_image(client_for(args, ref), ref, pub, annotations=annotations,
                                        identity=args.identity, check_claims=args.check_claims)
        info(args, inspect.verification_header(target, claims=args.check_claims,
                                               annotations=bool(annotations)).rstrip("\n"))
        out += inspect.render_verified(ok, args.output)
        if not args.output_file:
            emit(args, out)
            out = b""
    if out:
        emit(args, out)
    return 0


def cmd_verify_attestation(args: argparse.Namespace) -> int:
    targets = _check_targets(args)
    pub = public_key_arg(args.key)
    ptype = dsse.predicate_type_uri(args.type) if args.type else None
    out = b""
    for target, ref in targets:
        if ref is None:
            _, ok = layout.verify_layout_attestations(Path(target), pub, ptype)
        else:
            _, ok = remote.verify_image_attestations(client_for(args, ref), ref, pub, ptype)
        info(args, inspect.verification_header(target, claims=True, annotations=False).rstrip("\n"))
        out += inspect.render_verified_attestations(ok)
    emit(args, out)
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    ref = parse_reference(args.ref)
    insecure = True if (args.allow_insecure_registry or args.allow_http_registry) else None
    client = RegistryClient(ref.registry, insecure=insecure, docker_config=hostenv.docker_config())
    result = push_layout(args.layout_dir, ref, client=client, mount_from=tuple(args.mount_from),
                         log=(lambda m: info(args, m)) if args.verbose else (lambda _m: None))
    print(f"{ref.name}@{result.digest}")
    return 0


# --------------------------------------------------------------------------- registration


def register(sub: argparse._SubParsersAction, words: Sequence[str] | None = None) -> None:  # noqa: ARG001
    p = sub.add_parser("generate-key-pair", help="write cosign.key (encrypted) and cosign.pub")
    p.add_argument("--output-key-prefix", default="cosign", help="file name prefix (default cosign)")
    p.add_argument("--force", action="bool", help="overwrite existing files")
    p.set_defaults(func=cmd_generate_key_pair)

    p = sub.add_parser("sign", help="sign an image (registry .sig tag) or an OCI layout")
    _target(p)
    p.add_argument("--key", required=True, help="cosign private key file (COSIGN_PASSWORD or prompt)")
    p.add_argument("-a", "--annotations", action="list", default=[], metavar="KEY=VALUE",
                   help="extra claims in the payload's optional section (repeatable, comma-separated)")
    p.add_argument("--identity", "--sign-container-identity", dest="identity", default=None,
                   help="docker-reference to sign (default REG/REPO:TAG, or REG/REPO for a digest)")
    p.add_argument("-y", "--yes", action="bool", help="accepted for cosign compatibility (nothing to confirm)")
    p.add_argument("--tlog-upload", action="bool", help="accepted; no transparency log is used")
    p.set_defaults(func=cmd_sign)

    p = sub.add_parser("attest", help="attach a signed in-toto attestation (.att tag) to an image or layout")
    _target(p)
    p.add_argument("--key", required=True, help="cosign private key file (COSIGN_PASSWORD or prompt)")
    p.add_argument("--predicate", type=Path, metavar="FILE", help="the predicate document (an SBOM, provenance, ...)")
    p.add_argument("--statement", type=Path, metavar="FILE",
                   help="a whole in-toto statement to sign as is (its subject must name the image digest)")
    p.add_argument("--type", default="custom", help="spdxjson, cyclonedx, custom, ... or a predicate URI")
    p.add_argument("--statement-version", choices=("v0.1", "v1"), default="v0.1",
                   help="in-toto statement version built around --predicate (cosign writes v0.1)")
    p.add_argument("--subject-name", default=None, help="layout only: statement subject name")
    p.add_argument("-y", "--yes", action="bool", help="accepted for cosign compatibility (nothing to confirm)")
    p.add_argument("--tlog-upload", action="bool", help="accepted; no transparency log is used")
    p.set_defaults(func=cmd_attest)

    p = sub.add_parser("verify", help="verify an image's (or layout's) signatures with a public key")
    _verify_flags(p)
    p.add_argument("-a", "--annotations", action="list", default=[], metavar="KEY=VALUE",
                   help="require these claims in the payload (repeatable, comma-separated)")
    p.add_argument("--identity", default=None, help="require this docker-reference (repository[:tag])")
    p.add_argument("--check-claims", action="bool", default=True,
                   help="check the payload's image digest (and -a claims), not only the signature")
    p.add_argument("-o", "--output", choices=("json", "text"), default="json",
                   help="json: one JSON array of the verified payloads (cosign's default); text: one per line")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("verify-attestation", help="verify an image's (or layout's) attestations")
    _verify_flags(p)
    p.add_argument("--type", default=None, help="require this predicate type (name or URI); default any")
    p.set_defaults(func=cmd_verify_attestation)

    p = sub.add_parser("push", help="push an OCI layout (index or image, with signatures) to REF")
    p.add_argument("layout_dir", type=Path, metavar="LAYOUT", help="the OCI layout directory to push")
    p.add_argument("ref", metavar="REF", help="destination reference (registry/repo[:tag])")
    p.add_argument("--mount-from", action="list", default=[], metavar="REPO",
                   help="same-registry repositories to mount existing blobs from")
    registry_flags(p)
    p.add_argument("-v", "--verbose", action="bool", help="log each blob and manifest pushed")
    p.set_defaults(func=cmd_push)


def _verify_flags(p: argparse.ArgumentParser) -> None:
    _target(p, local_image=True)
    p.add_argument("--key", required=True, help="cosign.pub (PEM public key)")
    p.add_argument("--insecure-ignore-tlog", action="bool", default=True,
                   help="accepted; no transparency log is consulted (key-based verification)")
    p.add_argument("--offline", action="bool", help="accepted; nothing but the registry is contacted anyway")
    p.add_argument("--output-file", type=Path, metavar="FILE", help="write the result there instead of stdout")
