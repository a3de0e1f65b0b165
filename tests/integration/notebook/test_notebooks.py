"""The notebooks in notebooks/ pass under nbval, executed for real against the run home.

Each notebook runs in its own pytest process (``pytest --nbval``): outputs
are compared with the stored ones after sanitize.cfg masks ports, digests,
times and sizes; cells whose whole output varies carry the
``nbval-ignore-output`` tag, and assert cells make each notebook able to fail.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.notebook, pytest.mark.runtime, pytest.mark.build, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[3]
SANITIZE = Path(__file__).with_name("sanitize.cfg")


def _nbval(notebook: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval", str(ROOT / "notebooks" / notebook),
         "--nbval-sanitize-with", str(SANITIZE), "--nbval-cell-timeout", "900",
         "-p", "no:cacheprovider", "-q", "-o", "addopts="],
        cwd=ROOT / "notebooks", env=env, capture_output=True, text=True, timeout=1800)


def _env(settings, **extra: str) -> dict[str, str]:
    env = dict(os.environ, MLPACK_HOME=str(settings.home), **extra)
    env.pop("MLPACK_PROGRESS", None)  # the kernel shows widgets, as in Jupyter
    return env


def test_quickstart_sklearn(e2e_settings) -> None:
    proc = _nbval("quickstart_sklearn.ipynb", _env(e2e_settings))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]


def test_dataframe_tabular(e2e_settings) -> None:
    if importlib.util.find_spec("pandas") is None:
        pytest.skip("pandas is not installed (the mlpack[notebook] extra)")
    proc = _nbval("dataframe_tabular.ipynb", _env(e2e_settings))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]


def test_pytorch_example(e2e_settings) -> None:
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed (pip install torch==2.13.0, the mlpack[torch] extra)")
    proc = _nbval("pytorch_example.ipynb", _env(e2e_settings))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]


@pytest.mark.registry
def test_deployment(e2e_settings, local_registry) -> None:
    proc = _nbval("deployment.ipynb", _env(e2e_settings, MLPACK_REGISTRY=local_registry.host,
                                           MLPACK_INSECURE_REGISTRIES=local_registry.host))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
