"""`image publish`: build, push and (with `--sign-key`) sign the index and attest its SBOM.

What `apko publish` followed by `cosign sign` and `cosign attest --type spdxjson` does, in one
command. The build goes to a temporary OCI layout; the push sets the tags only after every blob
and manifest is in place.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from distroless import imagebuild
from distroless.cli.image import add_config_flags, fetcher_for, load, package_set
from distroless.oci.layout import write_layout
from distroless.registry.client import RegistryClient
from distroless.registry.push import push_layout
from distroless.registry.reference import parse_reference
from distroless.rootfs.build import build_rootfs
from distroless.sbom import spdx
from distroless.sign import dsse
from distroless.sign.keys import read_private_key
from distroless.sign.remote import attest_image, sign_image


def register(isub: argparse._SubParsersAction) -> None:
    p = isub.add_parser("publish", help="build and push an image index; sign it and attest its SBOM")
    p.add_argument("config", type=Path)
    p.add_argument("tags", nargs="+", help="registry references; the first receives the blobs")
    p.add_argument("--sign-key", type=Path, help="cosign key: sign the index and attach the SPDX SBOM")
    p.add_argument("--allow-insecure-registry", action="store_true", help="plain HTTP (implied for loopback)")
    p.add_argument("--compression", choices=("gzip", "zstd"), default="gzip")
    p.add_argument("--keep-owners", action="store_true")
    p.add_argument("--image-refs", type=Path, help="write the pushed references (by digest) to this file")
    add_config_flags(p)
    p.set_defaults(func=cmd_publish)


def cmd_publish(args: argparse.Namespace) -> int:
    refs = [parse_reference(t, default_tag="latest") for t in args.tags]
    key = read_private_key(args.sign_key) if args.sign_key else None  # ask for the password before building
    loaded = load(args)
    fetcher = fetcher_for(args)
    ps = package_set(args, loaded, fetcher)
    rootfs = build_rootfs(loaded, ps, fetcher, keep_owners=args.keep_owners, jobs=args.jobs)
    work = Path(tempfile.mkdtemp(dir=fetcher.cache.root / "tmp", prefix="publish-"))
    try:
        built = imagebuild.build(loaded, rootfs, work / "blobs", imagebuild.Options(
            compression=args.compression, name=str(refs[0])))
        layout = work / "layout"
        layout.mkdir()
        write_layout(layout, built.index)
        insecure = True if args.allow_insecure_registry else None
        first = refs[0]
        client = RegistryClient(first.registry, insecure=insecure)
        result = push_layout(layout, first, client=client)
        digest = result.digest
        for ref in refs[1:]:
            other = client if ref.registry == first.registry else RegistryClient(ref.registry, insecure=insecure)
            push_layout(layout, ref, client=other, mount_from=[first.repository] if other is client else ())
        pushed = [str(r.with_digest(digest)) for r in refs]
        if key is not None:
            sbom = json.loads(built.sboms[spdx.sbom_filename(None)])
            for ref in refs:
                c = client if ref.registry == first.registry else RegistryClient(ref.registry, insecure=insecure)
                target = ref.with_digest(digest)
                sign_image(c, target, key)
                attest_image(c, target, key, dsse.predicate_type_uri("spdxjson"), sbom)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for line in pushed:
        print(line)
    if args.image_refs:
        args.image_refs.write_text("".join(line + "\n" for line in pushed))
    return 0
