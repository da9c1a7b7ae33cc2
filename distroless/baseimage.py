"""`contents.baseimage`: building on top of an existing image, as apko does (its pkg/baseimg).

The base is an OCI layout (`image`) plus, per architecture, `<apkindex>/<apk arch>/APKINDEX`: the
base's installed database in the installed-db format. With it:

* the base's image for the arch is the one whose config names that architecture (a nested index
  in index.json is followed); its layers come first, unchanged, and its config is the starting
  point of the new one;
* its installed packages are pinned in the world (`name=version`) and resolvable, and are never
  reinstalled: the lock and the new layer hold only the packages on top;
* the installed database of the new layer lists the base's records first, then the new ones. The
  base records are what apko's `ParseInstalled` keeps of them, written back as apko writes them:
  a record is only kept when a blank line ends it, `M:`/`a:`/`Z:` are lost (every entry reads as
  0755/0644 root), `i:` is wrapped once more in brackets, and entries whose parent directories
  the record does not list are dropped.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field
from pathlib import Path

from distroless.apk.model import Package
from distroless.config import LoadedConfig, arch_to_apk
from distroless.config.model import BaseImage as BaseImageConfig
from distroless.errors import DistrolessError
from distroless.oci.image import Image, Platform
from distroless.oci.layout import load_image, read_blob, read_layout
from distroless.oci.mediatypes import IMAGE_TYPES, INDEX_TYPES
from distroless.oci.image import Descriptor
from distroless.rootfs.idb import IdbDir, IdbFile, IdbRecord

_DB_CAP = 64 << 20  # an installed database larger than this is not a base's metadata


class BaseImageError(DistrolessError):
    pass


@dataclass(frozen=True, slots=True)
class BaseRecord:
    """One installed package of the base: what the resolver sees, and apko's idb record of it."""

    package: Package
    record: IdbRecord


@dataclass(frozen=True, slots=True)
class Base:
    arch: str
    image: Image
    records: tuple[BaseRecord, ...] = field(default=())
    warnings: tuple[str, ...] = ()  # for the front door's events

    @property
    def packages(self) -> list[Package]:
        return [r.package for r in self.records]

    def pins(self) -> list[str]:
        """The world entries apko adds for the base: `name=version` of each installed package."""
        return [f"{p.name}={p.version}" for p in self.packages]

    def config_json(self) -> dict:
        return json.loads(self.image.config)


def _resolve_path(name: str, cwd: Path) -> Path:
    path = Path(name)
    return path if path.is_absolute() else cwd / path


def load(spec: BaseImageConfig, arch: str, *, cwd: Path | None = None) -> Base:
    """The base for one architecture (OCI spelling); paths are relative to `cwd`."""
    here = cwd or Path.cwd()
    image = image_for_arch(_resolve_path(spec.image, here), arch)
    db = _resolve_path(spec.apkindex, here) / arch_to_apk(arch) / "APKINDEX"
    try:
        with open(db, "rb") as f:
            data = f.read(_DB_CAP + 1)
    except OSError as e:
        raise BaseImageError(f"contents.baseimage.apkindex: {db}: {e.strerror}") from None
    if len(data) > _DB_CAP:
        raise BaseImageError(f"contents.baseimage.apkindex: {db}: larger than {_DB_CAP} bytes")
    text = data.decode("utf-8", "replace")
    return Base(arch, image, tuple(parse_installed(text, str(db))), unterminated(text, str(db)))


def image_for_arch(layout: Path, arch: str) -> Image:
    """apko's getImageForArch: the first image in the (un-nested) index whose config has the
    architecture; its layer blobs are checked against their digests before they are reused."""
    want = Platform.from_arch(arch).architecture
    try:
        lay = read_layout(layout)
    except DistrolessError as e:
        raise BaseImageError(f"contents.baseimage.image: {e}") from None
    manifests = list(lay.manifests)
    nested = next((d for d in manifests if d.media_type in INDEX_TYPES), None)
    if nested is not None:
        manifests = [Descriptor.from_json(m) for m in json.loads(read_blob(layout, nested)).get("manifests") or []]
    for desc in manifests:
        if desc.media_type not in IMAGE_TYPES:
            continue
        image = load_image(layout, desc, verify_layers=True)
        if json.loads(image.config).get("architecture") == want:
            return image
    raise BaseImageError(f"contents.baseimage.image: {layout}: no image for {arch} (image for arch not found)")


def parse_installed(text: str, source: str) -> list[BaseRecord]:
    """apko's ParseInstalled over a base's installed database, with its quirks (module doc)."""
    out: list[BaseRecord] = []
    fields: dict[str, str] = {}
    entries: list[tuple[str, bool]] = []  # (path, is a directory), in file order
    last_dir = ""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # a final newline ends the last line, it is not an empty line
    for n, line in enumerate(lines, 1):
        if line == "":
            if fields.get("P"):
                out.append(_record(fields, entries))
            fields, entries, last_dir = {}, [], ""
            continue
        if len(line) < 2 or line[1] != ":":
            raise BaseImageError(f"{source}: line {n}: expected \"<token>:<value>\", saw {line!r}")
        key, value = line[0], line[2:]
        if key == "F":
            last_dir = value
            if value:
                entries.append((value, True))
        elif key == "R":
            entries.append((posixpath.join(last_dir, value) if last_dir else value, False))
        elif key in "MaZ":
            continue  # lost: apko keeps a copy of the entry made before these lines
        else:
            fields[key] = value
    return out


def unterminated(text: str, source: str) -> tuple[str, ...]:
    """The warning for a last record that no blank line ends (apko does not read it)."""
    tail = text.rstrip("\n").rsplit("\n\n", 1)[-1]
    if text.endswith("\n\n") or not tail.strip():
        return ()
    name = next((line[2:] for line in tail.split("\n") if line.startswith("P:")), "")
    if not name:
        return ()
    return (f"{source}: the last record ({name}) is not ended by a blank line; apko does not read it, "
            "and neither does this build",)


def _int(fields: dict[str, str], key: str) -> int:
    try:
        return int(fields.get(key) or 0)
    except ValueError:
        raise BaseImageError(f"base installed database: package {fields.get('P')}: bad {key}: "
                             f"{fields[key]!r}") from None


def _record(f: dict[str, str], entries: list[tuple[str, bool]]) -> BaseRecord:
    split = lambda k: f[k].split(" ") if k in f else []  # noqa: E731  Go's strings.Split
    checksum = f.get("C", "")
    common = dict(name=f["P"], version=f.get("V", ""), arch=f.get("A", ""), license=f.get("L", ""),
                  description=f.get("T", ""), origin=f.get("o", ""), maintainer=f.get("m", ""),
                  url=f.get("U", ""), commit=f.get("c", ""), build_time=_int(f, "t"), size=_int(f, "S"),
                  installed_size=_int(f, "I"), provider_priority=_int(f, "k"),
                  checksum=checksum if checksum.startswith("Q1") else "")
    # what apko writes back: every list as split on " ", `i:` printed as Go's %s of that list
    shown = Package(**common, depends=split("D"), provides=split("p"), replaces=split("r"),
                    install_if=split("i"))
    # what resolves: the same record with its lists read sensibly
    clean = Package(**common, depends=f.get("D", "").split(), provides=f.get("p", "").split(),
                    replaces=f.get("r", "").split(), install_if=f.get("i", "").strip("[]").split())
    return BaseRecord(clean, IdbRecord(shown, _dirs(entries)))


def _dirs(entries: list[tuple[str, bool]]) -> list[IdbDir]:
    """apko's cleanTarHeaders: entries sorted as the database lists them, and those whose parent
    directories are not all listed dropped; then grouped per directory."""
    listed = {p.strip("/") for p, is_dir in entries if is_dir}

    def reachable(path: str) -> bool:
        parent = posixpath.dirname(path.strip("/"))
        while parent not in ("", "."):
            if parent not in listed:
                return False
            parent = posixpath.dirname(parent)
        return True

    dirs: dict[str, IdbDir] = {}
    for path, is_dir in entries:
        if not reachable(path):
            continue
        if is_dir:
            dirs.setdefault(path.strip("/"), IdbDir(path.strip("/")))
        else:
            parent = posixpath.dirname(path)
            dirs.setdefault(parent, IdbDir(parent)).files.append(IdbFile(posixpath.basename(path)))
    ordered = sorted(dirs.values(), key=lambda d: d.path.split("/") if d.path else [])
    for d in ordered:
        d.files.sort(key=lambda f: f.name.encode())
    return ordered


def for_config(loaded: LoadedConfig, arch: str) -> Base | None:
    spec = loaded.config.contents.baseimage
    return None if spec is None else load(spec, arch)


# --- the image on top (apko's BuildImageFromLayers with a base: ggcr mutate.Append) -------------

_CONTAINER_KEYS = ("Cmd", "Entrypoint", "Env", "Labels", "User", "Volumes", "WorkingDir", "ExposedPorts",
                   "StopSignal", "Shell")
_TOP_KEYS = ("architecture", "author", "created", "history", "os", "rootfs", "config", "os.version",
             "variant", "os.features")


def config_on_base(base: Base, *, platform: Platform, created: int, labels: dict[str, str],
                   env: list[str], new_diff_ids: list[str], comment: str,
                   overrides: dict[str, object]) -> dict:
    """The new image config: the base's, with its history and diff_ids extended by the new
    layers, apko's author, platform, creation time and labels, the environment replaced, and
    the run-time settings the configuration gives (`overrides`, ggcr key -> value) set."""
    from distroless.oci.gojson import rfc3339

    cfg = base.config_json()
    unknown = sorted(set(cfg) - set(_TOP_KEYS))
    inner = cfg.get("config") or {}
    unknown += sorted(f"config.{k}" for k in set(inner) - set(_CONTAINER_KEYS))
    if unknown:
        raise BaseImageError(f"contents.baseimage.image: base config field {unknown[0]} is not supported")
    container = {k: inner[k] for k in _CONTAINER_KEYS if inner.get(k)}
    container["Env"] = env
    container["Labels"] = labels
    container.update({k: v for k, v in overrides.items() if v})
    stamp = rfc3339(created)
    history = [_history(h) for h in cfg.get("history") or []]
    history += [{"author": "apko", "created": stamp, "created_by": "apko", **({"comment": comment} if comment else {})}
                for _ in new_diff_ids]
    out: dict = {"architecture": platform.architecture, "author": "github.com/chainguard-dev/apko",
                 "created": stamp, "history": history, "os": "linux",
                 "rootfs": {"type": "layers",
                            "diff_ids": list((cfg.get("rootfs") or {}).get("diff_ids") or []) + list(new_diff_ids)},
                 "config": {k: container[k] for k in _CONTAINER_KEYS if container.get(k)}}
    if cfg.get("os.version"):
        out["os.version"] = cfg["os.version"]
    if platform.variant:
        out["variant"] = platform.variant
    if cfg.get("os.features"):
        out["os.features"] = cfg["os.features"]
    return out


def _history(h: dict) -> dict:
    return {k: h[k] for k in ("author", "created", "created_by", "comment", "empty_layer") if h.get(k)}


def manifest_annotations(base: Base, annotations: dict[str, str]) -> dict[str, str]:
    """ggcr's mutate.Annotations: the base manifest's annotations, then the new ones over them."""
    return {**(json.loads(base.image.manifest).get("annotations") or {}), **annotations}


def refuse(loaded: LoadedConfig, front_door: str) -> None:
    """Front doors that build layers one at a time (Bazel, BuildKit) do not take a base yet."""
    if loaded.config.contents.baseimage is not None:
        from distroless.errors import ConfigError

        raise ConfigError(f"contents.baseimage is not supported by {front_door} (use `distroless image build`)")
