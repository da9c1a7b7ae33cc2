"""CycloneDX 1.5 JSON with the same content as the SPDX documents (apko dropped CycloneDX;
scanners that only read CycloneDX still want it).

The image is `metadata.component` (type container); layers are `file` components, the OS an
`operating-system` component, each installed apk a `library` with its purl, license, SHA-1
(control) and SHA-256 (data) hashes. `serialNumber` is a UUID derived from the digest (uuid5),
`metadata.timestamp` the build date: the same inputs give the same bytes.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from distroless import __version__
from distroless.apk.model import Package
from distroless.oci.gojson import marshal_indent, rfc3339
from distroless.oci.image import OCI_MANIFEST, Platform, digest_hex
from distroless.sbom.common import (
    NOASSERTION,
    ImageInfo,
    IndexInfo,
    OSInfo,
    SBOMError,
    apk_purl,
    control_sha1_hex,
    image_purl_name,
    license_expression,
    oci_image_qualifiers,
    purl,
    qualifiers,
)

SPEC_VERSION = "1.5"
SCHEMA = "http://cyclonedx.org/schema/bom-1.5.schema.json"
_UUID_NAMESPACE = uuid.UUID("6f0c1d5e-2c61-5b8a-9c55-64697374726f")  # fixed: "distro" in the tail


def _serial(digest: str) -> str:
    return "urn:uuid:" + str(uuid.uuid5(_UUID_NAMESPACE, digest))


def _tool() -> dict[str, Any]:
    return {"components": [{"type": "application", "name": "distroless", "version": __version__}]}


def _licenses(text: str) -> list[dict[str, Any]]:
    lic = license_expression(text)
    if lic.expression == NOASSERTION:
        return []
    if lic.extracted:
        return [{"license": {"name": text}}]
    return [{"expression": lic.expression}]


def _component(pkg: Package, os_info: OSInfo, arch: str) -> dict[str, Any]:
    ref = apk_purl(pkg, os_info.id, arch)
    c: dict[str, Any] = {"type": "library", "bom-ref": ref}
    if os_info.name:
        c["supplier"] = {"name": os_info.name}
    if pkg.maintainer:
        c["author"] = pkg.maintainer
    c["name"] = pkg.name
    c["version"] = pkg.version
    if pkg.description:
        c["description"] = pkg.description
    hashes = []
    sha1 = control_sha1_hex(pkg.checksum)
    if sha1:
        hashes.append({"alg": "SHA-1", "content": sha1})
    if pkg.datahash:
        hashes.append({"alg": "SHA-256", "content": pkg.datahash.lower()})
    if hashes:
        c["hashes"] = hashes
    licenses = _licenses(pkg.license)
    if licenses:
        c["licenses"] = licenses
    c["purl"] = ref
    props = [("apk:arch", pkg.arch or arch), ("apk:origin", pkg.origin), ("apk:checksum", pkg.checksum),
             ("apk:commit", pkg.commit)]
    c["properties"] = [{"name": k, "value": v} for k, v in props if v]
    if pkg.url:
        c["externalReferences"] = [{"type": "website", "url": pkg.url}]
    return c


def image_bom(packages: Sequence[Package], os_info: OSInfo, image: ImageInfo) -> dict[str, Any]:
    if not image.layers:
        raise SBOMError("an image SBOM needs at least one layer")
    name = image_purl_name(image.name)
    apk_arch = Platform.from_arch(image.arch).apk_arch
    image_ref = purl("oci", "", name, image.digest) + "?" + qualifiers(
        oci_image_qualifiers(image, image.media_type))
    components: list[dict[str, Any]] = []
    for layer in image.layers:
        components.append({
            "type": "file",
            "bom-ref": purl("oci", "", name, layer.digest) + "?" + qualifiers(
                oci_image_qualifiers(image, layer.media_type)),
            "name": layer.digest,
            "version": os_info.version or layer.digest,
            "description": "operating system layer",
            "hashes": [{"alg": "SHA-256", "content": digest_hex(layer.digest)}],
        })
    if os_info.id:
        os_component: dict[str, Any] = {"type": "operating-system", "bom-ref": f"os:{os_info.id}",
                                        "name": os_info.id}
        if os_info.version:
            os_component["version"] = os_info.version
        if os_info.name:
            os_component["description"] = os_info.name
        components.append(os_component)
    seen: set[str] = set()
    for pkg in packages:
        comp = _component(pkg, os_info, apk_arch)
        if comp["bom-ref"] not in seen:
            seen.add(comp["bom-ref"])
            components.append(comp)
    metadata_component: dict[str, Any] = {
        "type": "container",
        "bom-ref": image_ref,
        "name": name,
        "version": image.digest,
        "hashes": [{"alg": "SHA-256", "content": digest_hex(image.digest)}],
        "purl": image_ref,
    }
    if image.vcs_url:
        url, at, _ = image.vcs_url.partition("@")
        metadata_component["externalReferences"] = [{"type": "vcs", "url": url if at else image.vcs_url}]
    return {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": _serial(image.digest),
        "version": 1,
        "metadata": {
            "timestamp": rfc3339(image.created),
            "tools": _tool(),
            "component": metadata_component,
        },
        "components": components,
        "dependencies": [
            {"ref": image_ref, "dependsOn": [c["bom-ref"] for c in components]},
        ] + [{"ref": c["bom-ref"], "dependsOn": []} for c in components],
    }


def cyclonedx_image(packages: Sequence[Package], os_info: OSInfo, image: ImageInfo) -> bytes:
    """`sbom-<apkarch>.cdx.json` for one arch image."""
    return marshal_indent(image_bom(packages, os_info, image))


def index_bom(index: IndexInfo) -> dict[str, Any]:
    if not index.images:
        raise SBOMError("unable to render index sbom, no architecture images found")
    name = image_purl_name(index.name)
    index_name = "index" if name == "image" else name
    index_ref = purl("oci", "", index_name, index.digest) + "?" + qualifiers(
        {"repository_url": index.repository, "mediaType": index.media_type})
    components = []
    for digest, arch in index.images:
        info = ImageInfo(digest, arch, (), repository=index.repository)
        ref = purl("oci", "", name, digest) + "?" + qualifiers(oci_image_qualifiers(info, OCI_MANIFEST))
        components.append({
            "type": "container", "bom-ref": ref, "name": name, "version": digest,
            "hashes": [{"alg": "SHA-256", "content": digest_hex(digest)}], "purl": ref,
            "properties": [{"name": "oci:platform", "value": f"linux/{arch}"}],
        })
    return {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": _serial(index.digest),
        "version": 1,
        "metadata": {
            "timestamp": rfc3339(index.created),
            "tools": _tool(),
            "component": {
                "type": "container", "bom-ref": index_ref, "name": index_name,
                "version": index.digest, "description": "Multi-arch image index",
                "hashes": [{"alg": "SHA-256", "content": digest_hex(index.digest)}],
                "purl": index_ref,
            },
        },
        "components": components,
        "dependencies": [{"ref": index_ref, "dependsOn": [c["bom-ref"] for c in components]}]
        + [{"ref": c["bom-ref"], "dependsOn": []} for c in components],
    }


def cyclonedx_index(index: IndexInfo) -> bytes:
    return marshal_indent(index_bom(index))
