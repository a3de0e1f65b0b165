"""Session fixtures for the models side of the suite.

Small trained models (trained once per run, a second or two each) and
bundles captured from them under the run home, which the render, build,
server and run tests share. Each fixture skips with a reason when the
framework it needs is not installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest


@dataclass(frozen=True)
class Trained:
    """A fitted model with its data: ``sample`` is what a user would pass to capture."""

    model: Any
    X: np.ndarray
    y: np.ndarray

    @property
    def sample(self) -> np.ndarray:
        return self.X[::4]  # every 4th row: all classes of a sorted data set like iris


def _iris() -> tuple[np.ndarray, np.ndarray]:
    datasets = pytest.importorskip("sklearn.datasets", reason="scikit-learn is not installed (mlpack[notebook])")
    X, y = datasets.load_iris(return_X_y=True)  # ships with scikit-learn, no download
    return X, y


@pytest.fixture(scope="session")
def sklearn_classifier() -> Trained:
    """LogisticRegression on iris (3 classes, 4 float features)."""
    linear = pytest.importorskip("sklearn.linear_model")
    X, y = _iris()
    return Trained(linear.LogisticRegression(max_iter=500).fit(X, y), X, y)


@pytest.fixture(scope="session")
def sklearn_gbm_classifier() -> Trained:
    """GradientBoostingClassifier on iris (tree ensemble: thresholds in float32)."""
    ensemble = pytest.importorskip("sklearn.ensemble")
    X, y = _iris()
    return Trained(ensemble.GradientBoostingClassifier(n_estimators=20, random_state=0).fit(X, y), X, y)


@pytest.fixture(scope="session")
def sklearn_regressor() -> Trained:
    """GradientBoostingRegressor on a synthetic 6-feature problem."""
    ensemble = pytest.importorskip("sklearn.ensemble")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 6))
    y = X @ np.array([3.0, -2.0, 0.5, 0.0, 1.0, 4.0]) + 0.1 * rng.normal(size=300)
    return Trained(ensemble.GradientBoostingRegressor(n_estimators=30, random_state=0).fit(X, y), X, y)


@pytest.fixture(scope="session")
def sklearn_pipeline() -> Trained:
    """StandardScaler + LogisticRegression Pipeline on iris."""
    pytest.importorskip("sklearn")
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = _iris()
    return Trained(make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y), X, y)


def _captured(run_home: Path, name: str, trained: Trained, **options: Any) -> Any:
    """Captures once per run home; a later session fixture call reuses the bundle."""
    from mlpack.bundle import Bundle, capture
    from mlpack.errors import BundleError

    path = run_home / "bundles" / name
    if (path / "mlpack.yaml").is_file():
        try:
            return Bundle.load(path)
        except BundleError:
            pass  # a broken leftover: capture again over it
    return capture(trained.model, trained.sample, name=name, path=path, **options)


@pytest.fixture(scope="session")
def sklearn_bundle(run_home: Path, sklearn_classifier: Trained) -> Any:
    """ONNX bundle of the iris LogisticRegression: input ``input`` float32 [batch, 4];
    outputs ``label`` int64 [batch] and ``probabilities`` float32 [batch, 3]."""
    pytest.importorskip("skl2onnx", reason="skl2onnx is not installed (mlpack[notebook])")
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (mlpack[serve])")
    return _captured(run_home, "iris", sklearn_classifier)


@pytest.fixture(scope="session")
def sklearn_python_bundle(run_home: Path, sklearn_classifier: Trained) -> Any:
    """The same iris model as a python-flavour bundle (model.pkl, scikit-learn in the lock)."""
    return _captured(run_home, "iris-python", sklearn_classifier, flavor="python")
