"""SPDX 2.3 JSON documents for an arch image and for the index, in apko's layout.

apko's per-arch document lists, in order: the image, its layers, the operating system, the VCS
source (if any), then the installed packages; each installed package that ships no embedded
SBOM is described from the apk database. We describe every package that way (we are given
records, not the rootfs), and add what apko leaves out: the control SHA-1 (`Q1`) and data
SHA-256 (datahash) checksums, and the maintainer as originator.

Output is Go's `json.Encoder` with a 2-space indent and HTML escaping, plus a trailing newline.
Nothing is random: `created` is the build date and the namespace is derived from the digest
(apko uses one constant namespace; `APKO_STYLE` reproduces that).
"""

from __future__ import annotations

import hashlib

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from distroless.apk.model import Package
from distroless.oci.gojson import marshal_indent, rfc3339
from distroless.oci.image import OCI_MANIFEST, Platform, digest_hex
from distroless.sbom.common import (
    APKO_CREATORS,
    DEFAULT_CREATORS,
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
    spdx_id,
    supplier,
)

SPDX_VERSION = "SPDX-2.3"
LICENSE_LIST_VERSION = "3.27"
APKO_NAMESPACE = "https://spdx.org/spdxdocs/apko/"
DOCUMENT_ID = "SPDXRef-DOCUMENT"
_SHA1_HEX = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True, slots=True)
class Style:
    """Who the document says made it. `namespace=""` derives a unique one from the digest."""

    creators: tuple[str, ...]
    tool: str  # used in descriptions: "<tool> container image", ...
    namespace: str = ""


DEFAULT_STYLE = Style(DEFAULT_CREATORS, "distroless")
APKO_STYLE = Style(APKO_CREATORS, "apko", APKO_NAMESPACE)  # to compare with apko's goldens


def _ref(locator: str) -> dict[str, str]:
    return {"referenceCategory": "PACKAGE-MANAGER", "referenceLocator": locator, "referenceType": "purl"}


def _rel(element: str, kind: str, related: str) -> dict[str, str]:
    return {"spdxElementId": element, "relationshipType": kind, "relatedSpdxElement": related}


def _package(
    spdxid: str,
    name: str,
    version: str = "",
    *,
    license_concluded: str = "",
    license_declared: str = "",
    description: str = "",
    download: str = NOASSERTION,
    originator: str = "",
    supplier_: str = "",
    source_info: str = "",
    copyright_: str = "",
    purpose: str = "",
    checksums: Sequence[tuple[str, str]] = (),
    refs: Sequence[dict[str, str]] = (),
) -> dict[str, Any]:
    """An SPDX package in apko's field order, omitting empty optional fields."""
    p: dict[str, Any] = {"SPDXID": spdxid, "name": name}
    if version:
        p["versionInfo"] = version
    p["filesAnalyzed"] = False
    for key, value in (
        ("licenseConcluded", license_concluded),
        ("licenseDeclared", license_declared),
        ("description", description),
    ):
        if value:
            p[key] = value
    p["downloadLocation"] = download
    for key, value in (
        ("originator", originator),
        ("supplier", supplier_),
        ("sourceInfo", source_info),
        ("copyrightText", copyright_),
        ("primaryPackagePurpose", purpose),
    ):
        if value:
            p[key] = value
    if checksums:
        p["checksums"] = [{"algorithm": a, "checksumValue": v} for a, v in checksums]
    if refs:
        p["externalRefs"] = list(refs)
    return p


def _person(maintainer: str) -> str:
    """`Name <mail>` (apk `m:`) as SPDX `Person: Name (mail)`."""
    name, lt, rest = maintainer.partition("<")
    name = name.strip()
    mail = rest.rstrip(">").strip() if lt else ""
    if not name and not mail:
        return ""
    return f"Person: {name or mail}" + (f" ({mail})" if mail and name else "")


def package_entry(pkg: Package, os_info: OSInfo, arch: str) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """One installed package; returns the entry and any extracted licenses it needs."""
    lic = license_expression(pkg.license)
    checksums: list[tuple[str, str]] = []
    sha1 = control_sha1_hex(pkg.checksum)
    if sha1:
        checksums.append(("SHA1", sha1))
    if pkg.datahash:
        checksums.append(("SHA256", pkg.datahash.lower()))
    sup = supplier(os_info)
    entry = _package(
        spdx_id(f"SPDXRef-Package-{pkg.name}-{pkg.version}"),
        pkg.name,
        pkg.version,
        license_concluded=NOASSERTION,
        license_declared=lic.expression,
        description=pkg.description,
        originator=_person(pkg.maintainer) or sup,
        supplier_=sup,
        source_info="Package info from apk database",
        copyright_=NOASSERTION,
        checksums=checksums,
        refs=[_ref(apk_purl(pkg, os_info.id, arch))],
    )
    return entry, list(lic.extracted)


def _source_package(vcs_url: str, sup: str) -> dict[str, Any]:
    """apko's addSourcePackage: `url@commit` gives a SHA1 checksum and version."""
    url, at, commit = vcs_url.partition("@")
    name = url if at else vcs_url
    for prefix in ("git+ssh://", "git://", "https://"):
        name = name.removeprefix(prefix)
    refs = []
    if name.startswith("github.com/"):
        org, slash, repo = name.removeprefix("github.com/").partition("/")
        if slash:
            refs.append(_ref(purl("github", org, repo.removesuffix(".git"), commit if at else "")))
    return _package(
        "SPDXRef-Package-" + spdx_id(vcs_url),
        name,
        commit if at else "",
        description="Image configuration source",
        download=vcs_url or NOASSERTION,
        supplier_=sup,
        purpose="SOURCE",
        # apko writes any commit as a SHA1; only a real one keeps the document valid
        checksums=[("SHA1", commit)] if at and _SHA1_HEX.match(commit) else [],
        refs=refs,
    )


def _document(name: str, created: int, namespace: str, style: Style) -> dict[str, Any]:
    return {
        "SPDXID": DOCUMENT_ID,
        "name": name,
        "spdxVersion": SPDX_VERSION,
        "creationInfo": {
            "created": rfc3339(created),
            "creators": list(style.creators),
            "licenseListVersion": LICENSE_LIST_VERSION,
        },
        "dataLicense": "CC0-1.0",
        "documentNamespace": namespace,
        "documentDescribes": [],
        "packages": [],
        "relationships": [],
    }


def _dedupe(packages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[str] = set()
    out = []
    for p in packages:
        if p["SPDXID"] not in seen:
            seen.add(p["SPDXID"])
            out.append(p)
    return out


def image_document(
    packages: Sequence[Package], os_info: OSInfo, image: ImageInfo, style: Style = DEFAULT_STYLE
) -> dict[str, Any]:
    """The per-arch SPDX document as a JSON-ready dict (see `spdx_image`)."""
    if not image.layers:
        raise SBOMError("an image SBOM needs at least one layer")
    hexdigest = digest_hex(image.digest)
    purl_name = image_purl_name(image.name)
    namespace = style.namespace or (
        f"https://spdx.org/spdxdocs/{style.tool}/{purl_name}-{hexdigest}"
    )
    doc = _document(f"sbom-{image.layers[0].digest}", image.created, namespace, style)
    sup = supplier(os_info)
    apk_arch = _apk_arch(image.arch)

    image_id = spdx_id(f"SPDXRef-Package-Image-{image.digest}")
    pkgs: list[dict[str, Any]] = [_package(
        image_id, image.digest, image.digest,
        description=f"{style.tool} container image",
        supplier_=sup, purpose="CONTAINER",
        checksums=[("SHA256", hexdigest)],
        refs=[_ref(purl("oci", "", purl_name, image.digest)
                   + "?" + qualifiers(oci_image_qualifiers(image, image.media_type)))],
    )]
    rels: list[dict[str, str]] = []
    for layer in image.layers:
        layer_id = "SPDXRef-Package-ImageLayer-" + spdx_id(layer.digest)
        pkgs.append(_package(
            layer_id, layer.digest, os_info.version,
            description=f"{style.tool} operating system layer",
            supplier_=sup, purpose="CONTAINER",
            refs=[_ref(purl("oci", "", purl_name, layer.digest)
                       + "?" + qualifiers(oci_image_qualifiers(image, layer.media_type)))],
        ))
        rels.append(_rel(image_id, "CONTAINS", layer_id))
    doc["documentDescribes"] = [image_id]
    pkgs.append(_package(
        "SPDXRef-OperatingSystem-" + spdx_id(os_info.id), os_info.id, os_info.version,
        description="Operating System", supplier_=sup, purpose="OPERATING_SYSTEM",
    ))
    if image.vcs_url:
        src = _source_package(image.vcs_url, sup)
        pkgs.append(src)
        rels.append(_rel(image_id, "GENERATED_FROM", src["SPDXID"]))
    extracted: dict[str, str] = {}
    for pkg in packages:
        entry, lic_refs = package_entry(pkg, os_info, apk_arch)
        pkgs.append(entry)
        rels.append(_rel(image_id, "CONTAINS", entry["SPDXID"]))
        for ref, text in lic_refs:
            extracted.setdefault(ref, text)
    doc["packages"] = _dedupe(pkgs)
    doc["relationships"] = rels
    if extracted:
        doc["hasExtractedLicensingInfos"] = [
            {"licenseId": k, "extractedText": v} for k, v in extracted.items()
        ]
    return doc


def packages_document(packages: Sequence[Package], os_info: OSInfo, arch: str, created: int,
                      style: Style = DEFAULT_STYLE) -> dict[str, Any]:
    """A document of the installed packages alone, for in-toto attestations whose subject (the
    image manifest) is filled in by whoever attaches them — BuildKit does, for its frontends."""
    apk_arch = _apk_arch(arch)
    ident = hashlib.sha256("\n".join(f"{p.name}={p.version}" for p in packages).encode()).hexdigest()
    namespace = style.namespace or f"https://spdx.org/spdxdocs/{style.tool}/packages-{apk_arch}-{ident}"
    doc = _document(f"sbom-packages-{apk_arch}", created, namespace, style)
    sup = supplier(os_info)
    os_id = "SPDXRef-OperatingSystem-" + spdx_id(os_info.id or "unknown")
    pkgs: list[dict[str, Any]] = [_package(os_id, os_info.id or "unknown", os_info.version,
                                           description="Operating System", supplier_=sup,
                                           purpose="OPERATING_SYSTEM")]
    rels: list[dict[str, str]] = []
    extracted: dict[str, str] = {}
    for pkg in packages:
        entry, lic_refs = package_entry(pkg, os_info, apk_arch)
        pkgs.append(entry)
        rels.append(_rel(os_id, "CONTAINS", entry["SPDXID"]))
        for ref, text in lic_refs:
            extracted.setdefault(ref, text)
    doc["documentDescribes"] = [os_id]
    doc["packages"] = _dedupe(pkgs)
    doc["relationships"] = rels
    if extracted:
        doc["hasExtractedLicensingInfos"] = [{"licenseId": k, "extractedText": v} for k, v in extracted.items()]
    return doc


def spdx_image(
    packages: Sequence[Package], os_info: OSInfo, image: ImageInfo, style: Style = DEFAULT_STYLE
) -> bytes:
    """`sbom-<apkarch>.spdx.json` for one arch image, listing every installed package."""
    return marshal_indent(image_document(packages, os_info, image, style))


def index_document(index: IndexInfo, os_info: OSInfo, style: Style = DEFAULT_STYLE) -> dict[str, Any]:
    if not index.images:
        raise SBOMError("unable to render index sbom, no architecture images found")
    hexdigest = digest_hex(index.digest)
    purl_name = image_purl_name(index.name)
    index_purl_name = "index" if purl_name == "image" else purl_name
    namespace = style.namespace or (
        f"https://spdx.org/spdxdocs/{style.tool}/{index_purl_name}-{hexdigest}"
    )
    doc = _document(f"sbom-{index.digest}", index.created, namespace, style)
    sup = supplier(os_info)
    index_id = "SPDXRef-Package-" + spdx_id(index.digest)
    pkgs = [_package(
        index_id, index.digest, index.digest,
        description="Multi-arch image index", supplier_=sup,
        source_info=f"Generated at image build time by {style.tool}",
        purpose="CONTAINER", checksums=[("SHA256", hexdigest)],
        refs=[_ref(purl("oci", "", index_purl_name, index.digest) + "?" + qualifiers(
            {"repository_url": index.repository, "mediaType": index.media_type}))],
    )]
    doc["documentDescribes"] = [index_id]
    rels = []
    for digest, arch in index.images:
        image_id = "SPDXRef-Package-" + spdx_id(digest)
        info = ImageInfo(digest, arch, (), repository=index.repository)
        pkgs.append(_package(
            image_id, digest, digest, supplier_=sup, purpose="CONTAINER",
            checksums=[("SHA256", digest_hex(digest))],
            refs=[_ref(purl("oci", "", purl_name, digest)
                       + "?" + qualifiers(oci_image_qualifiers(info, OCI_MANIFEST)))],
        ))
        rels.append(_rel(index_id, "VARIANT_OF", image_id))
    if index.vcs_url:
        src = _source_package(index.vcs_url, sup)
        pkgs.append(src)
        rels.append(_rel(index_id, "GENERATED_FROM", src["SPDXID"]))
    doc["packages"] = pkgs
    doc["relationships"] = rels
    return doc


def spdx_index(index: IndexInfo, os_info: OSInfo, style: Style = DEFAULT_STYLE) -> bytes:
    """`sbom-index.spdx.json`: the index, one package per arch image, VARIANT_OF each."""
    return marshal_indent(index_document(index, os_info, style))


def _apk_arch(arch: str) -> str:
    return Platform.from_arch(arch).apk_arch


def sbom_filename(arch: str | None) -> str:
    """apko's names: `sbom-<apkarch>.spdx.json`, or `sbom-index.spdx.json` for `None`."""
    return "sbom-index.spdx.json" if arch is None else f"sbom-{_apk_arch(arch)}.spdx.json"
