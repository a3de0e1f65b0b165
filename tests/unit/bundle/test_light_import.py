"""The serving image has only numpy, yaml and onnxruntime: mlpack.bundle must not need more."""

from __future__ import annotations

import subprocess
import sys

from mlpack.bundle import Bundle

HEAVY = ("sklearn", "skl2onnx", "onnxmltools", "onnx", "torch", "xgboost", "lightgbm", "scipy", "pandas")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"],
        check=True, capture_output=True, text=True, timeout=120,
    ).stdout.split()
    return set(out)


def test_import_pulls_no_converter() -> None:
    loaded = _modules_after("import mlpack.bundle, mlpack")
    assert not loaded & set(HEAVY), loaded & set(HEAVY)
    assert "onnxruntime" not in loaded


def test_loading_and_running_an_onnx_bundle_needs_only_onnxruntime(sklearn_bundle: Bundle) -> None:
    code = (
        "from mlpack.bundle import Bundle\n"
        f"b = Bundle.load({str(sklearn_bundle.path)!r})\n"
        "out = b.load_predictor(threads=1).run(b.sample())\n"
        "assert out['label'].shape == (len(b.sample()['input']),)\n"
    )
    loaded = _modules_after(code)
    assert "onnxruntime" in loaded
    assert not loaded & set(HEAVY), loaded & set(HEAVY)
