"""Image references: `[host[:port]/]repo[/more][:tag][@sha256:<hex>]`, with Docker Hub defaults.

Docker Hub is spelled `index.docker.io` and official images get `library/`, as cosign writes
them into signature payloads (signing notes §1.3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from distroless.errors import InvalidReferenceError

DOCKER_HUB = "index.docker.io"
_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io"}
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_HOST = re.compile(r"(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::[0-9]+)?")


@dataclass(frozen=True, slots=True)
class Reference:
    registry: str
    repository: str
    tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        """`registry/repository`: cosign's default signature identity."""
        return f"{self.registry}/{self.repository}"

    @property
    def ref(self) -> str:
        """What to ask the registry for: the digest when known, else the tag (default latest)."""
        return self.digest or self.tag or "latest"

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.registry, self.repository, self.tag, digest)

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.registry, self.repository, tag, "")

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def _split_host(name: str) -> tuple[str, str]:
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        return first, rest
    return DOCKER_HUB, name


def parse_reference(text: str, *, default_tag: str = "") -> Reference:
    """Parse and normalise; raises InvalidReferenceError naming the string."""
    s = text.strip()
    digest = ""
    if "@" in s:
        s, _, digest = s.partition("@")
        if not _DIGEST.fullmatch(digest):
            raise InvalidReferenceError(f"{text!r}: bad digest {digest!r} (sha256:<64 hex> expected)")
    tag = ""
    slash, colon = s.rfind("/"), s.rfind(":")
    if colon > slash:
        s, tag = s[:colon], s[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise InvalidReferenceError(f"{text!r}: bad tag {tag!r}")
    host, repo = _split_host(s)
    if not _HOST.fullmatch(host):
        raise InvalidReferenceError(f"{text!r}: bad registry host {host!r}")
    if host in _HUB_ALIASES:
        host = DOCKER_HUB
        if "/" not in repo:
            repo = f"library/{repo}"
    if not repo or not all(_COMPONENT.fullmatch(c) for c in repo.split("/")):
        raise InvalidReferenceError(f"{text!r}: bad repository name {repo!r} (lower-case path components)")
    if not tag and not digest:
        tag = default_tag
    return Reference(host, repo, tag, digest)


def normalize_name(name: str) -> str:
    """`registry/repository` of a name without tag or digest (Docker Hub normalised)."""
    return parse_reference(name).name
