"""`save`, `load` and `copy` of an image together with its signatures and attestations.

`save` writes what `cosign save --dir` writes: an OCI layout holding the image (or index, with
every child manifest, config and layer) and its `.sig` / `.att` attachment manifests, listed in
`index.json` with the `kind` annotations `cosign verify --local-image` and `cosign load` look for.
`load` pushes such a layout (ours or cosign's) to a new reference, attachments included; `copy`
is save-then-load through a temporary layout (or just the attachments with `--only`).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from distroless.errors import ConfigError, RegistryError, RegistryNotFoundError
from distroless.oci.image import Descriptor
from distroless.oci.layout import blob_path, write_blob
from distroless.oci.mediatypes import INDEX_TYPES, OCI_MANIFEST
from distroless.registry.client import BlobSource, RegistryClient
from distroless.registry.push import Log, PushResult
from distroless.sign.push import push_attachments, push_layout
from distroless.registry.reference import Reference
from distroless.sign import attach
from distroless.sign.inspect import SBOM_SUFFIX
from distroless.sign.layout import KIND, KIND_ATTS, KIND_IMAGE, KIND_INDEX, KIND_SIGS, write_index

MAX_DEPTH = 8
ATTACHMENT_KINDS = {"sig": attach.SIG_SUFFIX, "att": attach.ATT_SUFFIX, "sbom": SBOM_SUFFIX}


def _blob(client: RegistryClient, repo: str, root: Path, d: Descriptor) -> None:
    path = blob_path(root, d.digest)
    if path.is_file() and path.stat().st_size == d.size:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    client.download_blob(repo, d, path)


def _save_manifest(client: RegistryClient, repo: str, root: Path, ref: str, depth: int = 0) -> Descriptor:
    """The manifest `ref` names and everything below it, into `root`'s blobs."""
    if depth > MAX_DEPTH:
        raise RegistryError(f"{client.registry}/{repo}: index nesting deeper than {MAX_DEPTH} at {ref}")
    m = client.get_manifest(repo, ref)
    obj = json.loads(m.raw)
    if m.media_type in INDEX_TYPES or "manifests" in obj:
        for child in obj.get("manifests") or []:
            _save_manifest(client, repo, root, Descriptor.from_json(child).digest, depth + 1)
    else:
        for d in [obj.get("config"), *(obj.get("layers") or [])]:
            if d:
                _blob(client, repo, root, Descriptor.from_json(d))
    write_blob(root, m.raw)
    return m.descriptor()


def save(client: RegistryClient, ref: Reference, root: str | os.PathLike[str], log: Log = lambda _m: None) -> Descriptor:
    """Write the image `ref` names and its attachments as a cosign-shaped layout at `root`."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    subject = _save_manifest(client, ref.repository, root, ref.ref)
    kind = KIND_INDEX if subject.media_type in INDEX_TYPES else KIND_IMAGE
    entries = [Descriptor(subject.media_type, subject.size, subject.digest, annotations={KIND: kind})]
    for suffix, akind in ((attach.SIG_SUFFIX, KIND_SIGS), (attach.ATT_SUFFIX, KIND_ATTS)):
        tag = attach.attachment_tag(subject.digest, suffix)
        try:
            d = _save_manifest(client, ref.repository, root, tag)
        except RegistryNotFoundError:
            continue
        entries.append(Descriptor(OCI_MANIFEST, d.size, d.digest, annotations={KIND: akind}))
        log(f"{tag}: saved")
    write_index(root, entries)
    return subject


def load(root: str | os.PathLike[str], ref: Reference, *, client: RegistryClient | None = None,
         insecure: bool | None = None, log: Log = lambda _m: None) -> PushResult:
    if not (Path(root) / "index.json").is_file():
        raise ConfigError(f"{root}: not an OCI layout (no index.json)")
    return push_layout(root, ref, client=client, insecure=insecure, log=log)


def copy_attachments(src: RegistryClient, src_ref: Reference, dst: RegistryClient, dst_ref: Reference,
                     digest: str, kinds: Sequence[str], log: Log = lambda _m: None) -> list[str]:
    """Append the source's attachments of these kinds (`sig`, `att`, `sbom`) to the destination's."""
    copied = []
    for k in kinds:
        if k not in ATTACHMENT_KINDS:
            raise ConfigError(f"--only {k!r}: expected sig, att or sbom")
        suffix = ATTACHMENT_KINDS[k]
        tag = attach.attachment_tag(digest, suffix)
        try:
            m = src.get_manifest(src_ref.repository, tag, accept=(OCI_MANIFEST,))
        except RegistryNotFoundError:
            continue
        layers = attach.parse_attachment_manifest(m.raw, f"{src_ref.name}:{tag}")
        new = [(d, BlobSource.of(src.get_blob(src_ref.repository, d.digest))) for d in layers]
        push_attachments(dst, dst_ref.repository, digest, suffix, new, log)
        copied.append(f"{dst_ref.name}:{tag}")
    return copied


def copy(src: RegistryClient, src_ref: Reference, dst: RegistryClient, dst_ref: Reference, *,
         only: Sequence[str] = (), log: Log = lambda _m: None) -> str:
    """The image and its signatures/attestations (or only the given attachment kinds).
    Returns the digest, which is the same on both sides."""
    if only:
        desc = src.head_manifest(src_ref.repository, src_ref.ref)
        if desc is None:
            raise RegistryNotFoundError(f"{src_ref}: no such manifest in the registry")
        copy_attachments(src, src_ref, dst, dst_ref, desc.digest, only, log)
        return desc.digest
    with tempfile.TemporaryDirectory(prefix="distroless-copy-") as work:
        subject = save(src, src_ref, work, log)
        load(work, dst_ref, client=dst, log=log)
    copy_attachments(src, src_ref, dst, dst_ref, subject.digest, ["sbom"], log)  # not part of a saved layout
    return subject.digest
