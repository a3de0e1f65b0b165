"""The one-pass numeric path (coerce_numbers) against coerce: same arrays, same 422s, on hostile inputs too."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlpack.errors import ServeError
from mlpack.server.codec import decode_predict, decode_v2
from mlpack.server.tensors import Spec, coerce, coerce_numbers

SPECS = [
    Spec("x", "float32", (None, 4)),
    Spec("x", "float64", (None, 2)),
    Spec("x", "int64", (None, 3)),
    Spec("x", "int32", (None,)),
    Spec("x", "float16", (None, 2)),
    Spec("x", "bool", (None, 2)),
    Spec("x", "uint8", (2, 2)),
    Spec("x", "float32", (None, 1)),
    Spec("x", "str", (None,)),
]


def _outcome(fn: Any, *args: Any, **kwargs: Any) -> tuple:
    try:
        arr = fn(*args, **kwargs)
    except ServeError as exc:
        return ("error", exc.message, exc.hint, getattr(exc, "status", None))
    return ("array", arr.dtype.str, arr.shape, json.dumps(np.asarray(arr).tolist() if arr.dtype.kind != "f" else
                                                          [None if math.isnan(v) else v for v in arr.ravel().tolist()]))


def _same(spec: Spec, data: Any, **kwargs: Any) -> None:
    assert _outcome(coerce_numbers, spec, data, **kwargs) == _outcome(coerce, spec, data, **kwargs), (spec, data, kwargs)


HOSTILE = [
    [[5.1, 3.5, 1.4, 0.2]],  # the common request
    [[1, 2, 3, 4]],  # integers for floats
    [[1, 2.5, 3, 4]],
    [[True, 2.5, 3, 4]],  # a boolean among numbers
    [[1, 2], [3]],  # ragged
    [[1, 2, 3, 4], [1, 2, 3]],
    [["1.5", 2, 3, 4]],  # a number as a string
    [["nan", "inf", "1", "2"]],
    [[None, 1, 2, 3]],
    [[1e300, -1e300, 1, 2]],  # overflows float32 and float16: inf, no warning
    [[2 ** 63, 1, 2, 3]],  # beyond int64
    [[2 ** 70, 1, 2, 3]],
    [[-(2 ** 63), 1, 2]],
    [[1.5, 2, 3]],  # fractional for integers
    [[300, 1], [2, 3]],  # out of range for uint8
    [[0, 1], [1, 0]],  # 0/1 for booleans
    [[True, False], [False, True]],
    [],  # empty
    [[]],
    5.0,  # a scalar
    "text",
    {"a": 1},
    [[[1, 2, 3, 4]]],  # one axis too many
    [1, 2, 3, 4],  # one axis too few
    [[1, 2, 3, 4, 5]],  # wrong length
    [[{"x": 1}, 2, 3, 4]],
    [[[1], [2]]],
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.dtype}{list(s.shape)}")
@pytest.mark.parametrize("data", HOSTILE, ids=range(len(HOSTILE)))
def test_predict_shaped_data_gives_what_coerce_gives(spec: Spec, data: Any) -> None:
    for bools in (False, True):
        _same(spec, data, bools=bools)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.dtype}{list(s.shape)}")
@pytest.mark.parametrize("shape,data", [
    ((1, 4), [5.1, 3.5, 1.4, 0.2]),
    ((2, 2), [1, 2, 3, 4]),
    ((4,), [1, 2, 3, 4]),
    ((2,), [1, 2, 3, 4]),  # more values than the shape holds
    ((1, 4), [[5.1, 3.5], [1.4, 0.2]]),  # nested data, as some clients send it
    ((3, 1), [1.0, 2.0, 3.0]),  # a trailing unit axis to drop
    ((3,), [1.0, 2.0, 3.0]),  # a unit axis to add
    ((0, 4), []),
    ((1, 2), [True, False]),
    ((1, 2), ["a", "b"]),
    ((1, 2), [1, None]),
    ((2, 2), [1e300, 1, 2, 3]),
])
def test_v2_shaped_data_gives_what_coerce_gives(spec: Spec, shape: tuple, data: Any) -> None:
    for bools in (False, True):
        _same(spec, data, shape=shape, bools=bools)
        _same(spec, np.asarray(data) if data and not isinstance(data[0], str) else data, shape=shape, bools=bools)


def test_binary_arrays_are_kept_without_a_copy() -> None:
    raw = np.arange(8, dtype=np.float32).tobytes()
    arr = np.frombuffer(raw, dtype=np.float32)
    out = coerce_numbers(Spec("x", "float32", (None, 4)), arr, shape=(2, 4))
    assert out.base is arr or out.base is arr.base and not out.flags.writeable


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 70), 2 ** 70), st.floats(allow_nan=False, allow_infinity=False),
              st.sampled_from(["nan", "1", "", "inf"])),
    lambda children: st.lists(children, max_size=5),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(spec=st.sampled_from(SPECS), data=json_values, bools=st.booleans())
def test_any_json_value_gives_what_coerce_gives(spec: Spec, data: Any, bools: bool) -> None:
    _same(spec, data, bools=bools)


def _v2(data: Any, shape: list, datatype: str = "FP32") -> bytes:
    return json.dumps({"inputs": [{"name": "input", "shape": shape, "datatype": datatype, "data": data}]}).encode()


IRIS_IN = [Spec("input", "float32", (None, 4))]
IRIS_OUT = [Spec("label", "int64", (None,)), Spec("probabilities", "float32", (None, 3))]


@pytest.mark.parametrize("body,message", [
    (_v2([1, 2, 3], [1, 4]), "shape [1, 4] holds 4 elements but 3 values came"),
    (_v2(["1", 2, 3, 4], [1, 4]), "expected float32 numbers, got strings"),
    (_v2([True, 2, 3, 4], [1, 4]), "expected float32 numbers, got booleans"),
    (_v2([None, 2, 3, 4], [1, 4]), "expected float32 numbers, got mixed values"),
    (_v2([[1, 2], [3]], [1, 4]), "rows have different lengths or mixed types"),
    (_v2([1, 2, 3, 4], [2, 2]), "expected shape [N, 4], got [2, 2]"),
])
def test_v2_decoding_keeps_its_422_messages(body: bytes, message: str) -> None:
    with pytest.raises(ServeError) as info:
        decode_v2(body, None, IRIS_IN, IRIS_OUT)
    assert info.value.status == 422 and message in info.value.message


def test_common_requests_decode_to_the_model_dtype_and_shape() -> None:
    v2 = decode_v2(_v2([5.1, 3.5, 1.4, 0.2, 1, 2, 3, 4], [2, 4]), None, IRIS_IN, IRIS_OUT).feeds["input"]
    predict = decode_predict(b'{"inputs": [[5.1, 3.5, 1.4, 0.2], [1, 2, 3, 4]]}', IRIS_IN, IRIS_OUT).feeds["input"]
    expected = np.array([[5.1, 3.5, 1.4, 0.2], [1, 2, 3, 4]], dtype=np.float32)
    for got in (v2, predict):
        assert got.dtype == np.float32 and got.shape == (2, 4)
        np.testing.assert_array_equal(got, expected)
