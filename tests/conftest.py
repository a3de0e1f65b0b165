"""Fixtures shared by the whole suite.

Stage-specific fixtures that start real services or build real images live in
tests/plugins/ (one module per stage) and are session-scoped: a run builds
each base image and each serving image once and shares it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from mlpack.settings import Settings

pytest_plugins = [
    "tests.plugins.models",
    "tests.plugins.oci",
    "tests.plugins.runtime",
    "tests.plugins.images",
    "tests.plugins.server",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(__file__).parent
    for item in items:
        path = Path(str(item.fspath))
        if root / "integration" in path.parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def run_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """mlpack home shared by the whole run (store, layer cache, build cache).

    tests/run.sh points MLPACK_TEST_HOME at a fresh directory per run; a bare
    pytest gets a temporary one.
    """
    home = os.environ.get("MLPACK_TEST_HOME")
    path = Path(home) if home else tmp_path_factory.mktemp("mlpack-home")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def run_settings(run_home: Path) -> Settings:
    """Settings over the shared run home."""
    return Settings.from_env({"MLPACK_HOME": str(run_home)})


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings over a private, empty home for one test."""
    return Settings.from_env({"MLPACK_HOME": str(tmp_path / "mlpack-home")})


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (namespaces, cgroups, overlayfs)")


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed; tests/run.sh installs it")
    return path
