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
    # Shaped like reg.predict's answer: [N], not the converter's [N, 1].
    assert [(o.name, o.shape) for o in bundle.outputs] == [("prediction", (None,))]
    assert bundle.parity["outputs"]["prediction"]["passed"]
    outputs = check_round_trip(bundle, {"input": sklearn_regressor.X[:31]})
    assert outputs["prediction"].shape == reg.predict(sklearn_regressor.X[:31]).shape == (31,)


@pytest.mark.parametrize("lib", ["xgboost", "lightgbm"])
def test_python_flavour_pins_the_library(lib: str, sklearn_classifier, out: Path) -> None:
    from importlib import metadata

    clf, _ = _models(lib)
    clf.fit(sklearn_classifier.X, sklearn_classifier.y)
    bundle = capture(clf, sklearn_classifier.sample, name=f"{lib}-py", path=out / "p", flavor="python")
    assert f"{lib}=={metadata.version(lib)}" in bundle.requirements
    check_round_trip(bundle, {"input": sklearn_classifier.X[:7]})


@pytest.mark.parametrize("lib", ["xgboost", "lightgbm"])
def test_inside_a_sklearn_pipeline(lib: str, sklearn_classifier, out: Path) -> None:
    from sklearn.feature_selection import VarianceThreshold
    from sklearn.pipeline import make_pipeline

    # A value-preserving first step: a StandardScaler computes in float64 in
    # sklearn but float32 in ONNX, which moves rows across tree thresholds and
    # (rightly) fails the probability tolerance; see test_scaled_trees_*.
    clf, _ = _models(lib)
    pipe = make_pipeline(VarianceThreshold(), clf).fit(sklearn_classifier.X, sklearn_classifier.y)
    bundle = capture(pipe, sklearn_classifier.sample, name=f"{lib}-pipe", path=out / "pipe")
    assert bundle.flavor == "onnx" and bundle.framework == "sklearn"
    assert [o.name for o in bundle.outputs] == ["label", "probabilities"]
    check_round_trip(bundle, {"input": sklearn_classifier.X[5:25]})


@pytest.mark.parametrize("lib", ["xgboost", "lightgbm"])
def test_raw_booster_is_refused_with_a_hint(lib: str, sklearn_classifier, out: Path) -> None:
    from mlpack.errors import CaptureError

    X, y = sklearn_classifier.X, sklearn_classifier.y
    if lib == "xgboost":
        xgb = pytest.importorskip("xgboost")
        booster = xgb.train({"objective": "multi:softprob", "num_class": 3}, xgb.DMatrix(X, label=y), 3)
    else:
        lgb = pytest.importorskip("lightgbm")
        booster = lgb.train({"objective": "multiclass", "num_class": 3, "verbose": -1}, lgb.Dataset(X, y), 3)
    with pytest.raises(CaptureError, match="not a .* sklearn-API model") as info:
        capture(booster, X[:5], name="raw", path=out / "raw")
    assert "Classifier" in info.value.hint


def test_scaled_trees_drift_is_caught_and_can_be_overridden(sklearn_classifier, out: Path) -> None:
    """XGBoost's hist cut points are training values; ONNX scales in float32, sklearn in
    float64, so training rows land on the other side of a split: parity says so."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mlpack.errors import CaptureError

    clf, _ = _models("xgboost")
    pipe = make_pipeline(StandardScaler(), clf).fit(sklearn_classifier.X, sklearn_classifier.y)
    try:
        bundle = capture(pipe, sklearn_classifier.X, name="scaled", path=out / "s")
    except CaptureError as exc:
        assert "probabilities [probability]" in str(exc) and "max abs error" in str(exc)
        bundle = capture(pipe, sklearn_classifier.X, name="scaled", path=out / "s", allow_parity_failure=True)
        assert bundle.parity["override"] is True and bundle.parity["passed"] is False
        assert bundle.parity["outputs"]["probabilities"]["mismatches"] > 0
    else:  # a converter or library change removed the drift: nothing to override
        assert bundle.parity["passed"]
