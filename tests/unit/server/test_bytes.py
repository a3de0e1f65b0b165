"""BYTES tensors in the V2 binary extension: 4-byte little-endian length, then the element."""

from __future__ import annotations

import struct

import numpy as np
import orjson
import pytest

from mlpack.errors import ServeError
from mlpack.server.codec import bytes_buffer, bytes_elements, decode_v2, encode_v2
from mlpack.server.tensors import Spec, coerce

TEXT = Spec("text", "str", (None,))
OUTS = [Spec("label", "int64", (None,)), Spec("echo", "str", (None,))]


def _packed(*items: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(b)) + b for b in items)


def _request(raw: bytes, shape: list[int], **outputs: object) -> tuple[bytes, str]:
    doc: dict = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": shape, "parameters": {"binary_data_size": len(raw)}}]}
    doc.update(outputs)
    header = orjson.dumps(doc)
    return header + raw, str(len(header))


def test_bytes_elements_round_trip_including_empty_and_non_ascii() -> None:
    words = ["cat", "", "émeu", "日本語"]
    buf = bytes_buffer(np.array(words, dtype=object))
    assert buf == _packed(*(w.encode() for w in words))
    assert bytes_elements(buf, "text").tolist() == words
    assert bytes_elements(b"", "text").tolist() == []


def test_decode_v2_reads_binary_bytes_input_and_returns_binary_bytes_output() -> None:
    body, n = _request(_packed(b"cat", b"dog"), [2], outputs=[{"name": "echo", "parameters": {"binary_data": True}}])
    decoded = decode_v2(body, n, [TEXT], OUTS)
    assert decoded.feeds["text"].dtype == object and decoded.feeds["text"].tolist() == ["cat", "dog"]
    out, header_len = encode_v2({"echo": decoded.feeds["text"], "label": np.array([1, 2])}, decoded, model_name="words")
    assert header_len is not None
    header = orjson.loads(out[:header_len])
    assert header["outputs"] == [{"name": "echo", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": 14}}]
    assert out[header_len:] == _packed(b"cat", b"dog")


@pytest.mark.parametrize(
    ("raw", "shape", "words"),
    [
        (_packed(b"cat")[:-1], [1], "claims 3 bytes but 2 are left"),
        (struct.pack("<I", 2**32 - 1) + b"x", [1], "claims 4294967295 bytes"),
        (_packed(b"cat") + b"\x01\x00", [2], "truncated length prefix"),
        (_packed(b"\xff\xfe"), [1], "is not UTF-8"),
        (_packed(b"a", b"b"), [3], "shape [3] holds 3 elements but 2 values came"),
        (_packed(b"a", b"b"), [1, 2], "expected shape [N], got [1, 2]"),
    ],
)
def test_lying_bytes_layouts_are_422(raw: bytes, shape: list[int], words: str) -> None:
    body, n = _request(raw, shape)
    with pytest.raises(ServeError) as info:
        decode_v2(body, n, [TEXT], OUTS)
    assert info.value.status == 422 and words in info.value.message


def test_binary_size_past_the_body_is_422() -> None:
    header = orjson.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 99}}]})
    with pytest.raises(ServeError, match="binary_data_size 99 does not fit"):
        decode_v2(header + _packed(b"a"), str(len(header)), [TEXT], OUTS)


def test_strings_never_become_a_fixed_width_array() -> None:
    # One long string among many short ones: a 'U' array would be rows x longest x 4 bytes.
    data = ["x" * 1_000_000] + [""] * 100_000
    arr = coerce(TEXT, data)
    assert arr.dtype == object and arr.nbytes == 8 * len(data)
    with pytest.raises(ServeError, match="expected strings, got integers"):
        coerce(TEXT, ["a", 1])
    with pytest.raises(ServeError, match="expected strings, got rows of different lengths"):
        coerce(Spec("t", "str", (None, 2)), [["a", "b"], ["c"]])


def test_a_trailing_unit_axis_is_fitted_to_the_model_in_v2_requests() -> None:
    # MLServer's StringRequestCodec sends a list of strings as [N, 1]
    assert coerce(TEXT, ["a", "b"], shape=[2, 1]).shape == (2,)
    column = Spec("c", "float32", (None, 1))
    assert coerce(column, [1.0, 2.0], shape=[2]).shape == (2, 1)
    with pytest.raises(ServeError, match=r"expected shape \[N\], got \[1, 2\]"):
        coerce(TEXT, ["a", "b"], shape=[1, 2])
    with pytest.raises(ServeError, match="expected shape"):  # /predict rows keep their exact shape
        coerce(TEXT, [["a"], ["b"]])


def test_binary_bytes_columns_of_a_table_get_the_category_check() -> None:
    from tests.unit.server.test_tables import INPUTS, OUTPUTS, TABLE

    tensors = [
        ("age", "INT64", np.array([31], np.int64).tobytes()),
        ("income", "FP64", np.array([1.5], np.float64).tobytes()),
        ("city", "BYTES", _packed(b"oslo")),
        ("plan", "BYTES", _packed(b"vip")),
        ("member", "BOOL", np.array([True]).tobytes()),
    ]
    header = orjson.dumps(
        {"inputs": [{"name": n, "datatype": d, "shape": [1], "parameters": {"binary_data_size": len(b)}} for n, d, b in tensors]}
    )
    with pytest.raises(ServeError, match="column 'plan'"):
        decode_v2(header + b"".join(b for _, _, b in tensors), str(len(header)), INPUTS, OUTPUTS, TABLE)
