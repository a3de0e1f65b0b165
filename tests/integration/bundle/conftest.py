"""Fixtures for the capture integration tests (real converters, real onnxruntime)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mlpack.settings import Settings
from tests.conftest import require_root


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """A directory for this test's bundles."""
    return tmp_path / "bundles"


@pytest.fixture(scope="module")
def container_settings(run_settings: Settings, base_image: object) -> Settings:
    """The run's settings once the offline base exists and containers can run (root, crun/runc)."""
    require_root()
    if not (shutil.which("crun") or shutil.which("runc")):
        pytest.skip("neither crun nor runc is installed; tests/run.sh installs them")
    return run_settings
