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
