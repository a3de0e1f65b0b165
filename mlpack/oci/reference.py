"""Image references for the store and registry: the one :mod:`mlpack.reference` type."""

from __future__ import annotations

from mlpack.reference import DOCKER_HUB, LOCAL_REGISTRY, Reference, parse

__all__ = ["Reference", "parse", "DOCKER_HUB", "LOCAL_REGISTRY"]
