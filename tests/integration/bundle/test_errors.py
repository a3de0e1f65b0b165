"""Every bad input of capture gets its own CaptureError saying what to do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("skl2onnx", reason="skl2onnx is not installed (mlpack[notebook])")

from mlpack.bundle import capture  # noqa: E402
from mlpack.errors import CaptureError  # noqa: E402


def _fails(match: str, model, sample, **kw) -> CaptureError:
    with pytest.raises(CaptureError, match=match) as info:
        capture(model, sample, **kw)
    assert info.value.hint, "every capture error says what to do"
    return info.value


class NotAModel:
    pass


def test_unsupported_model_type_names_the_supported_ones(sklearn_classifier, out: Path) -> None:
    err = _fails("cannot capture a .*NotAModel", NotAModel(), sklearn_classifier.sample, path=out / "x")
    for name in ("scikit-learn", "PyTorch", "XGBoost", "LightGBM", "ONNX"):
        assert name in err.hint
    _fails("cannot capture a builtins.dict", {"a": 1}, sklearn_classifier.sample, path=out / "x")


def test_wrong_number_of_features(sklearn_classifier, out: Path) -> None:
    err = _fails("3 feature column\\(s\\), the model was trained on 4", sklearn_classifier.model, sklearn_classifier.X[:5, :3], path=out / "x")
    assert err.expected_features == 4


def test_wrong_rank(sklearn_classifier, out: Path) -> None:
    _fails("2-D input", sklearn_classifier.model, sklearn_classifier.X[:4].reshape(4, 2, 2), path=out / "x")
    _fails("dimension", sklearn_classifier.model, sklearn_classifier.X[0], path=out / "x")


def test_wrong_dtype(sklearn_classifier, out: Path) -> None:
    err = _fails("not numbers", sklearn_classifier.model, sklearn_classifier.X[:5].astype(str), path=out / "x")
    assert "astype" in err.hint


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf(bad: float, sklearn_classifier, out: Path) -> None:
    x = sklearn_classifier.X[:5].copy()
    x[2, 1] = bad
    _fails("NaN or infinite", sklearn_classifier.model, x, path=out / "x")


@pytest.mark.parametrize("empty", [np.zeros((0, 4)), [], None])
def test_empty_sample(empty, sklearn_classifier, out: Path) -> None:
    _fails("empty|None", sklearn_classifier.model, empty, path=out / "x")


def test_unwritable_path(sklearn_classifier, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    err = _fails("cannot write the bundle", sklearn_classifier.model, sklearn_classifier.sample, path=blocker / "bundle")
    assert "writable" in err.hint
    _fails("not a directory", sklearn_classifier.model, sklearn_classifier.sample, path=blocker)


def test_existing_directory_that_is_not_a_bundle_is_kept(sklearn_classifier, tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("precious")
    _fails("not an mlpack bundle", sklearn_classifier.model, sklearn_classifier.sample, path=tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "precious"


@pytest.mark.parametrize("name", ["Iris", "my model", "iris:v1", "x" * 129, "-x"])
def test_bad_names(name: str, sklearn_classifier, out: Path) -> None:
    _fails("not a valid image name component", sklearn_classifier.model, sklearn_classifier.sample, name=name, path=out / "x")
    assert not out.exists(), "a bad name is refused before anything is written"


def test_unfitted_model(sklearn_classifier, out: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    _fails("not fitted", LogisticRegression(), sklearn_classifier.sample, path=out / "x")


def test_bad_flavor_and_hooks(sklearn_classifier, out: Path) -> None:
    model, sample = sklearn_classifier.model, sklearn_classifier.sample
    _fails("unknown flavor", model, sample, flavor="tensorflow", path=out / "x")
    _fails("not plain Python", model, sample, hooks_source="def preprocess(:", path=out / "x")
    _fails("neither preprocess", model, sample, hooks_source="x = 1\n", path=out / "x")


def test_transformer_without_predict(sklearn_classifier, out: Path) -> None:
    from sklearn.preprocessing import StandardScaler

    _fails("has no predict", StandardScaler().fit(sklearn_classifier.X), sklearn_classifier.sample, path=out / "x")


@pytest.mark.filterwarnings("ignore:y contains no unlabeled samples")
def test_onnx_only_flavour_when_conversion_fails(sklearn_classifier, out: Path) -> None:
    from sklearn.semi_supervised import SelfTrainingClassifier
    from sklearn.tree import DecisionTreeClassifier

    model = SelfTrainingClassifier(DecisionTreeClassifier(max_depth=2)).fit(sklearn_classifier.X, sklearn_classifier.y)
    err = _fails("does not convert to ONNX", model, sklearn_classifier.sample, flavor="onnx", path=out / "x")
    assert "flavor='python'" in err.hint


def test_errors_are_mlpack_errors() -> None:
    import mlpack

    assert issubclass(CaptureError, mlpack.MlpackError) and CaptureError.stage == "capture"


class HandRolled:
    """A predict() object defined in a notebook (here: a test module)."""

    def predict(self, x):
        return np.asarray(x).sum(axis=1)


def test_notebook_predict_object_needs_an_installed_package(sklearn_classifier, out: Path) -> None:
    err = _fails("no installed distribution provides", HandRolled(), sklearn_classifier.sample, path=out / "x")
    assert "tests" in err.modules
    assert not out.exists() or not any(out.iterdir()), "no staging directory is left behind"
