"""The templates ship inside the wheel: an installed mlpack renders like a checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_wheel_ships_the_templates_and_renders_from_them(tmp_path: Path) -> None:
    pytest.importorskip("setuptools")
    wheel_dir = tmp_path / "wheel"
    # No build isolation: the venv's setuptools builds it, no index needed.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    str(REPO), "-w", str(wheel_dir)], check=True, timeout=600, capture_output=True)
    wheel = next(wheel_dir.glob("mlpack-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for template in ("base.Dockerfile.j2", "cpu.Dockerfile.j2", "gpu.Dockerfile.j2", "dockerignore.j2"):
        assert f"mlpack/dockerfile/templates/{template}" in names
    assert "mlpack/dockerfile/__init__.py" in names

    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, timeout=300, capture_output=True)
    # -I: ignore PYTHONPATH and the user site, so only the installed copy is seen
    # (the checkout's editable finder is in the venv's site-packages, which -I
    # keeps, hence the explicit sys.path insert in front of it).
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "import mlpack.dockerfile as d; print(d.__file__); print(d.templates_dir())"
    )
    out = subprocess.run([sys.executable, "-I", "-c", code, str(target)], check=True, capture_output=True,
                         text=True, timeout=60, cwd=tmp_path).stdout.split()
    assert out[0].startswith(str(target)), out
    assert out[1] == str(target / "mlpack" / "dockerfile" / "templates"), out
