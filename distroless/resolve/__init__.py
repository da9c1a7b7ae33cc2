"""Dependency resolution: an index of candidates (`Index`) and the search over it (`Resolver`)."""

from distroless.resolve.provider import Candidate, Index
from distroless.resolve.resolver import Resolver, resolve

__all__ = ["Candidate", "Index", "Resolver", "resolve"]
