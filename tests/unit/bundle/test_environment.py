"""The requirements lock and the distributions behind a pickled model."""

from __future__ import annotations

from importlib import metadata

import pytest

from mlpack.bundle import environment as env
from mlpack.errors import CaptureError


def test_serving_lock_pins_the_serving_stack_only() -> None:
    pins = env.serving_lock()
    assert list(pins) == list(env.SERVING_DISTRIBUTIONS)
    assert pins["numpy"] == metadata.version("numpy")
    closure = env.pinned_closure(pins)
    names = {n.lower() for n in closure}
    assert {"onnxruntime", "numpy", "starlette", "uvicorn", "orjson", "pyyaml"} <= names
    assert not names & {"scikit-learn", "skl2onnx", "torch", "onnx", "xgboost", "lightgbm", "pytest"}
    assert all(line.count("==") == 1 for line in env.lock_lines(closure))


def test_python_flavour_lock_drops_onnxruntime() -> None:
    assert "onnxruntime" not in env.serving_lock(with_onnxruntime=False)


def test_modules_map_to_distributions_with_exact_versions() -> None:
    pytest.importorskip("sklearn")
    dists, orphans = env.distributions_for_modules(
        ["sklearn.linear_model._logistic", "numpy.core.multiarray", "collections", "builtins"]
    )
    assert dists["scikit-learn"] == metadata.version("scikit-learn")
    assert dists["numpy"] == metadata.version("numpy")
    assert orphans == []


def test_local_version_labels_are_kept() -> None:
    pytest.importorskip("torch")
    dists, _ = env.distributions_for_modules(["torch.nn.modules.linear"])
    assert dists["torch"] == metadata.version("torch")  # e.g. 2.13.0+cpu


def test_classes_from_the_notebook_are_refused() -> None:
    dists, orphans = env.distributions_for_modules(["__main__", "my_local_helpers.models"])
    assert orphans == ["__main__", "my_local_helpers"]
    with pytest.raises(CaptureError, match="notebook") as info:
        env.check_orphans(orphans)
    assert "installed package" in info.value.hint


def test_environment_records_python_and_platform() -> None:
    info = env.environment()
    assert info["python"].startswith("3.") and info["platform"] and info["mlpack"]


def test_serving_lock_covers_the_serve_extra() -> None:
    """The image's lock installs exactly what pyproject's ``serve`` extra names."""
    import re
    import tomllib
    from pathlib import Path

    from mlpack.bundle.environment import SERVING_DISTRIBUTIONS

    pyproject = tomllib.loads((Path(__file__).parents[3] / "pyproject.toml").read_text())
    extra = {re.split(r"[<>=!;\[ ]", req, maxsplit=1)[0].lower()
             for req in pyproject["project"]["optional-dependencies"]["serve"]}
    assert extra == {d.lower() for d in SERVING_DISTRIBUTIONS}


def test_hooks_imports_become_pinned_distributions(tmp_path, monkeypatch) -> None:
    from importlib.metadata import version

    from mlpack.bundle.environment import hook_distributions
    from mlpack.errors import CaptureError

    source = ("import json\nimport mlpack\nfrom scipy import special\n\n"
              "def postprocess(outputs):\n    import sklearn.utils\n    return outputs\n")
    assert hook_distributions(source) == {"scipy": version("scipy"), "scikit-learn": version("scikit-learn")}
    assert hook_distributions(None) == {}
    (tmp_path / "my_local_helpers.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(CaptureError, match="my_local_helpers") as info:
        hook_distributions("import my_local_helpers\ndef preprocess(i):\n    return i\n")
    assert "pip install -e" in info.value.hint


def test_requested_packages_are_pinned_and_bad_ones_named(tmp_path) -> None:
    from importlib.metadata import version

    from mlpack.bundle.environment import lock_for, lock_lines, requested, requirement_specs
    from mlpack.errors import CaptureError

    assert requested(["scipy", "six==1.16.0", "  # comment", ""]) == {"scipy": version("scipy"), "six": "1.16.0"}
    (tmp_path / "req.txt").write_text("# extra\nscipy\n")
    assert requested(tmp_path / "req.txt") == {"scipy": version("scipy")}
    assert requirement_specs(["a==1"], str(tmp_path / "req.txt")) == ("a==1", "# extra", "scipy")
    assert requirement_specs([], None) is None
    with pytest.raises(CaptureError, match="'no-such-package-mlpack' is not installed here") as info:
        requested(["no-such-package-mlpack"])
    assert "pin it" in info.value.hint
    for bad in ("scipy>=1", "-e .", "git+https://example.invalid/x.git", "--index-url=http://x"):
        with pytest.raises(CaptureError, match="is not 'name' or 'name==version'"):
            requested([bad])
    with pytest.raises(CaptureError, match="cannot read the requirements file"):
        requested(tmp_path / "missing.txt")
    pins, why = lock_for([("serving", {"numpy": version("numpy")}), ("requested", {"six": "1.16.0"})])
    lines = lock_lines(pins, why)
    assert f"numpy=={version('numpy')}  # serving" in lines and "six==1.16.0  # requested" in lines


def test_keras_models_bring_their_backend(monkeypatch) -> None:
    """A Keras 3 pickle names only keras classes; the backend package must be in the image too."""
    from importlib.metadata import version

    from mlpack.bundle.environment import distributions_for_modules, implied_modules

    modules = {"keras.src.models.sequential", "keras.src.layers.core.dense", "numpy._core.multiarray"}
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    assert implied_modules(modules) == {"tensorflow"}
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    assert implied_modules(modules) == {"torch"}
    assert implied_modules({"sklearn.linear_model._base"}) == set()
    # torch is installed here: it is found and pinned; keras is not, so it is an orphan named in the error.
    dists, orphans = distributions_for_modules(modules)
    assert dists["torch"] == version("torch") and "numpy" in dists
    assert orphans == ["keras"]


def test_nested_estimators_bring_every_package_they_use() -> None:
    """The pickle names every class reachable from the model: a Pipeline's steps, a meta
    estimator's inner model (here an XGBoost model inside a scikit-learn one)."""
    from importlib.metadata import version

    import numpy as np
    from sklearn.multioutput import MultiOutputRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from xgboost import XGBRegressor

    from mlpack.bundle.environment import distributions_for_modules
    from mlpack.bundle.python_flavor import pickle_model

    x = np.random.default_rng(0).normal(size=(50, 3))
    model = make_pipeline(StandardScaler(), MultiOutputRegressor(XGBRegressor(n_estimators=3))).fit(x, x[:, :2])
    _, modules = pickle_model(model)
    dists, orphans = distributions_for_modules(modules)
    assert orphans == []
    assert dists["scikit-learn"] == version("scikit-learn") and dists["xgboost"] == version("xgboost")


def test_a_subclass_brings_the_package_of_its_bases() -> None:
    """LGBMRegressor pickles as ``lightgbm.sklearn`` and its booster alone, yet it subclasses
    scikit-learn's estimators: unpickled in an image without scikit-learn it cannot predict."""
    from importlib.metadata import version

    import numpy as np
    import pandas as pd

    lightgbm = pytest.importorskip("lightgbm")
    from mlpack.bundle.environment import distributions_for_modules
    from mlpack.bundle.python_flavor import pickle_model

    frame = pd.DataFrame({"x": np.arange(40.0), "c": pd.Categorical(["a", "b", None, "a"] * 10)})
    model = lightgbm.LGBMRegressor(n_estimators=3, verbose=-1).fit(frame, np.arange(40.0))
    _, modules = pickle_model(model)
    dists, orphans = distributions_for_modules(modules)
    assert orphans == []
    assert dists["lightgbm"] == version("lightgbm") and dists["scikit-learn"] == version("scikit-learn")
