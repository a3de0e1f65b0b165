"""Integration helpers: RUN steps need root, overlayfs and an OCI runtime."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from mlpack.settings import Settings
from tests.unit.builder.helpers import Ctx


@pytest.fixture(autouse=True)
def _needs_root_and_runtime() -> None:
    if os.geteuid() != 0:
        pytest.skip("RUN steps need root (overlayfs, namespaces)")
    if not (shutil.which("crun") or shutil.which("runc")):
        pytest.skip("no OCI runtime (crun or runc); tests/run.sh installs them")


@pytest.fixture
def bctx(tmp_path: Path, run_settings: Settings, busybox_httpd_image: str) -> Ctx:
    """A context whose home shares the run store (the busybox base is there); own build cache."""
    root = tmp_path / "ctx"
    root.mkdir()
    return Ctx(root, run_settings)
