"""The package record shared by .PKGINFO, APKINDEX, the installed database and the resolver."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Package:
    """One package version as an index or a .PKGINFO describes it.

    `size` is the .apk file size (index `S:`), `installed_size` the unpacked size (`I:`,
    PKGINFO `size`). `checksum` is the control member's identity, `Q1` + base64(SHA-1).
    """

    name: str
    version: str
    arch: str = ""
    description: str = ""
    url: str = ""
    license: str = ""
    origin: str = ""
    maintainer: str = ""
    commit: str = ""
    build_time: int = 0
    size: int = 0
    installed_size: int = 0
    provider_priority: int = 0
    checksum: str = ""
    datahash: str = ""
    depends: list[str] = field(default_factory=list)
    provides: list[str] = field(default_factory=list)
    install_if: list[str] = field(default_factory=list)
    replaces: list[str] = field(default_factory=list)
    triggers: list[str] = field(default_factory=list)
    # Set by whoever loaded the record: the repository URL it came from and its @tag pin.
    repository: str = ""
    pin: str = ""

    @property
    def filename(self) -> str:
        """The file name under `<repo>/<arch>/`, as apk-tools and apko build package URLs."""
        return f"{self.name}-{self.version}.apk"
