"""Fixtures for the kube unit tests: one image known by digest."""

from __future__ import annotations

import pytest

from mlpack.kube import ImageInfo

DIGEST = "sha256:" + "3f" * 32


@pytest.fixture
def image() -> ImageInfo:
    """An image as the front door hands it over after a push."""
    return ImageInfo(
        reference="registry.example.com/team/iris-classifier:1.2.0",
        digest=DIGEST,
        user_uid=10001,
        user_gid=10001,
        port=8080,
        start_seconds=4.0,
        stop_grace_seconds=20,
    )
