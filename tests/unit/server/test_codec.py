"""Validation and the two wire formats (/predict JSON, V2 JSON + binary), without HTTP."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from mlpack.errors import ServeError
from mlpack.server.codec import decode_predict, decode_v2, encode_predict, encode_v2
from mlpack.server.metrics import Metrics
from mlpack.server.tensors import Spec, coerce

X = Spec("x", "float32", (None, 4))
IDX = Spec("idx", "int64", (None,))
A = Spec("a", "float32", (None, 3))
B = Spec("b", "int64", (None, 1))
OUT = [Spec("y", "float32", (None,)), Spec("label", "int64", (None,))]


def _422(fn, *args, **kwargs) -> ServeError:
    with pytest.raises(ServeError) as info:
        fn(*args, **kwargs)
    assert info.value.status == 422
    return info.value


def test_coerce_keeps_dtype_and_shape() -> None:
    arr = coerce(X, [[1, 2, 3, 4], [5.5, 6, 7, 8]])
    assert arr.dtype == np.float32 and arr.shape == (2, 4)
    assert coerce(IDX, [1.0, 2.0]).dtype == np.int64


@pytest.mark.parametrize(
    ("spec", "data", "words"),
    [
        (X, [[1, 2, 3]], "expected shape [N, 4], got [1, 3]"),
        (X, [1, 2, 3, 4], "wrap a single row"),
        (X, [[1, 2, 3, 4], [1, 2]], "different lengths"),
        (X, [["1", 2, 3, 4]], "got strings"),
        (X, [[None, 2, 3, 4]], "mixed values"),
        (X, [[True, False, True, False]], "got booleans"),
        (X, [[{"a": 1}, 2, 3, 4]], "mixed values"),
        (IDX, [1.5], "fractional"),
        (IDX, [2**63 + 10], "out of range"),
        (IDX, [1e22], "out of range"),
    ],
)
def test_coerce_rejects_with_a_message_naming_the_input(spec: Spec, data: object, words: str) -> None:
    err = _422(coerce, spec, data)
    text = str(err)
    assert repr(spec.name) in text and words in text


def test_predict_rows_mapping_and_records() -> None:
    d = decode_predict(b'{"inputs": [[1,2,3,4]]}', [X], OUT)
    assert d.feeds["x"].shape == (1, 4) and d.outputs is None
    d = decode_predict(b'{"inputs": {"x": [[1,2,3,4]]}, "parameters": {"outputs": ["label"]}}', [X], OUT)
    assert d.outputs == ["label"]
    d = decode_predict(b'{"inputs": [{"a": [1,2,3], "b": [7]}, {"a": [4,5,6], "b": [8]}]}', [A, B], OUT)
    assert d.feeds["a"].shape == (2, 3) and d.feeds["b"].tolist() == [[7], [8]]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"{", "not valid JSON"),
        (b"[1,2]", '"inputs" field'),
        (b'{"inputs": [[1,2,3,4]], "input": 1}', "unknown field 'input'"),
        (b'{"inputs": {"z": [[1,2,3,4]]}}', "missing input 'x'"),
        (b'{"inputs": {"x": [[1,2,3,4]], "z": 1}}', "unknown input 'z'"),
        (b'{"inputs": "text"}', "list of rows"),
        (b'{"inputs": [[1,2,3,4]], "parameters": {"outputs": ["nope"]}}', "unknown output 'nope'"),
        (b'{"inputs": [[1,2,3,4]], "parameters": []}', "must be a JSON object"),
        (b'{"inputs": [1e999]}', "not valid JSON"),
    ],
)
def test_predict_rejects(body: bytes, words: str) -> None:
    assert words in str(_422(decode_predict, body, [X], OUT))


def test_multi_input_needs_names() -> None:
    assert "send a mapping" in str(_422(decode_predict, b'{"inputs": [[1,2,3]]}', [A, B], OUT))


def test_encode_predict_selects_outputs() -> None:
    body = encode_predict({"y": np.array([0.5], np.float32), "label": np.array([2])}, ["label"])
    assert orjson.loads(body) == {"outputs": {"label": [2]}}


def _v2(inputs: list[dict], **extra: object) -> bytes:
    return orjson.dumps({"inputs": inputs, **extra})


def test_v2_json_tensors_are_reshaped() -> None:
    body = _v2([{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": list(range(8))}], id="r1")
    d = decode_v2(body, None, [X], OUT)
    assert d.feeds["x"].shape == (2, 4) and d.id == "r1"
    # nested data is accepted too
    body = _v2([{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [[1, 2, 3, 4]]}])
    assert decode_v2(body, None, [X], OUT).feeds["x"].shape == (1, 4)


@pytest.mark.parametrize(
    ("tensor", "words"),
    [
        ({"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}, "expected datatype FP32"),
        ({"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}, "holds 8 elements"),
        ({"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}, "expected shape [N, 4]"),
        ({"name": "x", "shape": "1,4", "datatype": "FP32", "data": [1, 2, 3, 4]}, "list of integers"),
        ({"name": "x", "shape": [1, 4], "datatype": "FP32"}, 'no "data"'),
        ({"name": "x", "shape": [1, 4], "datatype": "FP32", "data": ["a", "b", "c", "d"]}, "got strings"),
    ],
)
def test_v2_rejects(tensor: dict, words: str) -> None:
    assert words in str(_422(decode_v2, _v2([tensor]), None, [X], OUT))


def test_v2_binary_inputs_and_outputs() -> None:
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    header = _v2(
        [{"name": "x", "shape": [2, 4], "datatype": "FP32", "parameters": {"binary_data_size": x.nbytes}}],
        outputs=[{"name": "y", "parameters": {"binary_data": True}}, {"name": "label"}],
    )
    d = decode_v2(header + x.tobytes(), str(len(header)), [X], OUT)
    np.testing.assert_array_equal(d.feeds["x"], x)
    outputs = {"y": np.array([1.5, 2.5], np.float32), "label": np.array([1, 2])}
    body, n = encode_v2(outputs, d, model_name="m")
    assert n is not None
    doc = orjson.loads(body[:n])
    y, label = doc["outputs"]
    assert y["parameters"]["binary_data_size"] == 8 and "data" not in y
    np.testing.assert_array_equal(np.frombuffer(body[n:], np.float32), outputs["y"])
    assert label["data"] == [1, 2] and label["datatype"] == "INT64"


def test_v2_binary_size_mismatch_is_422() -> None:
    header = _v2([{"name": "x", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": 16}}])
    assert "does not fit" in str(_422(decode_v2, header + b"\0" * 8, str(len(header)), [X], OUT))
    assert "belong to no input" in str(_422(decode_v2, header + b"\0" * 20, str(len(header)), [X], OUT))
    assert "does not fit a body" in str(_422(decode_v2, header, "99999", [X], OUT))


def test_metrics_exposition_is_prometheus_text() -> None:
    m = Metrics()
    m.request_done("/predict", "POST", 200, 0.002)
    m.request_done("/predict", "POST", 422, 0.0004)
    m.model_run(0.0001, 8, 4)
    text = m.expose().decode()
    assert 'mlpack_requests_total{endpoint="/predict",method="POST",status="200"} 1' in text
    assert 'mlpack_request_duration_seconds_bucket{endpoint="/predict",status="200",le="0.0025"} 1' in text
    assert 'mlpack_request_duration_seconds_bucket{endpoint="/predict",status="200",le="+Inf"} 1' in text
    assert 'mlpack_batch_size_bucket{le="8"} 1' in text and "mlpack_batch_requests_count 1" in text
    for line in text.splitlines():
        assert line.startswith("#") or len(line.rsplit(" ", 1)) == 2


def test_booleans_next_to_numbers_are_rejected() -> None:
    assert "got booleans" in str(_422(decode_predict, b'{"inputs": [[false, 0, 0, 0]]}', [X], OUT))
    body = b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, true, 0, 0]}]}'
    assert "got booleans" in str(_422(decode_v2, body, None, [X], OUT))


def test_inputs_must_agree_on_rows_and_big_integers_must_be_exact() -> None:
    body = b'{"inputs": {"a": [[1,2,3],[4,5,6]], "b": [[1],[2],[3]]}}'
    assert "'a' has 2, 'b' has 3" in str(_422(decode_predict, body, [A, B], OUT))
    assert "out of range" in str(_422(decode_predict, b'{"inputs": {"a": [[1,2,3]], "b": [[-9223372036854775809]]}}', [A, B], OUT))
    d = decode_predict(b'{"inputs": {"a": [[1,2,3]], "b": [[-9223372036854775808]]}}', [A, B], OUT)
    assert d.feeds["b"].tolist() == [[-(2**63)]]
