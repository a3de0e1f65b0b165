"""examples/capture_sklearn.py runs as documented and leaves a loadable bundle."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlpack.bundle import Bundle

ROOT = Path(__file__).resolve().parents[3]


def test_capture_example(tmp_path: Path) -> None:
    pytest.importorskip("skl2onnx", reason="skl2onnx is not installed (mlpack[notebook])")
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "capture_sklearn.py"), str(tmp_path / "iris")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "parity     passed" in result.stdout and "labels for the stored sample rows" in result.stdout
    bundle = Bundle.load(tmp_path / "iris")
    assert bundle.framework == "sklearn" and bundle.flavor == "onnx"
