"""Errors the engine raises for bad input. Each names the file, member or field at fault."""

from __future__ import annotations


class DistrolessError(Exception):
    """Base for every error the CLI reports as a clean one-line message (never a traceback)."""


class FormatError(DistrolessError):
    """Input bytes do not follow the format (gzip, tar, PKGINFO, APKINDEX, PEM, ...)."""


class VerificationError(DistrolessError):
    """A checksum or signature check failed."""


class LimitError(DistrolessError):
    """A size cap was exceeded (decompression bomb guard)."""


class ResolveError(DistrolessError):
    """The requested world has no installable solution; the message names the failing chain."""


class FetchError(DistrolessError):
    """A download failed, or (offline) the cache does not hold what is needed."""


class ConfigError(DistrolessError):
    """A configuration file (apko image YAML, melange recipe) or a CLI override is invalid.

    The message starts with `file:line:column: dotted.path:` when the position is known."""


class KeyFileError(DistrolessError):
    """A signing key file is unreadable, corrupt, of an unsupported kind, or the password is wrong.

    The message names the file (never the password)."""


class RegistryError(DistrolessError):
    """A registry request failed; the message names the method, URL or reference."""


class RegistryAuthError(RegistryError):
    """The registry refused the credentials (401) or the action (403)."""


class RegistryNotFoundError(RegistryError):
    """The registry has no such repository, manifest, tag or blob (404)."""


class InvalidReferenceError(DistrolessError):
    """A string is not an image reference (`host[:port]/repo[:tag][@sha256:…]`)."""


class StepError(DistrolessError):
    """A step's inputs do not fit together (wrong order, wrong arch, too few layer outputs)."""
