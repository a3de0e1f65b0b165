"""Integration helpers: RUN steps need root, overlayfs and an OCI runtime."""

from __future__ import annotations

import os
import shutil

import pytest


@pytest.fixture(autouse=True)
def _needs_root_and_runtime() -> None:
    if os.geteuid() != 0:
        pytest.skip("RUN steps need root (overlayfs, namespaces)")
    if not (shutil.which("crun") or shutil.which("runc")):
        pytest.skip("no OCI runtime (crun or runc); tests/run.sh installs them")
