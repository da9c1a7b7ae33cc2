"""Push an image or index from an OCI layout's blobs to a registry.

Order matters so that no tag ever names something incomplete: every blob first (HEAD to skip,
mount from a same-registry repository when offered), then child manifests by digest, then the
index by digest, and the requested tag last. This module knows nothing of signatures: `sign.push`
adds cosign's attachment tags between the manifests and the tag.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from distroless.errors import RegistryError, RegistryNotFoundError
from distroless.oci.image import AnyLayer, BlobLayer, Descriptor, Image, Index, sha256_digest
from distroless.oci.layout import blob_path, read_blob, verify_blob_file
from distroless.registry.client import INDEX_TYPES, BlobSource, RegistryClient
from distroless.registry.reference import Reference

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


def push_layout_content(
    root: str | os.PathLike[str], subject: Descriptor, raw: bytes, ref: Reference, client: RegistryClient, *,
    mount_from: Sequence[str] = (), log: Log = lambda _m: None,
) -> PushResult:
    """Every blob and manifest under `subject` (whose bytes are `raw`) from the layout at `root`,
    by digest; no tag yet (`tag` sets it once whatever must precede it is in place)."""
    root = Path(root)
    if ref.digest and ref.digest != subject.digest:
        raise RegistryError(f"{root} holds {subject.digest}, but {ref} names {ref.digest}")
    repo = ref.repository
    client.ping()
    p = plan(root, subject, raw)
    result = PushResult(ref.with_digest(subject.digest), subject.digest)
    push_blobs(client, repo, root, p.blobs, mount_from, result, log)
    for desc, body in p.manifests:
        client.put_manifest(repo, desc.digest, body, _media_type(desc, body))
        result.manifests.append(desc.digest)
        log(f"manifest {desc.digest}")
    return result


def tag(client: RegistryClient, ref: Reference, subject: Descriptor, raw: bytes, log: Log = lambda _m: None) -> None:
    """Point `ref`'s tag (if it has one) at the manifest `raw`, already pushed by digest."""
    if ref.tag:
        client.put_manifest(ref.repository, ref.tag, raw, _media_type(subject, raw))
        log(f"tag {ref.tag} -> {subject.digest}")


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


# --------------------------------------------------------------------------- in-memory images


@dataclass(frozen=True, slots=True)
class DescribedLayer:
    """A layer given by its exact descriptor, its bytes from `source`; with no source it must
    already be in the target repository (another signer's signature in an attachment image)."""

    desc: Descriptor
    source: BlobSource | None = None

    @property
    def digest(self) -> str:
        return self.desc.digest

    def descriptor(self) -> Descriptor:
        return self.desc


def _source(layer: AnyLayer | DescribedLayer) -> BlobSource:
    if isinstance(layer, DescribedLayer):
        assert layer.source is not None
        return layer.source
    if isinstance(layer, BlobLayer):
        return BlobSource.of(layer.data)
    verify_blob_file(layer.path, layer.descriptor())  # never publish a corrupt layer under its name
    return BlobSource.file(layer.path)


def _push_image(client: RegistryClient, repo: str, image: Image, mount_from: Sequence[str],
                result: PushResult, log: Log) -> None:
    for layer in image.layers:
        if layer.digest in result.blobs:
            continue
        if isinstance(layer, DescribedLayer) and layer.source is None:
            if not client.blob_exists(repo, layer.digest):
                raise RegistryNotFoundError(f"{client.registry}/{repo}: blob {layer.digest} vanished")
            result.blobs[layer.digest] = "exists"
            continue
        how = client.push_blob(repo, layer.digest, _source(layer), mount_from)
        result.blobs[layer.digest] = how
        log(f"blob {layer.digest} {how}")
    config_digest = sha256_digest(image.config)
    result.blobs[config_digest] = client.push_blob(repo, config_digest, BlobSource.of(image.config), mount_from)
    client.put_manifest(repo, image.digest, image.manifest, image.media_type)
    result.manifests.append(image.digest)
    log(f"manifest {image.digest}")


def write(ref: Reference, artifact: Image | Index, *, client: RegistryClient | None = None,
          insecure: bool | None = None, mount_from: Sequence[str] = (),
          log: Log = lambda _m: None) -> PushResult:
    """The registry transport (ggcr `remote.Write`) for an image or index held in memory: every
    blob (HEAD first, mounted when offered), each manifest by digest, and the tag last, so the
    tag never names anything incomplete. No layout on disk is needed."""
    if ref.digest and ref.digest != artifact.digest:
        raise RegistryError(f"the image is {artifact.digest}, but {ref} names {ref.digest}")
    client = client or RegistryClient(ref.registry, insecure=insecure)
    repo = ref.repository
    client.ping()
    result = PushResult(ref.with_digest(artifact.digest), artifact.digest)
    images = artifact.images if isinstance(artifact, Index) else (artifact,)
    for image in images:
        _push_image(client, repo, image, mount_from, result, log)
    if isinstance(artifact, Index):
        client.put_manifest(repo, artifact.digest, artifact.manifest, artifact.media_type)
        result.manifests.append(artifact.digest)
        log(f"manifest {artifact.digest}")
    if ref.tag:
        client.put_manifest(repo, ref.tag, artifact.manifest, artifact.media_type)
        log(f"tag {ref.tag} -> {artifact.digest}")
    return result
