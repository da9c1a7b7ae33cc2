"""`image publish`: build, push and (with `--sign-key`) sign the index and attest its SBOM.

What `apko publish` followed by `cosign sign` and `cosign attest --type spdxjson` does, in one
command. The build goes to a temporary OCI layout; the push sets the tags only after every blob
and manifest is in place.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from distroless import hostenv
from distroless.cli.build import built_images
from distroless.cli.image import add_config_flags
from distroless.oci.layout import write_layout
from distroless.registry.client import RegistryClient
from distroless.sign.push import push_layout
from distroless.registry.reference import parse_reference
from distroless.sbom import spdx
from distroless.sign import dsse
from distroless.sign.keys import read_private_key
from distroless.sign.remote import attest_image, sign_image


def register(isub: argparse._SubParsersAction) -> None:
    p = isub.add_parser("publish", help="build and push an image index; sign it and attest its SBOM")
    p.add_argument("config", type=Path)
    p.add_argument("tags", nargs="+", help="registry references; the first receives the blobs")
    p.add_argument("--sign-key", type=Path, help="cosign key: sign the index and attach the SPDX SBOM")
    p.add_argument("--allow-insecure-registry", action="bool", help="plain HTTP (implied for loopback)")
    p.add_argument("--compression", choices=("gzip", "zstd"), default="gzip")
    p.add_argument("--keep-owners", action="bool", help="keep package uid/gid instead of apko's 0:0")
    p.add_argument("--image-refs", type=Path, help="write the pushed references (by digest) to this file")
    add_config_flags(p)
    p.set_defaults(func=cmd_publish)


def cmd_publish(args: argparse.Namespace) -> int:
    refs = [parse_reference(t, default_tag="latest") for t in args.tags]
    key = read_private_key(args.sign_key, hostenv.key_password) if args.sign_key else None  # ask for the password before building
    insecure = True if args.allow_insecure_registry else None
    first = refs[0]
    clients = {first.registry: RegistryClient(first.registry, insecure=insecure, docker_config=hostenv.docker_config())}
    with built_images(args, name=str(first), sbom_formats=("spdx",)) as built, \
            tempfile.TemporaryDirectory(prefix="publish-") as work:
        layout = Path(work) / "layout"
        layout.mkdir()
        write_layout(layout, built.index)
        sbom = json.loads(built.sboms[spdx.sbom_filename(None)])
        digest = ""
        for ref in refs:
            if ref.registry not in clients:
                clients[ref.registry] = RegistryClient(ref.registry, insecure=insecure, docker_config=hostenv.docker_config())
            client = clients[ref.registry]
            same = ref.registry == first.registry and ref is not first
            digest = push_layout(layout, ref, client=client, mount_from=[first.repository] if same else ()).digest
            if key is not None:
                target = ref.with_digest(digest)
                sign_image(client, target, key)
                attest_image(client, target, key, dsse.predicate_type_uri("spdxjson"), sbom)
    pushed = [str(r.with_digest(digest)) for r in refs]
    for line in pushed:
        print(line)
    if args.image_refs:
        args.image_refs.write_text("".join(line + "\n" for line in pushed))
    return 0
