"""Publish cosign attachments and signed layouts: the registry client does the transport, this
module decides what goes where.

A signed layout is pushed in the order that keeps every tag complete: blobs and manifests by
digest (`registry.push`), then the `.sig`/`.att` attachment tags (merged with what the registry
already holds, so other signers' signatures survive), and the requested tag last.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from distroless.errors import RegistryNotFoundError
from distroless.oci.image import Descriptor
from distroless.oci.layout import blob_path, read_blob
from distroless.oci.mediatypes import OCI_MANIFEST
from distroless.registry.client import BlobSource, RegistryClient
from distroless.registry.push import DescribedLayer, Log, PushResult, push_layout_content, tag, write
from distroless.registry.reference import Reference
from distroless.sign import attach
from distroless.sign.layout import find_subject


def push_attachments(
    client: RegistryClient, repo: str, subject_digest: str, suffix: str,
    new: Sequence[tuple[Descriptor, BlobSource]], log: Log = lambda _m: None,
) -> str:
    """Append attachment layers to `sha256-<hex>.<suffix>`: payload blobs and config first, the
    tag last; layers already present (same type, digest, annotations) are not duplicated.
    Returns the attachment manifest digest."""
    att_tag = attach.attachment_tag(subject_digest, suffix)
    existing: list[Descriptor] = []
    try:
        m = client.get_manifest(repo, att_tag, accept=(OCI_MANIFEST,))
        existing = attach.parse_attachment_manifest(m.raw, f"{client.registry}/{repo}:{att_tag}")
    except RegistryNotFoundError:
        pass
    layers, changed = attach.merge_layers(existing, [d for d, _ in new])
    if not changed and existing:
        log(f"{att_tag}: already holds these attachments")
        return _digest_of(client, repo, att_tag)
    sources = {d.digest: src for d, src in new}
    image = attach.attachment_image([DescribedLayer(d, sources.get(d.digest)) for d in layers])
    write(Reference(client.registry, repo, att_tag), image, client=client)
    log(f"{att_tag} -> {image.digest} ({len(layers)} layer(s))")
    return image.digest


def _digest_of(client: RegistryClient, repo: str, ref: str) -> str:
    d = client.head_manifest(repo, ref, accept=(OCI_MANIFEST,))
    if d is None:
        raise RegistryNotFoundError(f"{client.registry}/{repo}:{ref} vanished")
    return d.digest


def _layout_attachments(root: Path, desc: Descriptor | None) -> list[tuple[Descriptor, BlobSource]]:
    if desc is None:
        return []
    layers = attach.parse_attachment_manifest(read_blob(root, desc), f"{root} {desc.digest}")
    out = []
    for d in layers:
        read_blob(root, d)  # present and matching
        out.append((d, BlobSource.file(blob_path(root, d.digest))))
    return out


def push_layout(
    root: str | os.PathLike[str],
    ref: Reference,
    *,
    client: RegistryClient | None = None,
    insecure: bool | None = None,
    mount_from: Sequence[str] = (),
    log: Log = lambda _m: None,
) -> PushResult:
    """Push the layout's subject (see `sign.layout.find_subject`) and its attachments to `ref`.
    A digest in `ref` must equal the subject's digest; a tag is set last."""
    ls = find_subject(root)
    raw = ls.subject_bytes()
    client = client or RegistryClient(ref.registry, insecure=insecure)
    result = push_layout_content(ls.root, ls.subject, raw, ref, client, mount_from=mount_from, log=log)
    for suffix, att in ((attach.SIG_SUFFIX, ls.sigs), (attach.ATT_SUFFIX, ls.atts)):
        layers = _layout_attachments(ls.root, att)
        if layers:
            push_attachments(client, ref.repository, ls.subject.digest, suffix, layers, log)
            result.attachment_tags.append(attach.attachment_tag(ls.subject.digest, suffix))
    tag(client, ref, ls.subject, raw, log)
    return result
