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
