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


def test_serving_an_onnx_table_bundle_needs_no_pandas(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A DataFrame model converted to ONNX is served from its columns: no pandas in the image."""
    import pytest

    pd = pytest.importorskip("pandas")
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    from mlpack.bundle import capture

    frame = pd.DataFrame({"x": [0.5, 1.5, 2.5, 3.5] * 3, "c": ["a", "b", "a", "c"] * 3})
    model = Pipeline([("ct", ColumnTransformer([("oh", OneHotEncoder(), ["c"])], remainder="passthrough")),
                      ("lr", LogisticRegression())]).fit(frame, [0, 1, 0, 1] * 3)
    bundle = capture(model, frame, name="tiny-table", path=tmp_path / "t")
    assert bundle.flavor == "onnx" and bundle.table is not None
    code = (
        "from fastapi.testclient import TestClient\n"
        "from mlpack.server import ServerConfig, create_app\n"
        f"app = create_app({str(bundle.path)!r}, ServerConfig(access_log=False))\n"
        "with TestClient(app) as c:\n"
        "    assert app.state.loaded.wait(60)\n"
        "    r = c.post('/predict', json={'inputs': [{'x': 1.0, 'c': 'b'}]})\n"
        "    assert r.status_code == 200, r.text\n"
    )
    loaded = _modules_after(code)
    assert "onnxruntime" in loaded and "pandas" not in loaded
