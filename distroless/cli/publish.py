"""`image publish`: build, push and (with `--sign-key`) sign the index and attest its SBOM.

What `apko publish` followed by `cosign sign` and `cosign attest --type spdxjson` does, in one
command. The built index goes straight from the build's staging directory to the registry
(no layout on disk); the push sets the tags only after every blob and manifest is in place.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path

from typing import TYPE_CHECKING

from distroless import hostenv
from distroless.cli.build import add_sbom_flags, add_vcs_flag, built_images, check_output_parent, sbom_formats_of, write_sboms
from distroless.cli.image import VERBS, add_config_flags, print_json
from distroless.config import host_architecture
from distroless.errors import DistrolessError

if TYPE_CHECKING:
    from distroless.oci.image import Image, Index

# The engine (registry, signing, OCI) is imported inside the commands: registering `publish`
# must not load it (see distroless/cli/__init__.py).


def register(isub: argparse._SubParsersAction) -> None:
    p = isub.add_parser("publish", help=VERBS["publish"][1])
    p.add_argument("config", type=Path, help="the apko image configuration (YAML)")
    p.add_argument("tags", nargs="+", help="registry references; the first receives the blobs")
    p.add_argument("--sign-key", type=Path, help="cosign key: sign the index and attach the SPDX SBOM")
    p.add_argument("--allow-insecure-registry", action="bool", help="plain HTTP (implied for loopback)")
    p.add_argument("--compression", choices=("gzip", "zstd"), default="gzip", help="layer compression (default gzip)")
    p.add_argument("--keep-owners", action="bool", help="keep package uid/gid instead of apko's 0:0")
    p.add_argument("--image-refs", type=Path, help="write the pushed references (by digest) to this file")
    add_sbom_flags(p, sbom_path_default=None)
    add_vcs_flag(p)
    p.add_argument("--local", action="bool",
                   help="load the image for this machine's architecture (or $GOARCH) into the local docker "
                        "daemon under the tags, instead of pushing")
    p.add_argument("--docker", default="docker", help="docker CLI for --local (DOCKER_HOST is honoured)")
    p.add_argument("--json", action="bool",
                   help="print the result as JSON: digest, references pushed, signed or not, files written")
    add_config_flags(p)
    p.set_defaults(func=cmd_publish)


def local_image(index: Index) -> Image:
    """The image `publish --local` loads: apko's rule (linux/$GOARCH, else the first), with the
    host's architecture standing in for an unset GOARCH."""
    from distroless.oci.image import Platform

    want = os.environ.get("GOARCH") or Platform.from_arch(host_architecture()).arch
    return next((im for im in index.images if im.platform.os == "linux" and im.platform.arch == want),
                index.images[0])


def load_local(args: argparse.Namespace, index: Index, tags: list[str]) -> str:
    from distroless.oci.dockerarchive import write_docker_archive_to
    from distroless.oci.image import Index

    image = local_image(index)
    with tempfile.TemporaryDirectory(prefix="publish-local-") as work:
        archive = Path(work) / "image.tar"
        with open(archive, "wb") as f:
            write_docker_archive_to(f, Index(b"", (image,)), tags, exact_tags=True)
        try:
            r = subprocess.run([args.docker, "load", "-i", str(archive)], capture_output=True, text=True, timeout=600)
        except OSError as e:
            raise DistrolessError(f"--local: cannot run {args.docker!r}: {e.strerror}") from None
    if r.returncode != 0:
        raise DistrolessError(f"--local: `{args.docker} load` failed: {r.stderr.strip()[:500]}")
    return image.digest


def cmd_publish(args: argparse.Namespace) -> int:
    from distroless.fsutil import atomic_write
    from distroless.registry.client import RegistryClient
    from distroless.registry.push import write as registry_write
    from distroless.registry.reference import parse_reference
    from distroless.sbom import spdx
    from distroless.sign import dsse
    from distroless.sign.keys import read_private_key
    from distroless.sign.remote import attest_image, sign_image

    refs = [parse_reference(t, default_tag="latest") for t in args.tags]
    if args.image_refs:
        check_output_parent(args.image_refs)
    key = read_private_key(args.sign_key, hostenv.key_password) if args.sign_key else None  # ask for the password before building
    formats = sbom_formats_of(args)
    if args.local:
        with built_images(args, name=str(refs[0]), sbom_formats=formats) as built:
            digest = load_local(args, built.index, [str(r) for r in refs])
            if args.sbom_path is not None and formats:
                write_sboms(args.sbom_path, built.sboms)
        for r in refs:
            print(f"{r} (local docker, image {digest})")
        return 0
    insecure = True if args.allow_insecure_registry else None
    first = refs[0]
    clients = {first.registry: RegistryClient(first.registry, insecure=insecure, docker_config=hostenv.docker_config())}
    # the SPDX index document is what the attestation carries, so it is built whenever signing
    wanted = tuple(dict.fromkeys(formats + (("spdx",) if key is not None and args.sbom else ())))
    with built_images(args, name=str(first), sbom_formats=wanted) as built:
        files: list[str] = []
        if args.sbom_path is not None and formats:
            docs = {n: d for n, d in built.sboms.items() if any(n.endswith(ext) for ext in _extensions(formats))}
            write_sboms(args.sbom_path, docs)
            files += [str(args.sbom_path / n) for n in docs]
        sbom = json.loads(built.sboms[spdx.sbom_filename(None)]) if key is not None and args.sbom else None
        digest = ""
        for ref in refs:
            if ref.registry not in clients:
                clients[ref.registry] = RegistryClient(ref.registry, insecure=insecure, docker_config=hostenv.docker_config())
            client = clients[ref.registry]
            same = ref.registry == first.registry and ref is not first
            digest = registry_write(ref, built.index, client=client, mount_from=[first.repository] if same else ()).digest
            if key is not None:
                target = ref.with_digest(digest)
                sign_image(client, target, key)
                if sbom is not None:
                    attest_image(client, target, key, dsse.predicate_type_uri("spdxjson"), sbom)
    pushed = [str(r.with_digest(digest)) for r in refs]
    if args.image_refs:
        atomic_write(args.image_refs, "".join(line + "\n" for line in pushed).encode())
        files.append(str(args.image_refs))
    if args.json:
        print_json({"digest": digest, "references": pushed, "signed": key is not None,
                    "attestations": ["https://spdx.dev/Document"] if key is not None and args.sbom else [],
                    "files": files})
        return 0
    for line in pushed:
        print(line)
    return 0


def _extensions(formats: tuple[str, ...]) -> tuple[str, ...]:
    return tuple({"spdx": ".spdx.json", "cyclonedx": ".cdx.json"}[f] for f in formats)
