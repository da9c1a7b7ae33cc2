"""SBOM inputs and the small helpers both formats share (purls, IDs, licenses, checksums).

Inputs are plain records, not the rootfs: the installed packages (`apk.model.Package`, in
install order), the os-release fields, and digests of the built image, its layers and index.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

from distroless import __version__
from distroless.apk.model import Package
from distroless.errors import DistrolessError
from distroless.oci.image import OCI_INDEX, OCI_LAYER_GZIP, OCI_MANIFEST, Image, Index, Platform

NOASSERTION = "NOASSERTION"
# What apko writes; pass as `creators` to compare with apko's golden SBOMs.
APKO_CREATORS = ("Tool: apko (devel)", "Organization: Chainguard, Inc")
DEFAULT_CREATORS = (f"Tool: distroless ({__version__})",)


class SBOMError(DistrolessError):
    """The SBOM inputs are inconsistent (no layers, malformed checksum)."""


@dataclass(frozen=True, slots=True)
class OSInfo:
    """/etc/os-release: ID, NAME, VERSION_ID (empty when the image has none)."""

    id: str = ""
    name: str = ""
    version: str = ""


@dataclass(frozen=True, slots=True)
class LayerInfo:
    digest: str
    media_type: str = OCI_LAYER_GZIP


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """One arch image. `arch` is apko's architecture string (`amd64`, `arm/v7`)."""

    digest: str  # manifest digest
    arch: str
    layers: tuple[LayerInfo, ...]
    created: int = 0  # build date epoch
    name: str = ""  # image reference; its repository basename names the purl
    repository: str = ""  # purl `repository_url` qualifier
    vcs_url: str = ""
    media_type: str = OCI_MANIFEST


@dataclass(frozen=True, slots=True)
class IndexInfo:
    digest: str
    images: tuple[tuple[str, str], ...]  # (manifest digest, arch) in index order
    created: int = 0
    name: str = ""
    repository: str = ""
    vcs_url: str = ""
    media_type: str = OCI_INDEX


def image_info(image: Image, *, created: int, name: str = "", repository: str = "",
               vcs_url: str = "") -> ImageInfo:
    """The SBOM's view of a built image."""
    return ImageInfo(
        digest=image.digest, arch=image.platform.arch,
        layers=tuple(LayerInfo(l.digest, l.media_type) for l in image.layers),
        created=created, name=name, repository=repository, vcs_url=vcs_url,
        media_type=image.media_type,
    )


def index_info(index: Index, *, created: int, name: str = "", repository: str = "",
               vcs_url: str = "") -> IndexInfo:
    return IndexInfo(
        digest=index.digest, images=tuple((i.digest, i.platform.arch) for i in index.images),
        created=created, name=name, repository=repository, vcs_url=vcs_url,
        media_type=index.media_type,
    )


# --------------------------------------------------------------------------- identifiers

_ID_BAD = re.compile(r"[^a-zA-Z0-9.\-]+")


def spdx_id(text: str) -> str:
    """apko's stringToIdentifier: `:` -> `-`, every other disallowed byte -> `C<byte value>`."""
    text = text.replace(":", "-")
    return _ID_BAD.sub(lambda m: "".join(f"C{b}" for b in m.group().encode()), text)


def _purl_escape(text: str) -> str:
    # packageurl-go: query-escaping of each path part, a space as %20.
    return quote(text, safe="-_.~")


def qualifiers(values: Mapping[str, str]) -> str:
    """`k=v&...` sorted by key, values query-escaped (Go `url.QueryEscape`)."""
    return "&".join(
        f"{k}={quote(v, safe='-_.~').replace('%20', '+')}" for k, v in sorted(values.items()) if v
    )


def purl(type_: str, namespace: str, name: str, version: str, quals: Mapping[str, str] | None = None) -> str:
    out = f"pkg:{type_}/"
    if namespace:
        out += "/".join(_purl_escape(p) for p in namespace.split("/")) + "/"
    out += _purl_escape(name)
    if version:
        out += "@" + _purl_escape(version)
    q = qualifiers(quals or {})
    return out + ("?" + q if q else "")


def image_purl_name(ref: str) -> str:
    """apko's ImagePurlName: the last path element of the repository, or `image`."""
    if not ref:
        return "image"
    base = ref.split("@", 1)[0]
    last = base.rfind("/")
    colon = base.rfind(":")
    if colon > last:
        base = base[:colon]
    return base.rsplit("/", 1)[-1] or "image"


def apk_purl(pkg: Package, os_id: str, arch: str) -> str:
    """`pkg:apk/<os id>/<name>@<version>?arch=<apk arch>` (the purl spec lower-cases apk names)."""
    return purl("apk", os_id.lower(), pkg.name.lower(), pkg.version, {"arch": pkg.arch or arch})


def oci_image_qualifiers(info: ImageInfo, media_type: str) -> dict[str, str]:
    plat = Platform.from_arch(info.arch)
    return {"repository_url": info.repository, "arch": plat.architecture, "os": plat.os,
            "mediaType": media_type}


def supplier(os_info: OSInfo) -> str:
    return f"Organization: {os_info.name}" if os_info.name else NOASSERTION


# --------------------------------------------------------------------------- package facts


def control_sha1_hex(checksum: str) -> str:
    """`Q1<base64 sha1>` (the control member's identity) as lower-case hex; "" if absent."""
    if not checksum:
        return ""
    if not checksum.startswith("Q1"):
        raise SBOMError(f"unsupported package checksum {checksum!r} (expected Q1...)")
    try:
        raw = base64.b64decode(checksum[2:], validate=True)
    except ValueError as e:
        raise SBOMError(f"malformed package checksum {checksum!r}") from e
    if len(raw) != 20:
        raise SBOMError(f"package checksum {checksum!r} is not a SHA-1")
    return raw.hex()


_LICENSE_TOKEN = re.compile(r"\(|\)|[^\s()]+")
_OPERATORS = {"AND", "OR", "WITH"}
_IDSTRING = re.compile(r"^[A-Za-z0-9.\-]+\+?$")


@dataclass(frozen=True, slots=True)
class License:
    expression: str  # SPDX expression, or NOASSERTION
    extracted: tuple[tuple[str, str], ...] = field(default=())  # (LicenseRef-id, original text)


def license_expression(text: str) -> License:
    """An apk `L:` value as an SPDX expression.

    apk licenses are mostly SPDX already (`MIT`, `GPL-2.0-or-later AND MIT`); older Alpine ones
    list ids separated by spaces (`MIT BSD`), read as AND. A value with a token that cannot be
    an SPDX id (`custom:foo`) becomes one LicenseRef whose extracted text is the whole value.
    Ids are not checked against the SPDX list (we carry no copy of it).
    """
    text = text.strip()
    if not text:
        return License(NOASSERTION)
    tokens = _LICENSE_TOKEN.findall(text)
    out: list[str] = []
    for tok in tokens:
        upper = tok.upper()
        if upper in _OPERATORS:
            out.append(upper)
            continue
        if tok in "()":
            if tok == "(" and out and out[-1] not in _OPERATORS and out[-1] != "(":
                out.append("AND")
            out.append(tok)
            continue
        if not _IDSTRING.match(tok) and not tok.startswith("LicenseRef-"):
            ref = "LicenseRef-" + spdx_id(text)
            return License(ref, ((ref, text),))
        if out and out[-1] not in _OPERATORS and out[-1] != "(":
            out.append("AND")
        out.append(tok)
    expr = " ".join(out).replace("( ", "(").replace(" )", ")")
    return License(expr)

