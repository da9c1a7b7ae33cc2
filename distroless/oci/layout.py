"""OCI image layout directories (`oci-layout`, `index.json`, `blobs/sha256/*`), as ggcr writes them.

`write_layout` is what apko does for an existing output directory (ggcr `layout.Write`): the
image index itself becomes `index.json`, and every manifest, config and layer goes into
`blobs/`. `append_image` / `append_index` add to an existing layout the way ggcr's
`AppendImage` / `AppendIndex` do (the descriptor is appended to `index.json`).

Blobs are content-addressed, so each is written to a temporary name and renamed into place
(an existing blob of the right size is kept); `index.json` is replaced last, so a reader never
sees an index that names a missing blob.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distroless.fsutil import atomic_write
from distroless.oci.gojson import go_map, marshal_indent
from distroless.oci.image import (
    OCI_CONFIG,
    OCI_INDEX,
    AnyLayer,
    BlobLayer,
    Descriptor,
    Image,
    ImageError,
    Index,
    Layer,
    Platform,
    digest_hex,
    sha256_digest,
)
from distroless.oci.mediatypes import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, IMAGE_TYPES, INDEX_TYPES  # noqa: F401

OCI_LAYOUT_FILE = b'{\n    "imageLayoutVersion": "1.0.0"\n}'  # ggcr's exact bytes


def blob_path(root: str | os.PathLike[str], digest: str) -> Path:
    return Path(root) / "blobs" / "sha256" / digest_hex(digest)


def _present(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size == size
    except FileNotFoundError:
        return False


def write_blob(root: str | os.PathLike[str], data: bytes) -> str:
    """Store bytes under their digest; returns the digest."""
    digest = sha256_digest(data)
    path = blob_path(root, digest)
    if not _present(path, len(data)):
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data)
    return digest


def _copy_layer(root: Path, layer: AnyLayer) -> None:
    if isinstance(layer, BlobLayer):
        write_blob(root, layer.data)
        return
    path = blob_path(root, layer.digest)
    if _present(path, layer.size):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        try:
            os.unlink(tmp)
            # same filesystem: share the (immutable) blob. link(2) does not follow a symlink
            # (a sandboxed input is one, pointing into the build's output base): link its target,
            # so the layout always holds a regular file.
            os.link(os.path.realpath(layer.path), tmp)
        except OSError:
            shutil.copyfile(layer.path, tmp)
            os.chmod(tmp, 0o644)
        if os.path.getsize(tmp) != layer.size:
            raise ImageError(f"layer blob {layer.path} is not {layer.size} bytes")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_image_blobs(root: str | os.PathLike[str], image: Image) -> None:
    """Layers, then config, then manifest: a blob is only named once what it names exists."""
    root = Path(root)
    for layer in image.layers:
        _copy_layer(root, layer)
    write_blob(root, image.config)
    write_blob(root, image.manifest)


def _write_oci_layout(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    target = root / "oci-layout"
    try:
        if target.read_bytes() == OCI_LAYOUT_FILE:
            return
    except FileNotFoundError:
        pass
    atomic_write(target, OCI_LAYOUT_FILE)


def write_layout(root: str | os.PathLike[str], index: Index) -> None:
    """apko's output for a directory: all blobs, then `index.json` = the image index bytes."""
    root = Path(root)
    _write_oci_layout(root)
    for image in index.images:
        write_image_blobs(root, image)
    atomic_write(root / "index.json", index.manifest)


def write(root: str | os.PathLike[str], artifact: Image | Index) -> Descriptor:
    """The layout transport (ggcr `layout.Write`): an index becomes the layout (apko's output:
    `index.json` = the index bytes); an image is appended to the layout's `index.json`."""
    if isinstance(artifact, Index):
        write_layout(root, artifact)
        return artifact.descriptor()
    _write_oci_layout(Path(root))
    return append_image(root, artifact)


def _read_index_json(root: Path) -> dict[str, Any]:
    try:
        data = (root / "index.json").read_bytes()
    except FileNotFoundError:
        return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    try:
        return json.loads(data)
    except ValueError as e:
        raise ImageError(f"{root / 'index.json'}: not JSON: {e}") from e


def append_descriptor(root: str | os.PathLike[str], desc: Descriptor) -> None:
    """Add `desc` to `index.json` (ggcr AppendDescriptor: re-marshalled with 3-space indent)."""
    root = Path(root)
    _write_oci_layout(root)
    index = _read_index_json(root)
    out: dict[str, Any] = {
        "schemaVersion": index.get("schemaVersion", 2),
        "mediaType": index.get("mediaType", OCI_INDEX),
        "manifests": [Descriptor.from_json(m).to_json() for m in index.get("manifests") or []]
        + [desc.to_json()],
    }
    if index.get("annotations"):
        out["annotations"] = go_map(index["annotations"])
    atomic_write(root / "index.json", marshal_indent(out, 3, newline=False))


def append_image(
    root: str | os.PathLike[str], image: Image, annotations: Mapping[str, str] | None = None
) -> Descriptor:
    """ggcr AppendImage: write the image's blobs and list it (with its platform) in index.json."""
    write_image_blobs(root, image)
    d = image.descriptor()
    desc = Descriptor(d.media_type, d.size, d.digest, annotations=dict(annotations or {}),
                      platform=d.platform)
    append_descriptor(root, desc)
    return desc


def append_index(
    root: str | os.PathLike[str], index: Index, annotations: Mapping[str, str] | None = None
) -> Descriptor:
    """ggcr AppendIndex: the index and its images as blobs, the index listed in index.json."""
    for image in index.images:
        write_image_blobs(root, image)
    write_blob(root, index.manifest)
    desc = Descriptor(index.media_type, len(index.manifest), index.digest,
                      annotations=dict(annotations or {}))
    append_descriptor(root, desc)
    return desc


# --------------------------------------------------------------------------- reading


def read_blob(root: str | os.PathLike[str], desc: Descriptor) -> bytes:
    """A blob's bytes, checked against the descriptor's size and digest."""
    path = blob_path(root, desc.digest)
    try:
        data = path.read_bytes()
    except FileNotFoundError as e:
        raise ImageError(f"{root}: blob {desc.digest} is missing") from e
    if len(data) != desc.size:
        raise ImageError(f"{root}: blob {desc.digest} is {len(data)} bytes, descriptor says {desc.size}")
    if sha256_digest(data) != desc.digest:
        raise ImageError(f"{root}: blob {desc.digest} does not match its digest")
    return data


def verify_blob_file(path: str | os.PathLike[str], desc: Descriptor) -> None:
    """Stream a (large) blob through sha256 and compare with the descriptor."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    if size != desc.size or "sha256:" + h.hexdigest() != desc.digest:
        raise ImageError(f"{path}: blob does not match {desc.digest} ({desc.size} bytes)")


def load_image(root: str | os.PathLike[str], desc: Descriptor, *, verify_layers: bool = False) -> Image:
    """The image a manifest descriptor names; layer records point into the layout's blobs."""
    if desc.media_type not in IMAGE_TYPES:
        raise ImageError(f"{desc.digest} is a {desc.media_type}, not an image manifest")
    raw = read_blob(root, desc)
    manifest = json.loads(raw)
    config_desc = Descriptor.from_json(manifest["config"])
    config = read_blob(root, config_desc)
    cfg = json.loads(config)
    diff_ids = (cfg.get("rootfs") or {}).get("diff_ids") or []
    layer_descs = [Descriptor.from_json(l) for l in manifest.get("layers") or []]
    if len(diff_ids) != len(layer_descs):
        raise ImageError(f"{desc.digest}: {len(layer_descs)} layers but {len(diff_ids)} diff_ids")
    layers = []
    for ld, diff_id in zip(layer_descs, diff_ids):
        path = blob_path(root, ld.digest)
        if not path.exists():
            raise ImageError(f"{root}: layer blob {ld.digest} is missing")
        if verify_layers:
            verify_blob_file(path, ld)
        layers.append(Layer(ld.digest, ld.size, diff_id, path, ld.media_type, dict(ld.annotations)))
    platform = desc.platform or Platform(
        architecture=cfg.get("architecture", ""), os=cfg.get("os", ""),
        variant=cfg.get("variant", ""), os_version=cfg.get("os.version", ""),
        os_features=tuple(cfg.get("os.features") or ()),
    )
    return Image(config, raw, tuple(layers), platform, desc.media_type,
                 config_desc.media_type or OCI_CONFIG)


def _index_from(root: Path, raw: bytes, media_type: str, verify_layers: bool) -> Index:
    obj = json.loads(raw)
    images = []
    for m in obj.get("manifests") or []:
        d = Descriptor.from_json(m)
        if d.media_type in IMAGE_TYPES:
            images.append(load_image(root, d, verify_layers=verify_layers))
    return Index(raw, tuple(images), obj.get("mediaType") or media_type)


def load_index(root: str | os.PathLike[str], desc: Descriptor, *, verify_layers: bool = False) -> Index:
    if desc.media_type not in INDEX_TYPES:
        raise ImageError(f"{desc.digest} is a {desc.media_type}, not an image index")
    return _index_from(Path(root), read_blob(root, desc), desc.media_type, verify_layers)


@dataclass(frozen=True, slots=True)
class Layout:
    """What a layout's index.json lists."""

    root: Path
    index_json: bytes
    manifests: tuple[Descriptor, ...]

    def images(self, *, verify_layers: bool = False) -> list[Image]:
        return [load_image(self.root, d, verify_layers=verify_layers)
                for d in self.manifests if d.media_type in IMAGE_TYPES]

    def indexes(self, *, verify_layers: bool = False) -> list[Index]:
        return [load_index(self.root, d, verify_layers=verify_layers)
                for d in self.manifests if d.media_type in INDEX_TYPES]

    def as_index(self, *, verify_layers: bool = False) -> Index:
        """index.json read as an image index (apko's layouts: index.json *is* the index)."""
        return _index_from(self.root, self.index_json, OCI_INDEX, verify_layers)


def read_layout(root: str | os.PathLike[str]) -> Layout:
    root = Path(root)
    try:
        marker = json.loads((root / "oci-layout").read_bytes())
    except FileNotFoundError as e:
        raise ImageError(f"{root}: not an OCI layout (no oci-layout file)") from e
    except ValueError as e:
        raise ImageError(f"{root}/oci-layout: not JSON: {e}") from e
    if marker.get("imageLayoutVersion") != "1.0.0":
        raise ImageError(f"{root}: unsupported imageLayoutVersion {marker.get('imageLayoutVersion')!r}")
    try:
        raw = (root / "index.json").read_bytes()
    except FileNotFoundError as e:
        raise ImageError(f"{root}: no index.json") from e
    obj = json.loads(raw)
    return Layout(root, raw, tuple(Descriptor.from_json(m) for m in obj.get("manifests") or []))

