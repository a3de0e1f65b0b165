"""Fixtures for the capture integration tests (real converters, real onnxruntime)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """A directory for this test's bundles."""
    return tmp_path / "bundles"
