"""XGBoost and LightGBM (sklearn API) → ONNX with onnxmltools."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxmltools", reason="onnxmltools is not installed (mlpack[notebook])")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (mlpack[serve])")

from mlpack.bundle import capture  # noqa: E402
from tests.integration.bundle.helpers import check_round_trip  # noqa: E402


def _models(lib: str):
    if lib == "xgboost":
        xgb = pytest.importorskip("xgboost")
        return xgb.XGBClassifier(n_estimators=15, max_depth=3), xgb.XGBRegressor(n_estimators=15, max_depth=3)
    lgb = pytest.importorskip("lightgbm")
    return lgb.LGBMClassifier(n_estimators=15, verbose=-1), lgb.LGBMRegressor(n_estimators=15, verbose=-1)


@pytest.mark.parametrize("lib", ["xgboost", "lightgbm"])
def test_classifier(lib: str, sklearn_classifier, out: Path) -> None:
    clf, _ = _models(lib)
    clf.fit(sklearn_classifier.X, sklearn_classifier.y)
    bundle = capture(clf, sklearn_classifier.sample, name=f"{lib}-clf", path=out / "c")
    assert bundle.flavor == "onnx" and bundle.framework == lib
    assert [(o.name, o.dtype, o.shape) for o in bundle.outputs] == [
        ("label", "int64", (None,)),
        ("probabilities", "float32", (None, 3)),
    ]
    outputs = check_round_trip(bundle, {"input": sklearn_classifier.X[::3]})
    np.testing.assert_array_equal(outputs["label"], clf.predict(sklearn_classifier.X[::3].astype(np.float32)))
    assert not any(line.lower().startswith((lib, "onnxmltools")) for line in bundle.requirements)


@pytest.mark.parametrize("lib", ["xgboost", "lightgbm"])
def test_regressor(lib: str, sklearn_regressor, out: Path) -> None:
    _, reg = _models(lib)
    reg.fit(sklearn_regressor.X, sklearn_regressor.y)
    bundle = capture(reg, sklearn_regressor.sample, name=f"{lib}-reg", path=out / "r")
    assert [(o.name, o.shape) for o in bundle.outputs] == [("prediction", (None, 1))]
    assert bundle.parity["outputs"]["prediction"]["passed"]
    check_round_trip(bundle, {"input": sklearn_regressor.X[:31]})


@pytest.mark.parametrize("lib", ["xgboost", "lightgbm"])
def test_python_flavour_pins_the_library(lib: str, sklearn_classifier, out: Path) -> None:
    from importlib import metadata

    clf, _ = _models(lib)
    clf.fit(sklearn_classifier.X, sklearn_classifier.y)
    bundle = capture(clf, sklearn_classifier.sample, name=f"{lib}-py", path=out / "p", flavor="python")
    assert f"{lib}=={metadata.version(lib)}" in bundle.requirements
    check_round_trip(bundle, {"input": sklearn_classifier.X[:7]})
