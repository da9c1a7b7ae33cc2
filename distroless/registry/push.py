"""Push an OCI layout (its index or single image, plus cosign attachments) to a registry.

Order matters so that no tag ever names something incomplete: every blob first (HEAD to skip,
mount from a same-registry repository when offered), then child manifests by digest, then the
index by digest, then the `.sig`/`.att` attachment tags (merged with what the registry already
holds, so other signers' signatures survive), and the requested tag last.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from distroless.errors import RegistryError, RegistryNotFoundError
from distroless.oci.image import OCI_MANIFEST, Descriptor, sha256_digest
from distroless.oci.layout import blob_path, read_blob, verify_blob_file
from distroless.registry.client import INDEX_TYPES, BlobSource, RegistryClient
from distroless.registry.reference import Reference
from distroless.sign import attach
from distroless.sign.layout import find_subject

Log = Callable[[str], None]


@dataclass(slots=True)
class PushResult:
    reference: Reference  # with the pushed digest
    digest: str
    blobs: dict[str, str] = field(default_factory=dict)  # digest -> exists/mounted/uploaded
    manifests: list[str] = field(default_factory=list)
    attachment_tags: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Plan:
    blobs: tuple[Descriptor, ...]  # configs and layers, deduplicated
    manifests: tuple[tuple[Descriptor, bytes], ...]  # children before parents


def _walk(root: Path, desc: Descriptor, raw: bytes, blobs: dict[str, Descriptor],
          manifests: list[tuple[Descriptor, bytes]], depth: int = 0) -> None:
    if depth > 8:
        raise RegistryError(f"{root}: index nesting deeper than 8 at {desc.digest}")
    obj = json.loads(raw)
    if desc.media_type in INDEX_TYPES or "manifests" in obj:
        for m in obj.get("manifests") or []:
            child = Descriptor.from_json(m)
            _walk(root, child, read_blob(root, child), blobs, manifests, depth + 1)
    else:
        for d in [obj.get("config"), *(obj.get("layers") or [])]:
            if d:
                bd = Descriptor.from_json(d)
                blobs.setdefault(bd.digest, bd)
    if all(m[0].digest != desc.digest for m in manifests):
        manifests.append((desc, raw))


def plan(root: Path, subject: Descriptor, raw: bytes) -> _Plan:
    blobs: dict[str, Descriptor] = {}
    manifests: list[tuple[Descriptor, bytes]] = []
    _walk(root, subject, raw, blobs, manifests)
    return _Plan(tuple(blobs.values()), tuple(manifests))


def _media_type(desc: Descriptor, raw: bytes) -> str:
    return json.loads(raw).get("mediaType") or desc.media_type


def push_blobs(client: RegistryClient, repo: str, root: Path, descs: Sequence[Descriptor],
               mount_from: Sequence[str], result: PushResult, log: Log) -> None:
    for d in descs:
        path = blob_path(root, d.digest)
        if not path.exists():
            raise RegistryError(f"{root}: blob {d.digest} is missing from the layout")
        verify_blob_file(path, d)  # never publish a corrupt layer under its name
        how = client.push_blob(repo, d.digest, BlobSource.file(path), mount_from)
        result.blobs[d.digest] = how
        log(f"blob {d.digest} {how}")


def push_attachments(
    client: RegistryClient, repo: str, subject_digest: str, suffix: str,
    new: Sequence[tuple[Descriptor, BlobSource]], log: Log = lambda _m: None,
) -> str:
    """Append attachment layers to `sha256-<hex>.<suffix>`: payload blobs and config first, the
    tag last; layers already present (same type, digest, annotations) are not duplicated.
    Returns the attachment manifest digest."""
    tag = attach.attachment_tag(subject_digest, suffix)
    existing: list[Descriptor] = []
    try:
        m = client.get_manifest(repo, tag, accept=(OCI_MANIFEST,))
        existing = attach.parse_attachment_manifest(m.raw, f"{client.registry}/{repo}:{tag}")
    except RegistryNotFoundError:
        pass
    layers, changed = attach.merge_layers(existing, [d for d, _ in new])
    am = attach.build_attachment_manifest(layers)
    if not changed and existing:
        log(f"{tag}: already holds these attachments")
        return sha256_of(client, repo, tag)
    for d, src in new:
        client.push_blob(repo, d.digest, src)
    client.push_blob(repo, sha256_digest(am.config), BlobSource.of(am.config))
    digest = client.put_manifest(repo, tag, am.manifest, OCI_MANIFEST)
    log(f"{tag} -> {digest} ({len(layers)} layer(s))")
    return digest


def sha256_of(client: RegistryClient, repo: str, tag: str) -> str:
    d = client.head_manifest(repo, tag, accept=(OCI_MANIFEST,))
    if d is None:
        raise RegistryNotFoundError(f"{client.registry}/{repo}:{tag} vanished")
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
    subject = ls.subject
    if ref.digest and ref.digest != subject.digest:
        raise RegistryError(f"{ls.root} holds {subject.digest}, but {ref} names {ref.digest}")
    client = client or RegistryClient(ref.registry, insecure=insecure)
    repo = ref.repository
    client.ping()
    p = plan(ls.root, subject, raw)
    result = PushResult(ref.with_digest(subject.digest), subject.digest)
    push_blobs(client, repo, ls.root, p.blobs, mount_from, result, log)
    for desc, body in p.manifests:
        client.put_manifest(repo, desc.digest, body, _media_type(desc, body))
        result.manifests.append(desc.digest)
        log(f"manifest {desc.digest}")
    for suffix, att in ((attach.SIG_SUFFIX, ls.sigs), (attach.ATT_SUFFIX, ls.atts)):
        layers = _layout_attachments(ls.root, att)
        if layers:
            push_attachments(client, repo, subject.digest, suffix, layers, log)
            result.attachment_tags.append(attach.attachment_tag(subject.digest, suffix))
    if ref.tag:
        client.put_manifest(repo, ref.tag, raw, _media_type(subject, raw))
        log(f"tag {ref.tag} -> {subject.digest}")
    return result


def push_image_bytes(
    client: RegistryClient, repo: str, manifest: bytes, media_type: str,
    blobs: Sequence[tuple[Descriptor, BlobSource]], tag: str = "",
) -> str:
    """Push one manifest whose blobs are given directly: blobs, manifest by digest, then tag."""
    for d, src in blobs:
        client.push_blob(repo, d.digest, src)
    digest = client.put_manifest(repo, sha256_digest(manifest), manifest, media_type)
    if tag:
        client.put_manifest(repo, tag, manifest, media_type)
    return digest
