"""SPDX 2.3 and CycloneDX 1.5 documents: structure, completeness, apko's layout, determinism."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest

from distroless.apk.model import Package
from distroless.sbom import cyclonedx, spdx
from distroless.sbom.common import (
    ImageInfo,
    IndexInfo,
    LayerInfo,
    OSInfo,
    SBOMError,
    control_sha1_hex,
    image_purl_name,
    license_expression,
    purl,
    spdx_id,
)
from sbomcheck import cyclonedx_problem, spdx_problems

IMAGE = "sha256:" + "3f" * 32
LAYER = "sha256:" + "62" * 32
INDEX = "sha256:" + "71" * 32
ARM = "sha256:" + "dc" * 32
OS = OSInfo(id="alpine", name="Alpine Linux", version="3.20.0")

PURL_RE = re.compile(r"^pkg:[a-z][a-z0-9.+-]*/(?:[^/?#@]+/)*[^/?#@]+(?:@[^?#]+)?(?:\?[^#]*)?(?:#.*)?$")
SPDXID_RE = re.compile(r"^SPDXRef-[A-Za-z0-9.\-]+$")


def q1(data: bytes) -> str:
    return "Q1" + base64.b64encode(hashlib.sha1(data).digest()).decode()


def packages() -> list[Package]:
    return [
        Package(name="alpine-baselayout-data", version="3.6.5-r0", arch="x86_64", license="GPL-2.0-only",
                maintainer="Natanael Copa <ncopa@alpinelinux.org>", origin="alpine-baselayout",
                checksum=q1(b"a"), datahash=hashlib.sha256(b"a").hexdigest(), description="Base data"),
        Package(name="busybox", version="1.36.1-r29", arch="x86_64", license="GPL-2.0-only",
                checksum=q1(b"b"), datahash=hashlib.sha256(b"b").hexdigest()),
        Package(name="libstdc++", version="13.2.1_git20240309-r0", arch="x86_64",
                license="GPL-2.0-or-later LGPL-2.1-or-later", checksum=q1(b"c"),
                datahash=hashlib.sha256(b"c").hexdigest()),
        Package(name="tzdata", version="2024a-r1", arch="noarch", license="Public-Domain & custom:odd",
                checksum=q1(b"d"), datahash=hashlib.sha256(b"d").hexdigest()),
    ]


def image_info(**kw) -> ImageInfo:
    base = dict(digest=IMAGE, arch="amd64", layers=(LayerInfo(LAYER),), created=1700000000,
                name="cgr.dev/me/app:latest")
    base.update(kw)
    return ImageInfo(**base)


def check_spdx(doc: dict) -> None:
    """The SPDX 2.3 required fields and internal consistency."""
    assert doc["spdxVersion"] == "SPDX-2.3"
    assert doc["SPDXID"] == "SPDXRef-DOCUMENT"
    assert doc["dataLicense"] == "CC0-1.0"
    assert doc["name"]
    assert re.match(r"^https?://\S+$", doc["documentNamespace"]) and "#" not in doc["documentNamespace"]
    ci = doc["creationInfo"]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", ci["created"])
    assert ci["creators"] and all(re.match(r"^(Tool|Organization|Person): .+", c) for c in ci["creators"])
    ids = [p["SPDXID"] for p in doc["packages"]]
    assert len(ids) == len(set(ids))
    for p in doc["packages"]:
        assert SPDXID_RE.match(p["SPDXID"]), p["SPDXID"]
        assert p["name"] and p["downloadLocation"] and p["filesAnalyzed"] is False
        for c in p.get("checksums", []):
            assert {"SHA1": 40, "SHA256": 64}[c["algorithm"]] == len(c["checksumValue"])
            assert re.match(r"^[0-9a-f]+$", c["checksumValue"])
        for ref in p.get("externalRefs", []):
            assert ref["referenceCategory"] == "PACKAGE-MANAGER" and ref["referenceType"] == "purl"
            assert PURL_RE.match(ref["referenceLocator"]), ref["referenceLocator"]
        for key in ("supplier", "originator"):
            if key in p:
                assert p[key] == "NOASSERTION" or re.match(r"^(Person|Organization): ", p[key])
    known = set(ids) | {"SPDXRef-DOCUMENT"}
    assert doc["documentDescribes"] and set(doc["documentDescribes"]) <= known
    for r in doc["relationships"]:
        assert r["spdxElementId"] in known and r["relatedSpdxElement"] in known
        assert r["relationshipType"] in {"CONTAINS", "DESCRIBES", "VARIANT_OF", "GENERATED_FROM", "DESCRIBED_BY"}
    refs = {lic["licenseId"] for lic in doc.get("hasExtractedLicensingInfos", [])}
    for p in doc["packages"]:
        for token in re.findall(r"LicenseRef-[A-Za-z0-9.\-]+", p.get("licenseDeclared", "")):
            assert token in refs


def test_spdx_image_lists_every_package():
    pkgs = packages()
    raw = spdx.spdx_image(pkgs, OS, image_info())
    assert raw.endswith(b"}\n") and raw.startswith(b'{\n  "SPDXID": "SPDXRef-DOCUMENT",\n')
    assert b"&" not in raw and b"\\u0026" in raw  # Go's HTML escaping of the purl qualifiers
    doc = json.loads(raw)
    check_spdx(doc)
    by_name = {p["name"]: p for p in doc["packages"]}
    image_id = doc["documentDescribes"][0]
    contained = {r["relatedSpdxElement"] for r in doc["relationships"]
                 if r["spdxElementId"] == image_id and r["relationshipType"] == "CONTAINS"}
    for pkg in pkgs:
        entry = by_name[pkg.name]
        assert entry["versionInfo"] == pkg.version
        assert entry["SPDXID"] in contained
        sums = {c["algorithm"]: c["checksumValue"] for c in entry["checksums"]}
        assert sums["SHA1"] == control_sha1_hex(pkg.checksum)
        assert sums["SHA256"] == pkg.datahash
        arch = pkg.arch
        assert entry["externalRefs"][0]["referenceLocator"] == purl("apk", "alpine", pkg.name.lower(), pkg.version, {"arch": arch})
        assert entry["supplier"] == "Organization: Alpine Linux"
    assert by_name["libstdc++"]["externalRefs"][0]["referenceLocator"] == (
        "pkg:apk/alpine/libstdc%2B%2B@13.2.1_git20240309-r0?arch=x86_64")
    assert by_name["libstdc++"]["licenseDeclared"] == "GPL-2.0-or-later AND LGPL-2.1-or-later"
    assert by_name["alpine-baselayout-data"]["originator"] == "Person: Natanael Copa (ncopa@alpinelinux.org)"
    assert by_name["tzdata"]["licenseDeclared"].startswith("LicenseRef-")
    assert doc["hasExtractedLicensingInfos"][0]["extractedText"] == "Public-Domain & custom:odd"
    assert by_name[LAYER]["SPDXID"] == "SPDXRef-Package-ImageLayer-sha256-" + "62" * 32
    assert by_name["alpine"]["primaryPackagePurpose"] == "OPERATING_SYSTEM"


def test_spdx_image_apko_layout():
    """The parts apko has, in apko's order and spelling (pkg/sbom/generator/spdx)."""
    doc = json.loads(spdx.spdx_image([], OSInfo("replaces", "Replaces", "1.0.0"),
                                     image_info(created=0, name="golden"), spdx.APKO_STYLE))
    assert list(doc) == ["SPDXID", "name", "spdxVersion", "creationInfo", "dataLicense",
                         "documentNamespace", "documentDescribes", "packages", "relationships"]
    assert doc["name"] == "sbom-" + LAYER
    assert doc["creationInfo"] == {"created": "1970-01-01T00:00:00Z",
                                   "creators": ["Tool: apko (devel)", "Organization: Chainguard, Inc"],
                                   "licenseListVersion": "3.27"}
    assert doc["documentNamespace"] == "https://spdx.org/spdxdocs/apko/"
    image_id = "SPDXRef-Package-Image-sha256-" + "3f" * 32
    layer_id = "SPDXRef-Package-ImageLayer-sha256-" + "62" * 32
    assert doc["documentDescribes"] == [image_id]
    assert doc["packages"] == [
        {"SPDXID": image_id, "name": IMAGE, "versionInfo": IMAGE, "filesAnalyzed": False,
         "description": "apko container image", "downloadLocation": "NOASSERTION",
         "supplier": "Organization: Replaces", "primaryPackagePurpose": "CONTAINER",
         "checksums": [{"algorithm": "SHA256", "checksumValue": "3f" * 32}],
         "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER",
                           "referenceLocator": "pkg:oci/golden@sha256%3A" + "3f" * 32
                           + "?arch=amd64&mediaType=application%2Fvnd.oci.image.manifest.v1%2Bjson&os=linux",
                           "referenceType": "purl"}]},
        {"SPDXID": layer_id, "name": LAYER, "versionInfo": "1.0.0", "filesAnalyzed": False,
         "description": "apko operating system layer", "downloadLocation": "NOASSERTION",
         "supplier": "Organization: Replaces", "primaryPackagePurpose": "CONTAINER",
         "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER",
                           "referenceLocator": "pkg:oci/golden@sha256%3A" + "62" * 32
                           + "?arch=amd64&mediaType=application%2Fvnd.oci.image.layer.v1.tar%2Bgzip&os=linux",
                           "referenceType": "purl"}]},
        {"SPDXID": "SPDXRef-OperatingSystem-replaces", "name": "replaces", "versionInfo": "1.0.0",
         "filesAnalyzed": False, "description": "Operating System", "downloadLocation": "NOASSERTION",
         "supplier": "Organization: Replaces", "primaryPackagePurpose": "OPERATING_SYSTEM"},
    ]
    assert doc["relationships"] == [
        {"spdxElementId": image_id, "relationshipType": "CONTAINS", "relatedSpdxElement": layer_id}]


def test_spdx_vcs_source_package():
    commit = "0123456789abcdef0123456789abcdef01234567"
    doc = json.loads(spdx.spdx_image(packages(), OS, image_info(vcs_url=f"https://github.com/o/r.git@{commit}")))
    check_spdx(doc)
    src = next(p for p in doc["packages"] if p.get("primaryPackagePurpose") == "SOURCE")
    assert src["name"] == "github.com/o/r.git" and src["versionInfo"] == commit
    assert src["checksums"] == [{"algorithm": "SHA1", "checksumValue": commit}]
    assert src["externalRefs"][0]["referenceLocator"] == f"pkg:github/o/r@{commit}"
    assert {"spdxElementId": doc["documentDescribes"][0], "relationshipType": "GENERATED_FROM",
            "relatedSpdxElement": src["SPDXID"]} in doc["relationships"]


def test_spdx_deterministic_and_unique_namespace():
    a = spdx.spdx_image(packages(), OS, image_info())
    assert a == spdx.spdx_image(packages(), OS, image_info())
    b = spdx.spdx_image(packages(), OS, image_info(digest="sha256:" + "40" * 32))
    assert json.loads(a)["documentNamespace"] != json.loads(b)["documentNamespace"]
    assert json.loads(a)["creationInfo"]["created"] == "2023-11-14T22:13:20Z"


def test_spdx_index():
    info = IndexInfo(INDEX, ((IMAGE, "amd64"), (ARM, "arm/v7")), created=0, name="golden")
    raw = spdx.spdx_index(info, OSInfo(name="Chainguard, Inc."), spdx.APKO_STYLE)
    doc = json.loads(raw)
    check_spdx(doc)
    index_id = "SPDXRef-Package-sha256-" + "71" * 32
    assert doc["name"] == "sbom-" + INDEX and doc["documentDescribes"] == [index_id]
    first = doc["packages"][0]
    assert first["description"] == "Multi-arch image index"
    assert first["supplier"] == "Organization: Chainguard, Inc."
    assert first["sourceInfo"] == "Generated at image build time by apko"
    assert first["externalRefs"][0]["referenceLocator"] == (
        "pkg:oci/golden@sha256%3A" + "71" * 32 + "?mediaType=application%2Fvnd.oci.image.index.v1%2Bjson")
    assert doc["packages"][2]["externalRefs"][0]["referenceLocator"] == (
        "pkg:oci/golden@sha256%3A" + "dc" * 32
        + "?arch=arm&mediaType=application%2Fvnd.oci.image.manifest.v1%2Bjson&os=linux")
    assert [r["relationshipType"] for r in doc["relationships"]] == ["VARIANT_OF", "VARIANT_OF"]
    assert [r["relatedSpdxElement"] for r in doc["relationships"]] == [
        "SPDXRef-Package-sha256-" + "3f" * 32, "SPDXRef-Package-sha256-" + "dc" * 32]
    with pytest.raises(SBOMError):
        spdx.spdx_index(IndexInfo(INDEX, ()), OS)


def test_sbom_filenames():
    assert spdx.sbom_filename("amd64") == "sbom-x86_64.spdx.json"
    assert spdx.sbom_filename("arm/v6") == "sbom-armhf.spdx.json"
    assert spdx.sbom_filename(None) == "sbom-index.spdx.json"


@pytest.mark.parametrize("text,expr", [
    ("MIT", "MIT"),
    ("MIT BSD-3-Clause", "MIT AND BSD-3-Clause"),
    ("GPL-2.0-or-later and MIT", "GPL-2.0-or-later AND MIT"),
    ("(MIT OR Apache-2.0) AND Zlib", "(MIT OR Apache-2.0) AND Zlib"),
    ("GPL-2.0+", "GPL-2.0+"),
    ("", "NOASSERTION"),
])
def test_license_expression(text, expr):
    assert license_expression(text).expression == expr


def test_identifiers_and_purls():
    assert spdx_id("SPDXRef-Package-libstdc++-1_2") == "SPDXRef-Package-libstdcC43C43-1C952"
    assert spdx_id("a:b é") == "a-bC32C195C169"
    assert image_purl_name("cgr.dev/chainguard/static:latest") == "static"
    assert image_purl_name("localhost:5000/app@sha256:" + "0" * 64) == "app"
    assert image_purl_name("") == "image"
    assert purl("apk", "wolfi", "a b", "1", {"arch": "x86_64", "distro": ""}) == "pkg:apk/wolfi/a%20b@1?arch=x86_64"
    with pytest.raises(SBOMError):
        control_sha1_hex("Q2abc")


def test_cyclonedx_image():
    pkgs = packages()
    raw = cyclonedx.cyclonedx_image(pkgs, OS, image_info())
    assert raw == cyclonedx.cyclonedx_image(pkgs, OS, image_info())
    bom = json.loads(raw)
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.5" and bom["version"] == 1
    assert re.match(r"^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
                    bom["serialNumber"])
    assert bom["metadata"]["timestamp"] == "2023-11-14T22:13:20Z"
    assert bom["metadata"]["component"]["type"] == "container"
    libs = [c for c in bom["components"] if c["type"] == "library"]
    assert [c["name"] for c in libs] == [p.name for p in pkgs]
    for comp, pkg in zip(libs, pkgs):
        assert PURL_RE.match(comp["purl"]) and comp["bom-ref"] == comp["purl"]
        hashes = {h["alg"]: h["content"] for h in comp["hashes"]}
        assert hashes == {"SHA-1": control_sha1_hex(pkg.checksum), "SHA-256": pkg.datahash}
        assert comp["licenses"]
    assert any(c["type"] == "operating-system" and c["name"] == "alpine" for c in bom["components"])
    refs = {c["bom-ref"] for c in bom["components"]} | {bom["metadata"]["component"]["bom-ref"]}
    assert len(refs) == len(bom["components"]) + 1
    for dep in bom["dependencies"]:
        assert dep["ref"] in refs and set(dep["dependsOn"]) <= refs


def test_infos_from_built_images():
    from distroless.oci import image as im
    from distroless.sbom.common import image_info as from_image, index_info

    layer = im.Layer(LAYER, 10, IMAGE, Path("/nonexistent"))
    built = [im.build_image(im.apko_config(platform=im.Platform.from_arch(a), diff_ids=[IMAGE], created=0), [layer])
             for a in ("arm64", "amd64")]
    index = im.build_index(built)
    info = from_image(index.images[0], created=5, name="x/y")
    assert info.arch == "amd64" and info.layers == (LayerInfo(LAYER),) and info.digest == index.images[0].digest
    check_spdx(json.loads(spdx.spdx_image(packages(), OS, info)))
    idx = index_info(index, created=5)
    assert [a for _, a in idx.images] == ["amd64", "arm64"] and idx.digest == index.digest
    check_spdx(json.loads(spdx.spdx_index(idx, OS)))


def test_cyclonedx_index():
    bom = json.loads(cyclonedx.cyclonedx_index(IndexInfo(INDEX, ((IMAGE, "amd64"), (ARM, "arm/v7")))))
    assert bom["specVersion"] == "1.5"
    assert [c["version"] for c in bom["components"]] == [IMAGE, ARM]
    assert bom["metadata"]["component"]["name"] == "index"


# --------------------------------------------------------------------------- independent validators

def _spdx_documents() -> dict[str, bytes]:
    idx = IndexInfo(INDEX, ((IMAGE, "amd64"), (ARM, "arm/v7")), created=0, name="golden")
    commit = "0123456789abcdef0123456789abcdef01234567"
    return {
        "image": spdx.spdx_image(packages(), OS, image_info()),
        "image-apko-style": spdx.spdx_image(packages(), OS, image_info(), spdx.APKO_STYLE),
        "image-vcs": spdx.spdx_image(packages(), OS, image_info(vcs_url=f"https://github.com/o/r.git@{commit}")),
        "index": spdx.spdx_index(idx, OS),
        "index-apko-style": spdx.spdx_index(idx, OSInfo(name="Chainguard, Inc."), spdx.APKO_STYLE),
        "packages (frontend)": json.dumps(spdx.packages_document(packages(), OS, "x86_64", 1700000000)).encode(),
    }


@pytest.mark.parametrize("name", list(_spdx_documents()))
def test_spdx_tools_accepts_our_documents(name):
    assert spdx_problems(_spdx_documents()[name]) == []


def test_spdx_tools_rejects_a_broken_document():
    """The checker itself: a dangling relationship and a bad checksum are reported."""
    doc = json.loads(spdx.spdx_image(packages(), OS, image_info()))
    doc["relationships"][0]["relatedSpdxElement"] = "SPDXRef-nowhere"
    next(p for p in doc["packages"] if p["name"] == "busybox")["checksums"][0]["checksumValue"] = "xyz"
    problems = spdx_problems(json.dumps(doc))
    assert any("SPDXRef-nowhere" in p for p in problems) and any("xyz" in p for p in problems), problems


@pytest.mark.parametrize("name,raw", [
    ("image", lambda: cyclonedx.cyclonedx_image(packages(), OS, image_info())),
    ("index", lambda: cyclonedx.cyclonedx_index(IndexInfo(INDEX, ((IMAGE, "amd64"), (ARM, "arm/v7"))))),
])
def test_cyclonedx_validator_accepts_our_boms(name, raw):
    assert cyclonedx_problem(raw()) is None


def test_cyclonedx_validator_rejects_a_broken_bom():
    bom = json.loads(cyclonedx.cyclonedx_image(packages(), OS, image_info()))
    bom["components"][0]["hashes"][0]["alg"] = "SHA-0"
    assert "SHA-0" in (cyclonedx_problem(json.dumps(bom)) or "")
