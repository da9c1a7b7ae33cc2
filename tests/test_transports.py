"""The ggcr-like `write(dest, image_or_index)` transports: OCI layout, docker-archive and the
registry (the real peer registry), over the same in-memory images, plus attachment images
that `sign` hands to the registry transport."""

from __future__ import annotations

import io
import json
import tarfile
import urllib.request
import uuid

import pytest

from distroless.errors import RegistryError
from distroless.oci import dockerarchive
from distroless.oci import layout as oci_layout
from distroless.oci.image import BlobLayer, ConfigFile, build_image, build_index, write_layer
from distroless.oci.layout import read_layout
from distroless.oci.mediatypes import OCI_INDEX, OCI_MANIFEST
from distroless.registry import push as registry
from distroless.registry.client import BlobSource, RegistryClient
from distroless.registry.reference import parse_reference
from distroless.sign import attach
from distroless.sign.push import push_attachments


def tiny_index(tmp_path, text: bytes):
    images = []
    for arch in ("amd64", "arm64"):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
            ti = tarfile.TarInfo(f"{arch}.txt")
            ti.size = len(text)
            tf.addfile(ti, io.BytesIO(text))
        layer = write_layer(buf.getvalue(), tmp_path / "staging")
        images.append(build_image(ConfigFile(architecture=arch, diff_ids=(layer.diff_id,)), [layer]))
    return build_index(images)


def get(registry_addr: str, path: str, accept: str) -> bytes:
    req = urllib.request.Request(f"http://{registry_addr}{path}", headers={"Accept": accept})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.read()


def test_one_index_three_transports_same_bytes(peers, tmp_path):
    index = tiny_index(tmp_path, uuid.uuid4().hex.encode())
    # layout
    desc = oci_layout.write(tmp_path / "layout", index)
    assert desc.digest == index.digest
    assert (tmp_path / "layout" / "index.json").read_bytes() == index.manifest
    # docker-archive
    assert dockerarchive.write(tmp_path / "img.tar", index, ["example.test/app:v1"]) == index.digest
    with tarfile.open(tmp_path / "img.tar") as tf:
        assert tf.extractfile("index.json").read() == index.manifest
    # registry: straight from the staging blobs, no layout
    ref = parse_reference(f"{peers.registry}/dl-transport/{uuid.uuid4().hex[:12]}:v1")
    result = registry.write(ref, index)
    assert result.digest == index.digest
    assert get(ref.registry, f"/v2/{ref.repository}/manifests/v1", OCI_INDEX) == index.manifest
    for image in index.images:
        assert get(ref.registry, f"/v2/{ref.repository}/manifests/{image.digest}", OCI_MANIFEST) == image.manifest
        for layer in image.layers:
            assert get(ref.registry, f"/v2/{ref.repository}/blobs/{layer.digest}", "*/*") == layer.path.read_bytes()
    # again: every blob is already there
    again = registry.write(ref, index)
    assert set(again.blobs.values()) == {"exists"}


def test_single_image_transports(peers, tmp_path):
    image = tiny_index(tmp_path, b"x").images[0]
    oci_layout.write(tmp_path / "lay", image)
    (entry,) = read_layout(tmp_path / "lay").manifests
    assert entry.digest == image.digest
    ref = parse_reference(f"{peers.registry}/dl-transport/{uuid.uuid4().hex[:12]}:one")
    assert registry.write(ref, image).digest == image.digest
    assert get(ref.registry, f"/v2/{ref.repository}/manifests/one", OCI_MANIFEST) == image.manifest


def test_corrupt_layer_file_is_never_published(peers, tmp_path):
    index = tiny_index(tmp_path, uuid.uuid4().hex.encode())
    layer = index.images[0].layers[0]
    layer.path.write_bytes(b"not the layer")
    ref = parse_reference(f"{peers.registry}/dl-transport/{uuid.uuid4().hex[:12]}:bad")
    with pytest.raises(Exception, match="sha256|size|digest"):
        registry.write(ref, index)
    with pytest.raises(Exception):
        get(ref.registry, f"/v2/{ref.repository}/manifests/bad", OCI_INDEX)


def test_a_digest_reference_must_match(peers, tmp_path):
    index = tiny_index(tmp_path, b"y")
    ref = parse_reference(f"{peers.registry}/dl-transport/x@sha256:{'0' * 64}")
    with pytest.raises(RegistryError, match="names sha256:0000"):
        registry.write(ref, index)


def test_attachment_images_keep_other_signers_layers(peers, tmp_path):
    """`sign` builds an attachment image (ours in memory, others' by descriptor) and the registry
    transport publishes it; the second signer's push keeps the first one's layer."""
    index = tiny_index(tmp_path, uuid.uuid4().hex.encode())
    ref = parse_reference(f"{peers.registry}/dl-transport/{uuid.uuid4().hex[:12]}:v1")
    registry.write(ref, index)
    client = RegistryClient(ref.registry)
    first = attach.Attachment(b'{"first":1}', "application/json", {"who": "a"})
    second = attach.Attachment(b'{"second":2}', "application/json", {"who": "b"})
    push_attachments(client, ref.repository, index.digest, "sig", [(first.descriptor(), BlobSource.of(first.payload))])
    digest = push_attachments(client, ref.repository, index.digest, "sig",
                              [(second.descriptor(), BlobSource.of(second.payload))])
    tag = attach.attachment_tag(index.digest, "sig")
    raw = get(ref.registry, f"/v2/{ref.repository}/manifests/{tag}", OCI_MANIFEST)
    assert [d["annotations"]["who"] for d in json.loads(raw)["layers"]] == ["a", "b"]
    expected = attach.attachment_image([first.layer(), second.layer()])
    assert raw == expected.manifest and digest == expected.digest


def test_blob_layer_is_a_layer():
    layer = BlobLayer(b"abc", "application/json", {"k": "v"})
    assert layer.diff_id == layer.digest and layer.size == 3 and layer.open().read() == b"abc"
    assert layer.descriptor().annotations == {"k": "v"}
