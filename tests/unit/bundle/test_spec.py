"""Names, tensor specs and dtypes of the bundle schema."""

from __future__ import annotations

import numpy as np
import pytest

from mlpack.bundle.spec import TensorSpec, default_name, dtype_name, validate_name
from mlpack.errors import CaptureError


@pytest.mark.parametrize("name", ["iris", "iris-v2", "my_model.1", "a", "0x9", "a" * 128])
def test_valid_names_pass(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "Iris", "my model", "-iris", "iris-", "a--b", "a..b", "a/b", "ïris", "a" * 129, "iris:latest"]
)
def test_invalid_names_raise_with_hint(name: str) -> None:
    with pytest.raises(CaptureError, match="name") as info:
        validate_name(name)
    assert info.value.hint and "lowercase" in info.value.hint


def test_default_name_is_valid_for_class_names() -> None:
    for text in ("LogisticRegression", "XGBClassifier", "My__Net", "Sequential"):
        assert validate_name(default_name(text))


def test_tensor_spec_round_trip() -> None:
    spec = TensorSpec("input", "float32", (None, 4))
    assert TensorSpec.from_dict(spec.to_dict()) == spec
    assert spec.to_dict() == {"name": "input", "dtype": "float32", "shape": [None, 4]}
    assert spec.numpy_dtype == np.float32
    assert TensorSpec("label", "str", (None,)).numpy_dtype == np.dtype(object)


def test_dtype_names() -> None:
    assert dtype_name(np.dtype("float32")) == "float32"
    assert dtype_name(np.array(["a"]).dtype) == "str"
    assert dtype_name(np.array(["a"], dtype=object).dtype) == "str"
    assert dtype_name(np.dtype("int64")) == "int64"
