"""apko's image configuration records and architecture names."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from distroless import arch
from distroless.config.positions import Mark

# --- architectures --------------------------------------------------------------------------

ALL_ARCHS = arch.ALL
parse_architecture = arch.parse  # apko's ParseArchitecture
arch_to_apk = arch.to_apk


def host_architecture() -> str:
    import platform

    return arch.from_machine(platform.machine())


def parse_architectures(values: Iterable[str]) -> tuple[str, ...]:
    """apko's ParseArchitectures (the --arch flag): a lone `all` is every arch, a lone `host`
    the running machine's; otherwise normalise, de-duplicate and sort bytewise."""
    names = [v for v in values if v]
    if names == ["all"]:
        return ALL_ARCHS
    if names == ["host"]:
        names = [host_architecture()]
    return tuple(sorted({parse_architecture(n) for n in names}, key=lambda s: s.encode()))


# --- records --------------------------------------------------------------------------------

StrMap = Mapping[str, str]
_EMPTY_MAP: StrMap = MappingProxyType({})


def _frozen_map(items: Mapping[str, str]) -> StrMap:
    return MappingProxyType(dict(items))


@dataclass(frozen=True, slots=True)
class BaseImage:
    image: str = ""
    apkindex: str = ""


@dataclass(frozen=True, slots=True)
class RuntimeKey:
    """An inline public key written to /etc/apk/keys/<name> after the build."""

    name: str
    content: str
    origin: Mark | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Contents:
    build_repositories: tuple[str, ...] = ()
    runtime_repositories: tuple[str, ...] = ()
    repositories: tuple[str, ...] = ()
    keyring: tuple[str, ...] = ()
    runtime_keyring: tuple[RuntimeKey, ...] = ()
    packages: tuple[str, ...] = ()
    baseimage: BaseImage | None = None


@dataclass(frozen=True, slots=True)
class Entrypoint:
    type: str = ""
    command: str = ""
    shell_fragment: str = ""
    services: StrMap | None = None  # None = absent; an explicit `{}` still counts as set

    def is_zero(self) -> bool:
        return not (self.type or self.command or self.shell_fragment) and self.services is None


@dataclass(frozen=True, slots=True)
class User:
    username: str = ""
    uid: int = 0
    gid: int | None = None  # None: the user's primary group id is its uid
    shell: str = ""
    homedir: str = ""

    @property
    def primary_gid(self) -> int:
        return self.uid if self.gid is None else self.gid

    @property
    def login_shell(self) -> str:
        return self.shell or "/bin/sh"


@dataclass(frozen=True, slots=True)
class Group:
    groupname: str = ""
    gid: int = 0
    members: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Accounts:
    run_as: str = ""
    users: tuple[User, ...] = ()
    groups: tuple[Group, ...] = ()


PATH_TYPES = ("directory", "empty-file", "hardlink", "symlink", "permissions")


@dataclass(frozen=True, slots=True)
class PathMutation:
    path: str = ""
    type: str = ""
    uid: int | None = None  # None = absent: ownership untouched unless gid is set; 0 chowns to root
    gid: int | None = None
    permissions: int = 0  # apko chmods to this even when omitted, i.e. to 0000
    source: str = ""
    recursive: bool = False


@dataclass(frozen=True, slots=True)
class Layering:
    strategy: str = ""
    budget: int = 0

    def is_empty(self) -> bool:
        return not self.strategy and not self.budget


@dataclass(frozen=True, slots=True)
class Certificate:
    name: str
    content: str


@dataclass(frozen=True, slots=True)
class Certificates:
    additional: tuple[Certificate, ...] = ()
    providers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """One apko image configuration. Maps are read-only; records compare by value."""

    contents: Contents = Contents()
    entrypoint: Entrypoint = Entrypoint()
    cmd: str = ""
    stop_signal: str = ""
    work_dir: str = ""
    accounts: Accounts = Accounts()
    archs: tuple[str, ...] = ()
    environment: StrMap = field(default_factory=lambda: _EMPTY_MAP)
    paths: tuple[PathMutation, ...] = ()
    vcs_url: str = ""
    annotations: StrMap = field(default_factory=lambda: _EMPTY_MAP)
    include: str = ""
    volumes: tuple[str, ...] = ()
    layering: Layering | None = None
    format: str = ""
    certificates: Certificates | None = None

    @property
    def layer_format(self) -> str:
        return self.format or "tar"

    @property
    def multi_layer(self) -> bool:
        # `layering: {}` behaves like no layering at all.
        return self.layering is not None and not self.layering.is_empty()


DEFAULT_ENVIRONMENT: StrMap = MappingProxyType({
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/bin:/usr/sbin:/sbin:/bin",
    "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt",
})


def image_environment(config: ImageConfig) -> dict[str, str]:
    """The environment of the OCI image config: the configured one plus apko's defaults for
    the keys it does not set (the defaults are not part of the configuration itself)."""
    env = dict(config.environment)
    for key, value in DEFAULT_ENVIRONMENT.items():
        env.setdefault(key, value)
    return env
