"""Repository and key locations as apko spells them: URLs, `file://`, plain paths, `@tag URL` pins."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from distroless.errors import FormatError

_PINNED = re.compile(r"^@([a-zA-Z0-9]+)\s+(\S+)$")


@dataclass(frozen=True, slots=True)
class Repository:
    url: str  # as written, without the `@tag ` prefix and trailing slashes
    pin: str = ""

    @classmethod
    def parse(cls, text: str) -> "Repository":
        text = text.strip()
        m = _PINNED.match(text)
        if m:
            return cls(m.group(2).rstrip("/"), m.group(1))
        if not text or text.startswith("@") or " " in text:
            raise FormatError(f"repository {text!r}: expected a URL or path, optionally prefixed by '@tag '")
        return cls(text.rstrip("/"))

    def __str__(self) -> str:
        return f"@{self.pin} {self.url}" if self.pin else self.url

    def index_url(self, arch: str) -> str:
        return f"{self.url}/{arch}/APKINDEX.tar.gz"

    def package_url(self, arch: str, name: str, version: str) -> str:
        return f"{self.url}/{arch}/{name}-{version}.apk"

    def lock_name(self, arch: str) -> str:
        """apko's lock `name`: the repository without its scheme, then the arch."""
        return f"{strip_scheme(self.url)}/{arch}"


def is_remote(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def local_path(location: str) -> str:
    """The filesystem path of a `file://` URL or plain path."""
    if location.startswith("file://"):
        return unquote(urlsplit(location).path)
    return location


def strip_scheme(location: str) -> str:
    for scheme in ("https://", "http://", "file://"):
        if location.startswith(scheme):
            return location[len(scheme):]
    return location
