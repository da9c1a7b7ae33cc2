"""docker-archive tarballs (`docker load`), laid out as apko writes them.

apko calls ggcr `tarball.MultiWrite` with one tag `<repo>:<tag>-<arch>` (`/` in the arch as `_`)
per image and per requested tag, then appends every per-arch manifest (named `sha256:<hex>`) and
the index (`index.json`). The MultiWrite part is:
  * per image: the config as `sha256:<hex>`, then each layer not yet written as `<hex>.tar.gz`;
  * `manifest.json`: `[{"Config","RepoTags","Layers"}]`, sorted by the joined RepoTags;
every entry a USTAR header with mode 0644, uid/gid 0, mtime 0, then two zero blocks at the end.

Deliberate differences from apko, both about stability rather than content:
  * ggcr walks a Go map, so apko's image (and RepoTags) order varies from run to run; we write
    images in manifest.json order and RepoTags sorted;
  * apko reopens the tar and seeks back over its end marker to append; when manifest.json's
    length is a multiple of 512 its seek arithmetic leaves one stray zero block, which Go's tar
    reader then rejects. We write the appended entries straight after, in one pass.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from distroless.fsutil import atomic_output
from distroless.oci.gojson import marshal
from distroless.oci.image import Image, ImageError, Index, Layer, build_index, digest_hex
from distroless import tarball

DEFAULT_REGISTRY = "index.docker.io"
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_REPO_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")


def tag_name(ref: str) -> str:
    """ggcr `name.NewTag(ref).Name()`: registry (default index.docker.io), repository (with
    Docker Hub's implicit `library/`), tag (default `latest`)."""
    if "@" in ref:
        raise ImageError(f"{ref!r} is a digest reference, not a tag")
    last = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > last:
        base, tag = ref[:colon], ref[colon + 1:]
    else:
        base, tag = ref, "latest"
    if not _TAG_RE.match(tag):
        raise ImageError(f"invalid tag {tag!r} in {ref!r}")
    first, slash, rest = base.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, repo = first, rest
    else:
        registry, repo = DEFAULT_REGISTRY, base
    if registry == "docker.io":
        registry = DEFAULT_REGISTRY
    if not repo or not _REPO_RE.match(repo):
        raise ImageError(f"invalid repository {repo!r} in {ref!r}")
    if registry == DEFAULT_REGISTRY and "/" not in repo:
        repo = "library/" + repo
    return f"{registry}/{repo}:{tag}"


def repo_tags(tags: Sequence[str], arch: str) -> list[str]:
    """apko's per-arch tags: `<full tag name>-<arch with / as _>`, validated again as tags."""
    suffix = arch.replace("/", "_")
    out = {tag_name(f"{tag_name(t)}-{suffix}") for t in tags}
    return sorted(out)


def tarball_manifest(index: Index, tags: Sequence[str], *, exact_tags: bool = False) -> list[dict[str, object]]:
    """The `manifest.json` entries (in ggcr's order: by joined RepoTags). `exact_tags` names a
    single image by the tags as given (apko's `publish --local`), without the arch suffix."""
    if exact_tags and len(index.images) != 1:
        raise ImageError("exact tags name exactly one image")
    entries = []
    for image in index.images:
        entries.append({
            "Config": image.config_digest,
            "RepoTags": sorted({tag_name(t) for t in tags}) if exact_tags else repo_tags(tags, image.platform.arch),
            "Layers": [f"{digest_hex(l.digest)}.tar.gz" for l in image.layers],
        })
    entries.sort(key=lambda e: ",".join(e["RepoTags"]).encode())  # type: ignore[arg-type]
    return entries


def _entry(out: BinaryIO, name: str, size: int) -> None:
    out.write(tarball.encode_header(tarball.Header(name=name, mode=0o644, size=size)))


def _bytes_entry(out: BinaryIO, name: str, data: bytes) -> None:
    _entry(out, name, len(data))
    out.write(data)
    out.write(tarball.padding(len(data)))


def write_docker_archive_to(out: BinaryIO, index: Index, tags: Sequence[str], *, exact_tags: bool = False) -> None:
    """Stream the archive to an open file."""
    if not tags:
        raise ImageError("a docker-archive needs at least one tag (docker load names images by it)")
    manifest = tarball_manifest(index, tags, exact_tags=exact_tags)
    by_config = {im.config_digest: im for im in index.images}
    seen: set[str] = set()
    for entry in manifest:
        image: Image = by_config[entry["Config"]]  # type: ignore[index]
        _bytes_entry(out, image.config_digest, image.config)
        for layer in image.layers:
            if layer.digest in seen:
                continue
            seen.add(layer.digest)
            size = os.path.getsize(layer.path) if isinstance(layer, Layer) else layer.size
            if size != layer.size:
                raise ImageError(f"layer blob {layer.path} is {size} bytes, expected {layer.size}")
            _entry(out, f"{digest_hex(layer.digest)}.tar.gz", size)
            with layer.open() as f:
                shutil.copyfileobj(f, out, 1 << 20)
            out.write(tarball.padding(size))
    _bytes_entry(out, "manifest.json", marshal(manifest))
    # apko's additions: each per-arch manifest, in index order, then the index.
    for image in index.images:
        _bytes_entry(out, image.digest, image.manifest)
    _bytes_entry(out, "index.json", index.manifest)
    out.write(tarball.END_OF_ARCHIVE)


def write_docker_archive(path: str | os.PathLike[str], index: Index, tags: Sequence[str]) -> str:
    """Write the archive atomically to `path`; returns the index digest (what apko prints)."""
    with atomic_output(Path(path)) as out:
        write_docker_archive_to(out, index, tags)
    return index.digest




def write(path: str | os.PathLike[str], artifact: Image | Index, tags: Sequence[str]) -> str:
    """The docker-archive transport (ggcr `tarball.Write`): an image is written as the one-image
    index apko would make of it. Returns the index digest."""
    index = artifact if isinstance(artifact, Index) else build_index([artifact])
    return write_docker_archive(path, index, tags)
