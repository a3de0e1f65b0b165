"""Fixtures for builder tests (no root needed: builds without RUN)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlpack.settings import Settings
from tests.unit.builder.helpers import Ctx


@pytest.fixture
def ctx(tmp_path: Path, settings: Settings) -> Ctx:
    root = tmp_path / "ctx"
    root.mkdir()
    return Ctx(root, settings)
