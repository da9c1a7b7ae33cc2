"""The publishing steps over plain files (`python3 -m distroless.steps sign|verify|push|load`):
sign and attest a layout, verify it, push it to a registry, hand it to `docker load`."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from distroless.stepio import publish_dir, staging


def _password(args: argparse.Namespace) -> bytes | None:
    if not args.password_file:
        return None
    data = Path(args.password_file).read_bytes()
    return data[:-1] if data.endswith(b"\n") else data  # a file written by `echo` ends in a newline


def cmd_sign(args: argparse.Namespace) -> int:
    from distroless import epoch, hostenv
    from distroless.sign import dsse, keys, layout

    key = keys.read_private_key(args.key, _password(args) if args.password_file else hostenv.key_password)
    out = Path(args.out)
    work = staging(out)
    try:
        signed = work / "layout"
        shutil.copytree(args.layout, signed, symlinks=False)
        for p in signed.rglob("*"):  # inputs are read-only; the copy is ours to extend
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        os.chmod(signed, 0o755)
        subject, _ = layout.sign_layout(signed, key, identity=args.identity or None)
        for predicate in args.attest:
            ptype = dsse.predicate_type_uri(args.attest_type)
            pred = dsse.predicate_for(args.attest_type, Path(predicate).read_bytes(), Path(predicate).name,
                                      timestamp=hostenv.predicate_timestamp(epoch.parse(args.source_date_epoch,
                                                                                         "--source-date-epoch")))
            layout.attest_layout(signed, key, ptype, pred)
        publish_dir(signed, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"signed {subject.digest}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from distroless.sign import keys, layout

    pub = keys.read_public_key(args.key)
    subject, ok = layout.verify_layout(args.layout, pub)
    print(f"{args.layout}: {len(ok)} valid signature(s) for {subject.digest}")
    if args.attestations:
        _, atts = layout.verify_layout_attestations(args.layout, pub)
        print(f"{args.layout}: {len(atts)} valid attestation(s)")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from distroless import hostenv
    from distroless.registry.client import RegistryClient
    from distroless.registry.reference import parse_reference
    from distroless.sign.push import push_layout

    ref = parse_reference(args.ref)
    client = RegistryClient(ref.registry, insecure=True if args.insecure else None,
                            docker_config=hostenv.docker_config())
    result = push_layout(args.layout, ref, client=client,
                         log=lambda m: print(m, file=sys.stderr))
    print(f"{ref.name}@{result.digest}")
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    from distroless.oci.dockerarchive import write_docker_archive, write_docker_archive_to
    from distroless.sign.layout import find_subject
    from distroless.oci.layout import load_image, load_index
    from distroless.oci.image import Index, OCI_INDEX

    ls = find_subject(args.layout)
    if ls.subject.media_type == OCI_INDEX or "index" in ls.subject.media_type:
        index = load_index(args.layout, ls.subject)
    else:
        im = load_image(args.layout, ls.subject)
        index = Index(b"", (im,))
    if args.out:
        write_docker_archive(args.out, index, args.tag)
        print(f"{args.out}: docker archive of {', '.join(args.tag)}")
        return 0
    proc = subprocess.Popen([args.docker, "load"], stdin=subprocess.PIPE)
    assert proc.stdin is not None
    try:
        write_docker_archive_to(proc.stdin, index, args.tag)
    finally:
        proc.stdin.close()
    return proc.wait()
