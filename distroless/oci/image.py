"""The OCI image model: descriptors, layers, config, manifest, index — bytes as ggcr writes them.

Everything here is transport-independent, in the shape of ggcr's `v1.Image`/`v1.Layer`: an
`Image` is its raw config and manifest bytes plus its layers (`Layer`, a compressed blob file;
`BlobLayer`, bytes in memory such as a cosign signature), an `Index` is its raw bytes plus its
images. Transports only move these bytes: `oci.layout.write`, `oci.dockerarchive.write` and
`registry.push.write`, each `write(dest, image_or_index)`.

JSON field order follows go-containerregistry's structs (`v1.ConfigFile`, `v1.Config`,
`v1.Manifest`, `v1.IndexManifest`, `v1.Descriptor`, `v1.Platform`); Go maps are key-sorted;
`omitempty` fields are dropped when empty. See docs in the apko notes §3.4.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

from distroless import arch as arch_table
from distroless.errors import DistrolessError
from distroless.fsutil import staged_output
from distroless.oci import shlex
from distroless.oci.gojson import go_map, marshal, rfc3339
from distroless.oci.gzip import DEFAULT_ENGINE, Compressed, Engine, Source, compress
from distroless.oci.mediatypes import OCI_CONFIG, OCI_INDEX, OCI_LAYER_GZIP, OCI_LAYER_ZSTD, OCI_MANIFEST  # noqa: F401 - re-exported


# apko's fixed strings (pkg/build/oci/image.go); defaults so our configs can match apko's bytes.
APKO_AUTHOR = "github.com/chainguard-dev/apko"
APKO_HISTORY_BY = "apko"
SINGLE_LAYER_COMMENT = "This is an apko single-layer image"
DEFAULT_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/bin:/usr/sbin:/sbin:/bin",
    "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt",
}
ANN_CREATED = "org.opencontainers.image.created"
ANN_SOURCE = "org.opencontainers.image.source"
ANN_REVISION = "org.opencontainers.image.revision"
ANN_TITLE = "org.opencontainers.image.title"
ANN_VENDOR = "org.opencontainers.image.vendor"



class ImageError(DistrolessError):
    """An image, index or layout is inconsistent (bad digest, missing blob, bad command line)."""


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digest_hex(digest: str) -> str:
    algo, sep, hexpart = digest.partition(":")
    if algo != "sha256" or not sep or len(hexpart) != 64:
        raise ImageError(f"not a sha256 digest: {digest!r}")
    return hexpart


# --------------------------------------------------------------------------- descriptors


@dataclass(frozen=True, slots=True)
class Platform:
    architecture: str
    os: str = "linux"
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()

    @classmethod
    def from_arch(cls, arch: str) -> Platform:
        """apko's `Architecture.ToOCIPlatform`: `arm/v7` -> arm + v7, anything else as is."""
        name, _, variant = arch.partition("/")
        return cls(architecture=name, variant=variant)

    @property
    def arch(self) -> str:
        """apko's architecture string (`amd64`, `arm/v7`): the index sort key and tag suffix."""
        return f"{self.architecture}/{self.variant}" if self.variant else self.architecture

    @property
    def apk_arch(self) -> str:
        return arch_table.to_apk(self.arch)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        if self.variant:
            out["variant"] = self.variant
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Platform:
        return cls(
            architecture=obj.get("architecture", ""),
            os=obj.get("os", ""),
            variant=obj.get("variant", ""),
            os_version=obj.get("os.version", ""),
            os_features=tuple(obj.get("os.features") or ()),
        )


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    size: int
    digest: str
    urls: tuple[str, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Platform | None = None
    artifact_type: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "size": self.size, "digest": self.digest}
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = go_map(self.annotations)
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Descriptor:
        plat = obj.get("platform")
        return cls(
            media_type=obj.get("mediaType", ""),
            size=int(obj.get("size", 0)),
            digest=obj.get("digest", ""),
            urls=tuple(obj.get("urls") or ()),
            annotations=dict(obj.get("annotations") or {}),
            platform=Platform.from_json(plat) if plat else None,
            artifact_type=obj.get("artifactType", ""),
        )


@dataclass(frozen=True, slots=True)
class Layer:
    """A compressed layer blob on disk and the digests that name it."""

    digest: str
    size: int
    diff_id: str
    path: Path
    media_type: str = OCI_LAYER_GZIP
    annotations: Mapping[str, str] = field(default_factory=dict)

    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.size, self.digest, annotations=self.annotations)

    def open(self) -> BinaryIO:
        return open(self.path, "rb")


@dataclass(frozen=True, slots=True)
class BlobLayer:
    """A layer held in memory, stored as is (cosign attachments: its diff_id is its digest)."""

    data: bytes
    media_type: str
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return sha256_digest(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def diff_id(self) -> str:
        return self.digest

    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.size, self.digest, annotations=dict(self.annotations))

    def open(self) -> BinaryIO:
        return io.BytesIO(self.data)


AnyLayer = Layer | BlobLayer


def write_layer(
    source: Source,
    directory: str | os.PathLike[str],
    *,
    compression: Literal["gzip", "zstd"] = "gzip",
    level: int | None = None,
    engine: Engine = DEFAULT_ENGINE,
    threads: int | None = None,
) -> Layer:
    """Compress a tar stream into `directory/<hex>` (temp file, then rename) and describe it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with staged_output(directory) as (f, place):
        result: Compressed = compress(
            source, f, compression=compression, level=level, engine=engine, threads=threads
        )
        final = place(digest_hex(result.digest))
    return Layer(result.digest, result.size, result.diff_id, final, result.media_type)


# --------------------------------------------------------------------------- config


@dataclass(frozen=True, slots=True)
class History:
    created: int = 0
    author: str = ""
    created_by: str = ""
    comment: str = ""
    empty_layer: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.author:
            out["author"] = self.author
        out["created"] = rfc3339(self.created)  # a Go struct is never "empty": always written
        if self.created_by:
            out["created_by"] = self.created_by
        if self.comment:
            out["comment"] = self.comment
        if self.empty_layer:
            out["empty_layer"] = True
        return out


@dataclass(frozen=True, slots=True)
class ContainerConfig:
    """ggcr `v1.Config`: the run-time settings. Empty fields are omitted (omitempty)."""

    cmd: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    user: str = ""
    volumes: tuple[str, ...] = ()
    working_dir: str = ""
    exposed_ports: tuple[str, ...] = ()
    stop_signal: str = ""
    shell: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        # ggcr's field order: AttachStd*, Cmd, Healthcheck, Domainname, Entrypoint, Env, Hostname,
        # Image, Labels, OnBuild, OpenStdin, StdinOnce, Tty, User, Volumes, WorkingDir,
        # ExposedPorts, ArgsEscaped, NetworkDisabled, MacAddress, StopSignal, Shell.
        if self.cmd:
            out["Cmd"] = list(self.cmd)
        if self.entrypoint:
            out["Entrypoint"] = list(self.entrypoint)
        if self.env:
            out["Env"] = list(self.env)
        if self.labels:
            out["Labels"] = go_map(self.labels)
        if self.user:
            out["User"] = self.user
        if self.volumes:
            out["Volumes"] = {v: {} for v in sorted(set(self.volumes))}
        if self.working_dir:
            out["WorkingDir"] = self.working_dir
        if self.exposed_ports:
            out["ExposedPorts"] = {p: {} for p in sorted(set(self.exposed_ports))}
        if self.stop_signal:
            out["StopSignal"] = self.stop_signal
        if self.shell:
            out["Shell"] = list(self.shell)
        return out


@dataclass(frozen=True, slots=True)
class ConfigFile:
    """ggcr `v1.ConfigFile`."""

    architecture: str
    diff_ids: tuple[str, ...]
    created: int = 0
    author: str = ""
    history: tuple[History, ...] = ()
    os: str = "linux"
    config: ContainerConfig = field(default_factory=ContainerConfig)
    os_version: str = ""
    variant: str = ""
    os_features: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"architecture": self.architecture}
        if self.author:
            out["author"] = self.author
        out["created"] = rfc3339(self.created)
        if self.history:
            out["history"] = [h.to_json() for h in self.history]
        out["os"] = self.os
        out["rootfs"] = {"type": "layers", "diff_ids": list(self.diff_ids)}
        out["config"] = self.config.to_json()
        if self.os_version:
            out["os.version"] = self.os_version
        if self.variant:
            out["variant"] = self.variant
        if self.os_features:
            out["os.features"] = list(self.os_features)
        return out


def config_json(cfg: ConfigFile) -> bytes:
    return marshal(cfg.to_json())


# --------------------------------------------------------------------------- apko's rules


def image_annotations(
    annotations: Mapping[str, str], created: int, vcs_url: str = ""
) -> dict[str, str]:
    """Manifest/index annotations and config Labels: the config's, VCS source and revision
    when `vcs_url` is `url@commit`, and the creation time."""
    out = dict(annotations)
    url, at, rev = vcs_url.partition("@")
    if at:
        out[ANN_SOURCE] = url
        out[ANN_REVISION] = rev
    out[ANN_CREATED] = rfc3339(created)
    return out


def history_comment(annotations: Mapping[str, str], layer_count: int) -> str:
    if ANN_TITLE in annotations and ANN_VENDOR in annotations:
        return f"{annotations[ANN_TITLE]} by {annotations[ANN_VENDOR]}"
    return SINGLE_LAYER_COMMENT if layer_count <= 1 else ""


def environment(env: Mapping[str, str] | None) -> tuple[str, ...]:
    """`K=V` strings, sorted, with apko's PATH and SSL_CERT_FILE added when the key is absent."""
    merged = dict(env or {})
    for key, value in DEFAULT_ENV.items():
        merged.setdefault(key, value)
    return tuple(sorted(f"{k}={v}" for k, v in merged.items()))


def entrypoint(command: str = "", shell_fragment: str = "") -> tuple[str, ...]:
    """apko's entrypoint: a shell fragment runs under `/bin/sh -c`, a command is split."""
    if shell_fragment:
        return ("/bin/sh", "-c", shell_fragment)
    if command:
        try:
            return tuple(shlex.split(command))
        except shlex.ShlexError as e:
            raise ImageError(f"unable to parse entrypoint command: {e}") from e
    return ()


def apko_config(
    *,
    platform: Platform,
    diff_ids: Sequence[str],
    created: int,
    annotations: Mapping[str, str] | None = None,
    vcs_url: str = "",
    entrypoint_command: str = "",
    shell_fragment: str = "",
    cmd: str = "",
    env: Mapping[str, str] | None = None,
    user: str = "",
    working_dir: str = "",
    stop_signal: str = "",
    volumes: Sequence[str] = (),
    os_features: Sequence[str] = (),
    author: str = APKO_AUTHOR,
    created_by: str = APKO_HISTORY_BY,
) -> ConfigFile:
    """The config apko's BuildImageFromLayers writes for these settings (author/created_by
    default to apko's strings so the bytes can match apko's)."""
    annotations = dict(annotations or {})
    labels = image_annotations(annotations, created, vcs_url)
    comment = history_comment(annotations, len(diff_ids))
    try:
        cmd_words = tuple(shlex.split(cmd)) if cmd else ()
    except shlex.ShlexError as e:
        raise ImageError(f"unable to parse cmd: {e}") from e
    return ConfigFile(
        architecture=platform.architecture,
        variant=platform.variant,
        diff_ids=tuple(diff_ids),
        created=created,
        author=author,
        history=tuple(
            History(created=created, author=created_by, created_by=created_by, comment=comment)
            for _ in diff_ids
        ),
        os=platform.os or "linux",
        os_features=tuple(os_features),
        config=ContainerConfig(
            cmd=cmd_words,
            entrypoint=entrypoint(entrypoint_command, shell_fragment),
            env=environment(env),
            labels=labels,
            user=user,
            volumes=tuple(volumes),
            working_dir=working_dir,
            stop_signal=stop_signal,
        ),
    )


# --------------------------------------------------------------------------- manifest, index



def arch_config(settings: dict, arch: str, diff_ids: Sequence[str]) -> ConfigFile:
    """The config of one arch from the image settings the engine writes (`image.json`'s "image")."""
    return apko_config(platform=Platform.from_arch(arch), diff_ids=list(diff_ids), **settings)

def manifest_json(
    config_desc: Descriptor,
    layer_descs: Sequence[Descriptor],
    annotations: Mapping[str, str] | None = None,
    media_type: str = OCI_MANIFEST,
) -> bytes:
    """ggcr `v1.Manifest`: schemaVersion, mediaType, config, layers, annotations."""
    out: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": config_desc.to_json(),
        "layers": [d.to_json() for d in layer_descs],
    }
    if annotations:
        out["annotations"] = go_map(annotations)
    return marshal(out)


def index_json(
    manifests: Sequence[Descriptor],
    annotations: Mapping[str, str] | None = None,
    media_type: str = OCI_INDEX,
) -> bytes:
    """ggcr `v1.IndexManifest`, manifests in the order given (see `sort_by_platform`)."""
    out: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [d.to_json() for d in manifests],
    }
    if annotations:
        out["annotations"] = go_map(annotations)
    return marshal(out)


def sort_by_platform(descs: Iterable[Descriptor]) -> list[Descriptor]:
    """apko's index order: by architecture string, so `arm/v6` < `arm/v7` < `arm64`."""
    return sorted(descs, key=lambda d: d.platform.arch.encode() if d.platform else b"")


@dataclass(frozen=True, slots=True)
class Image:
    """One platform's image: raw config and manifest bytes plus its layer blobs."""

    config: bytes
    manifest: bytes
    layers: tuple[AnyLayer, ...]
    platform: Platform | None  # None for artifacts (attachments) that name no platform
    media_type: str = OCI_MANIFEST
    config_media_type: str = OCI_CONFIG

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)

    @property
    def config_digest(self) -> str:
        return sha256_digest(self.config)

    def descriptor(self) -> Descriptor:
        """The index entry: platform, and artifactType = the config media type as ggcr fills it."""
        return Descriptor(
            self.media_type, len(self.manifest), self.digest,
            platform=self.platform, artifact_type=self.config_media_type,
        )


def build_image(
    config: ConfigFile,
    layers: Sequence[Layer],
    annotations: Mapping[str, str] | None = None,
    platform: Platform | None = None,
) -> Image:
    """Serialise config and manifest for `layers` (whose diff_ids must match the config's)."""
    if tuple(l.diff_id for l in layers) != tuple(config.diff_ids):
        raise ImageError("config rootfs diff_ids do not match the layers")
    raw_config = config_json(config)
    config_desc = Descriptor(OCI_CONFIG, len(raw_config), sha256_digest(raw_config))
    raw_manifest = manifest_json(config_desc, [l.descriptor() for l in layers], annotations)
    if platform is None:
        platform = Platform(
            architecture=config.architecture, os=config.os, variant=config.variant,
            os_version=config.os_version, os_features=config.os_features,
        )
    return Image(raw_config, raw_manifest, tuple(layers), platform)


@dataclass(frozen=True, slots=True)
class Index:
    """An image index: raw bytes plus the images it lists, in index order."""

    manifest: bytes
    images: tuple[Image, ...]
    media_type: str = OCI_INDEX

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)

    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, len(self.manifest), self.digest)


def build_index(images: Sequence[Image], annotations: Mapping[str, str] | None = None) -> Index:
    """apko's GenerateIndex: images sorted by architecture string, each with artifactType."""
    ordered = sorted(images, key=lambda im: im.platform.arch.encode())
    arches = [im.platform.arch for im in ordered]
    if len(set(arches)) != len(arches):
        raise ImageError(f"two images for one platform in an index: {arches}")
    raw = index_json([im.descriptor() for im in ordered], annotations)
    return Index(raw, tuple(ordered))
