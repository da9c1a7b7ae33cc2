"""cosign's other verbs: `download signature|attestation|sbom`, `tree`, `triangulate`,
`sign-blob`, `verify-blob`, `public-key`, `copy`, `save` and `load`, with cosign's flags and
output shapes (see `distroless.sign.inspect`)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import base64
from pathlib import Path

from distroless.cli.sign import client_for, emit, fetch_small, info, private_key_arg, public_key_arg, registry_flags
from distroless.errors import ConfigError, RegistryNotFoundError
from distroless.fsutil import atomic_write
from distroless.registry.reference import parse_reference
from distroless.sign import attach, blob, dsse, inspect, transfer
from distroless.sign.remote import fetch_attachments, resolve_digest


def cmd_download(args: argparse.Namespace) -> int:
    ref = parse_reference(args.ref)
    client = client_for(args, ref)
    digest = resolve_digest(client, ref)
    if args.what == "signature":
        sigs = fetch_attachments(client, ref, digest, attach.SIG_SUFFIX)
        if not sigs:
            raise RegistryNotFoundError(f"{args.ref}: no signatures attached")
        emit(args, b"".join(inspect.signature_record(a) + b"\n" for a in sigs))
    elif args.what == "attestation":
        atts = fetch_attachments(client, ref, digest, attach.ATT_SUFFIX)
        ptype = dsse.predicate_type_uri(args.predicate_type) if args.predicate_type else None
        out = inspect.attestation_lines(atts, ptype)
        if not out:
            raise RegistryNotFoundError(f"{args.ref}: no attestations attached"
                                        + (f" with predicate type {ptype}" if ptype else ""))
        emit(args, out)
    else:
        sboms = fetch_attachments(client, ref, digest, inspect.SBOM_SUFFIX)
        if not sboms:
            raise RegistryNotFoundError(f"{args.ref}: no sbom attached to reference")
        info(args, "WARNING: Downloading SBOMs this way does not ensure its authenticity; "
                   "signed SBOMs are attestations (`download attestation`).")
        emit(args, b"".join(a.payload for a in sboms))
    return 0


def cmd_tree(args: argparse.Namespace) -> int:
    ref = parse_reference(args.ref)
    client = client_for(args, ref)
    digest = resolve_digest(client, ref)
    emit(args, inspect.render_tree(args.ref, inspect.tree_sections(client, ref, digest)).encode())
    return 0


def cmd_triangulate(args: argparse.Namespace) -> int:
    ref = parse_reference(args.ref)
    digest = resolve_digest(client_for(args, ref), ref)
    emit(args, (inspect.triangulate(ref, digest, args.type) + "\n").encode())
    return 0


def cmd_sign_blob(args: argparse.Namespace) -> int:
    data = blob.read_blob_arg(args.blob)
    key = private_key_arg(args.key)
    sig = blob.sign_blob(key.key, data)
    text = base64.b64encode(sig) if args.b64 else sig
    if args.output_signature:
        atomic_write(args.output_signature, text)
        info(args, f"Wrote signature to file {args.output_signature}")
    else:
        emit(args, text + (b"\n" if args.b64 else b""))
    return 0


def cmd_verify_blob(args: argparse.Namespace) -> int:
    if not args.signature:
        raise ConfigError("verify-blob needs --signature FILE|BASE64 (bundles are not supported)")
    pub = public_key_arg(args.key)
    blob.verify_blob(pub, blob.read_blob_arg(args.blob), _signature_arg(args.signature), str(args.blob))
    info(args, "Verified OK")
    return 0


def _signature_arg(value: str) -> bytes:
    """`--signature`: a file, an https URL, or the base64 text itself."""
    if value.startswith(("https://", "http://")):
        return blob.parse_signature(fetch_small(value, "--signature"), value)
    return blob.read_signature(value)


def cmd_public_key(args: argparse.Namespace) -> int:
    pem = private_key_arg(args.key).public_pem()
    if args.outfile:
        atomic_write(args.outfile, pem)
        info(args, f"Public key written to {args.outfile}")
    else:
        emit(args, pem)
    return 0


def cmd_copy(args: argparse.Namespace) -> int:
    src, dst = parse_reference(args.source), parse_reference(args.destination, default_tag="")
    if not dst.tag and not dst.digest:
        dst = dst.with_tag(src.tag or "latest")  # cosign keeps the source's tag
    only = list(args.only) or (["sig"] if args.sig_only else [])
    src_client = client_for(args, src)
    dst_client = src_client if dst.registry == src.registry else client_for(args, dst)
    digest = transfer.copy(src_client, src, dst_client, dst, only=only, log=lambda m: info(args, m))
    print(f"{dst.name}@{digest}")
    return 0


def cmd_save(args: argparse.Namespace) -> int:
    ref = parse_reference(args.ref)
    subject = transfer.save(client_for(args, ref), ref, args.dir, log=lambda m: info(args, m))
    print(f"{args.dir}: {ref.name}@{subject.digest}")
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    ref = parse_reference(args.ref)
    result = transfer.load(args.dir, ref, client=client_for(args, ref), log=lambda m: info(args, m))
    print(f"{ref.name}@{result.digest}")
    return 0


def register(sub: argparse._SubParsersAction, words: Sequence[str] | None = None) -> None:  # noqa: ARG001
    d = sub.add_parser("download", help="print an image's signatures, attestations or SBOM")
    dsub = d.add_subparsers(dest="what", required=True, metavar="WHAT")
    for what, text in (("signature", "one JSON object per signature, cosign's shape"),
                       ("attestation", "each attestation's DSSE envelope, one per line"),
                       ("sbom", "the SBOM attached with the deprecated .sbom tag")):
        p = dsub.add_parser(what, help=text)
        p.add_argument("ref", metavar="REF", help="image reference")
        registry_flags(p)
        p.add_argument("--output-file", type=Path, metavar="FILE", help="write there instead of stdout")
        if what == "attestation":
            p.add_argument("--predicate-type", default=None, help="only this predicate type (name or URI)")
        p.set_defaults(func=cmd_download, what=what)

    p = sub.add_parser("tree", help="list an image's signatures, attestations and SBOMs")
    p.add_argument("ref", metavar="REF", help="image reference")
    registry_flags(p)
    p.set_defaults(func=cmd_tree)

    p = sub.add_parser("triangulate", help="print the tag holding an image's signatures (or others)")
    p.add_argument("ref", metavar="REF", help="image reference")
    p.add_argument("--type", choices=sorted(inspect.TRIANGULATE_TYPES), default="signature",
                   help="which attachment: signature (.sig), attestation (.att) or sbom (.sbom)")
    registry_flags(p)
    p.set_defaults(func=cmd_triangulate)

    p = sub.add_parser("sign-blob", help="sign a file with a cosign key; prints the base64 signature")
    p.add_argument("blob", metavar="FILE", help="the file to sign (- for stdin)")
    p.add_argument("--key", required=True, help="cosign private key file (COSIGN_PASSWORD or prompt)")
    p.add_argument("--output-signature", "--output", type=Path, metavar="FILE",
                   help="write the signature to FILE instead of stdout")
    p.add_argument("--b64", action="bool", default=True, help="base64-encode the signature")
    p.add_argument("-y", "--yes", action="bool", help="accepted for cosign compatibility (nothing to confirm)")
    p.add_argument("--tlog-upload", action="bool", help="accepted; no transparency log is used")
    p.set_defaults(func=cmd_sign_blob)

    p = sub.add_parser("verify-blob", help="verify a file's signature with a cosign public key")
    p.add_argument("blob", metavar="FILE", help="the signed file (- for stdin)")
    p.add_argument("--key", required=True, help="cosign.pub (PEM public key)")
    p.add_argument("--signature", metavar="FILE|BASE64", help="the signature: a file or the base64 text")
    p.add_argument("--insecure-ignore-tlog", action="bool", default=True,
                   help="accepted; no transparency log is consulted (key-based verification)")
    p.add_argument("--offline", action="bool", help="accepted; nothing is contacted anyway")
    p.set_defaults(func=cmd_verify_blob)

    p = sub.add_parser("public-key", help="print the public key of a cosign private key")
    p.add_argument("--key", required=True, help="cosign private key file (COSIGN_PASSWORD or prompt)")
    p.add_argument("--outfile", type=Path, metavar="FILE", help="write the PEM there instead of stdout")
    p.set_defaults(func=cmd_public_key)

    p = sub.add_parser("copy", help="copy an image with its signatures and attestations")
    p.add_argument("source", metavar="SRC", help="source image reference")
    p.add_argument("destination", metavar="DST", help="destination reference (the source's tag if none)")
    p.add_argument("--only", action="list", default=[], metavar="KINDS",
                   help="copy only these attachments, not the image: sig, att, sbom (comma-separated)")
    p.add_argument("--sig-only", action="bool", help="same as --only=sig")
    p.add_argument("-f", "--force", action="bool", help="accepted; existing tags are overwritten as cosign -f")
    registry_flags(p)
    p.set_defaults(func=cmd_copy)

    p = sub.add_parser("save", help="save an image and its signatures to an OCI layout directory")
    p.add_argument("ref", metavar="REF", help="image reference")
    p.add_argument("--dir", type=Path, required=True, help="the layout directory to write")
    registry_flags(p)
    p.set_defaults(func=cmd_save)

    p = sub.add_parser("load", help="push a saved layout (image and signatures) to REF")
    p.add_argument("ref", metavar="REF", help="destination image reference")
    p.add_argument("--dir", type=Path, required=True, help="the layout directory (from save or cosign save)")
    registry_flags(p)
    p.set_defaults(func=cmd_load)
