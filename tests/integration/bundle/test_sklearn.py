"""scikit-learn estimators and Pipelines → ONNX, parity through real onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("skl2onnx", reason="skl2onnx is not installed (mlpack[notebook])")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (mlpack[serve])")

from mlpack.bundle import Bundle, capture  # noqa: E402
from tests.integration.bundle.helpers import check_round_trip  # noqa: E402


@pytest.mark.parametrize("fixture", ["sklearn_classifier", "sklearn_gbm_classifier", "sklearn_pipeline"])
def test_classifiers_give_labels_and_probabilities(fixture: str, request: pytest.FixtureRequest, out: Path) -> None:
    trained = request.getfixturevalue(fixture)
    bundle = capture(trained.model, trained.sample, name="clf", path=out / fixture)
    assert bundle.flavor == "onnx" and bundle.framework == "sklearn" and bundle.model_path.name == "model.onnx"
    assert [(o.name, o.dtype, o.shape) for o in bundle.outputs] == [
        ("label", "int64", (None,)),
        ("probabilities", "float32", (None, 3)),
    ]
    parity = bundle.parity
    assert parity["rows"] == len(trained.sample) and parity["outputs"]["label"]["mismatches"] == 0
    assert parity["outputs"]["probabilities"]["max_abs_error"] < 1e-4
    outputs = check_round_trip(bundle, {"input": trained.X[:77].astype(np.float32)})
    np.testing.assert_array_equal(outputs["label"], trained.model.predict(trained.X[:77].astype(np.float32).astype(np.float64)))
    assert not any("scikit-learn" in line for line in bundle.requirements)  # serving deps only
    assert set(bundle.manifest["model"]["converted_with"]) == {"scikit-learn", "skl2onnx", "onnx"}
    assert repr(bundle).startswith("<Bundle clf onnx/sklearn at ")


def test_regressor(sklearn_regressor, out: Path) -> None:
    bundle = capture(sklearn_regressor.model, sklearn_regressor.sample, path=out / "reg")
    assert bundle.name == "gradientboostingregressor"
    assert [(o.name, o.dtype, o.shape) for o in bundle.outputs] == [("prediction", "float32", (None,))]
    assert bundle.parity["outputs"]["prediction"]["kind"] == "float"
    outputs = check_round_trip(bundle, {"input": sklearn_regressor.X[:50]})  # float64 feeds are cast
    np.testing.assert_allclose(
        outputs["prediction"].ravel(), sklearn_regressor.model.predict(sklearn_regressor.X[:50].astype(np.float32)), rtol=1e-3, atol=1e-3
    )


def test_string_class_labels(sklearn_classifier, out: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    names = np.array(["setosa", "versicolor", "virginica"])[sklearn_classifier.y]
    model = LogisticRegression(max_iter=500).fit(sklearn_classifier.X, names)
    bundle = capture(model, sklearn_classifier.X[::10], name="iris-names", path=out / "names")
    assert bundle.outputs[0].dtype == "str"
    assert set(bundle.expected()["label"].tolist()) <= set(names)
    outputs = check_round_trip(bundle, {"input": sklearn_classifier.X[:9]})
    assert outputs["label"].tolist() == model.predict(sklearn_classifier.X[:9].astype(np.float32).astype(np.float64)).tolist()


def test_python_flavour_round_trips(sklearn_pipeline, out: Path) -> None:
    bundle = capture(sklearn_pipeline.model, sklearn_pipeline.sample, name="pipe-py", path=out / "py", flavor="python")
    assert bundle.flavor == "python" and bundle.model_path.name == "model.pkl"
    dists = bundle.manifest["model"]["distributions"]
    from importlib import metadata

    assert dists["scikit-learn"] == metadata.version("scikit-learn") and "numpy" in dists
    assert f"scikit-learn=={metadata.version('scikit-learn')}" in bundle.requirements
    assert not any(line.startswith("onnxruntime==") for line in bundle.requirements)
    assert bundle.manifest["model"]["entry"]["outputs"] == {"label": "predict", "probabilities": "predict_proba"}
    outputs = check_round_trip(bundle, {"input": sklearn_pipeline.X[:30]})
    np.testing.assert_array_equal(outputs["label"], sklearn_pipeline.model.predict(sklearn_pipeline.X[:30].astype(np.float32).astype(np.float64)))
    assert bundle.parity["outputs"]["probabilities"]["max_abs_error"] == 0.0


@pytest.mark.filterwarnings("ignore:y contains no unlabeled samples")
def test_auto_falls_back_to_python_when_conversion_fails(sklearn_classifier, out: Path) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.semi_supervised import SelfTrainingClassifier

    # skl2onnx has no converter for SelfTrainingClassifier.
    model = SelfTrainingClassifier(HistGradientBoostingClassifier(max_iter=5)).fit(sklearn_classifier.X, sklearn_classifier.y)
    bundle = capture(model, sklearn_classifier.sample, name="selftrain", path=out / "st")
    assert bundle.flavor == "python"
    assert "cannot convert" in bundle.manifest["model"]["conversion_error"]
    check_round_trip(bundle, {"input": sklearn_classifier.X[:12]})


def test_hooks_are_stored_and_hashed(sklearn_classifier, out: Path) -> None:
    source = "def preprocess(inputs):\n    return inputs\n\ndef postprocess(outputs):\n    return outputs\n"
    bundle = capture(sklearn_classifier.model, sklearn_classifier.sample, name="hooked", path=out / "h", hooks_source=source)
    assert bundle.hooks_path == bundle.path / "hooks.py" and bundle.hooks_path.read_text() == source
    assert "hooks.py" in bundle.manifest["files"]
    bundle.hooks_path.write_text(source + "import os\n")
    from mlpack.errors import BundleError

    with pytest.raises(BundleError, match="hooks.py was modified"):
        Bundle.load(bundle.path)


def test_parity_reuses_the_preprocessed_answer_capture_stored(sklearn_regressor, out: Path) -> None:
    """With a preprocess hook, capture stores the model's answer on the preprocessed
    sample, so container parity never prepares or runs the model a second time."""
    from mlpack import parity

    source = "def preprocess(inputs):\n    return {k: v * 2.0 for k, v in inputs.items()}\n"
    model, sample = sklearn_regressor.model, sklearn_regressor.sample
    bundle = capture(model, sample, name="doubled", path=out / "d", hooks_source=source)
    assert bundle.manifest["expected_preprocessed"] == "expected_preprocessed.npz"
    stored = bundle.expected(preprocessed=True)
    rows = next(iter(bundle.sample().values()))
    np.testing.assert_allclose(stored["prediction"].ravel(), model.predict(rows * 2.0), rtol=1e-5)
    assert not np.allclose(stored["prediction"], bundle.expected()["prediction"])

    class Untouchable:  # any use of the model in the kernel part of parity fails the test
        def __getattr__(self, name: str) -> None:
            raise AssertionError(f"parity touched the model ({name})")

    kernel = parity.kernel_outputs(Untouchable(), sample, bundle, source)
    np.testing.assert_array_equal(kernel["prediction"], stored["prediction"])


def test_a_preprocess_that_fails_on_the_sample_fails_capture(sklearn_regressor, out: Path) -> None:
    from mlpack.errors import CaptureError

    source = "def preprocess(inputs):\n    raise KeyError('no such column')\n"
    with pytest.raises(CaptureError, match="preprocess failed on the sample") as info:
        capture(sklearn_regressor.model, sklearn_regressor.sample, name="bad", path=out / "bad", hooks_source=source)
    assert "no such column" in info.value.traceback and not (out / "bad").exists()


def test_recapture_replaces_an_existing_bundle(sklearn_classifier, sklearn_regressor, out: Path) -> None:
    first = capture(sklearn_classifier.model, sklearn_classifier.sample, name="same", path=out / "same")
    second = capture(sklearn_regressor.model, sklearn_regressor.sample, name="same", path=out / "same")
    assert first.path == second.path and Bundle.load(out / "same").outputs[0].name == "prediction"
    assert sorted(p.name for p in out.iterdir()) == ["same"]  # no staging leftovers


def test_default_path_is_under_bundles(sklearn_classifier, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    bundle = capture(sklearn_classifier.model, sklearn_classifier.sample, name="here")
    assert bundle.path == (tmp_path / "bundles" / "here").resolve()


def test_public_capture_delegates(sklearn_classifier, out: Path) -> None:
    import mlpack

    bundle = mlpack.capture(sklearn_classifier.model, sklearn_classifier.sample, name="api", path=out / "api")
    assert isinstance(bundle, mlpack.Bundle) and bundle.parity["passed"]
