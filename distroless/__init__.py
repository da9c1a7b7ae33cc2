"""distroless: apko/melange-compatible distroless image builds as cached steps of existing build systems."""

__version__ = "0.1.0"
