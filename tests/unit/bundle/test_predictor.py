"""Predictor.run checks its feeds against the schema before the model sees them."""

from __future__ import annotations

import numpy as np
import pytest

from mlpack.bundle import Bundle
from mlpack.errors import ServeError


@pytest.fixture(params=["onnx", "python"])
def bundle(request: pytest.FixtureRequest) -> Bundle:
    return request.getfixturevalue("sklearn_bundle" if request.param == "onnx" else "sklearn_python_bundle")


def test_runs_and_returns_outputs_in_schema_order(bundle: Bundle) -> None:
    out = bundle.load_predictor(threads=1).run({"input": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]})
    assert list(out) == ["label", "probabilities"]
    assert out["label"].tolist() == [0, 2]
    np.testing.assert_allclose(out["probabilities"].sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize(
    ("feeds", "match"),
    [
        ({}, "missing \\['input'\\]"),
        ({"input": np.zeros((1, 4)), "extra": 1}, "unknown \\['extra'\\]"),
        ({"input": np.zeros((2, 5))}, "shape \\[2, 5\\], the model takes \\[None, 4\\]"),
        ({"input": np.zeros(4)}, "shape \\[4\\]"),
        ({"input": [["a", "b", "c", "d"]]}, "wrong type"),
    ],
)
def test_bad_feeds_are_400s(bundle: Bundle, feeds: dict, match: str) -> None:
    with pytest.raises(ServeError, match=match) as info:
        bundle.load_predictor().run(feeds)
    assert info.value.status == 400 and info.value.hint


def test_integers_are_accepted_for_float_inputs(bundle: Bundle) -> None:
    out = bundle.load_predictor().run({"input": np.array([[5, 3, 1, 0]], dtype=np.int64)})
    assert out["label"].tolist() == [0]
