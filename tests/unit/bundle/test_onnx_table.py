"""The graph edits that give a converted model its table interface, run in onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from mlpack.bundle.onnx_table import columns_to_matrix, set_text_locale, squeeze_outputs, wrap_columns  # noqa: E402


def _model(nodes, inputs, outputs, inits=()) -> bytes:  # type: ignore[no-untyped-def]
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _run(data: bytes, feeds: dict) -> list:  # type: ignore[type-arg]
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def _row_sum() -> bytes:
    """m float32 [N, 2] -> y = sum over the row, [N, 1]."""
    axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")
    return _model(
        [helper.make_node("ReduceSum", ["m", "axes"], ["y"], keepdims=1)],
        [helper.make_tensor_value_info("m", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])],
        [axes],
    )


def test_columns_feed_the_matrix_in_order_and_outputs_squeeze() -> None:
    wrapped = columns_to_matrix(_row_sum(), "m", {"age": np.dtype(np.int64), "fee": np.dtype(np.float64)})
    proto = onnx.load_from_string(wrapped)
    onnx.checker.check_model(proto)
    assert [(i.name, i.type.tensor_type.elem_type) for i in proto.graph.input] == [
        ("age", TensorProto.INT64), ("fee", TensorProto.DOUBLE)]
    (y,) = _run(wrapped, {"age": np.array([1, 2]), "fee": np.array([0.5, 1.5])})
    assert y.tolist() == [[1.5], [3.5]]
    (flat,) = _run(squeeze_outputs(wrapped, ["y"]), {"age": np.array([1, 2]), "fee": np.array([0.5, 1.5])})
    assert flat.shape == (2,) and flat.tolist() == [1.5, 3.5]
    with pytest.raises(ValueError, match="single input 'x'"):
        columns_to_matrix(_row_sum(), "x", {"a": np.dtype(np.float64)})


def test_each_two_dimensional_column_input_becomes_one_dimensional_of_its_dtype() -> None:
    data = _model(
        [helper.make_node("Identity", ["fee"], ["y"]), helper.make_node("Identity", ["city"], ["c"])],
        [helper.make_tensor_value_info("fee", TensorProto.FLOAT, [None, 1]),
         helper.make_tensor_value_info("city", TensorProto.STRING, [None, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1]),
         helper.make_tensor_value_info("c", TensorProto.STRING, [None, 1])],
    )
    wrapped = wrap_columns(data, {"fee": np.dtype(np.float64), "city": np.dtype(object)})
    y, c = _run(wrapped, {"fee": np.array([0.1, 2.0]), "city": np.array(["oslo", "rome"], dtype=object)})
    assert y.dtype == np.float32 and y.shape == (2, 1) and c.tolist() == [["oslo"], ["rome"]]
    with pytest.raises(ValueError, match="are not the columns"):
        wrap_columns(data, {"fee": np.dtype(np.float64)})


def test_string_normalizers_get_a_locale_every_image_has() -> None:
    data = _model(
        [helper.make_node("StringNormalizer", ["t"], ["u"], case_change_action="LOWER")],
        [helper.make_tensor_value_info("t", TensorProto.STRING, [None])],
        [helper.make_tensor_value_info("u", TensorProto.STRING, [None])],
    )
    fixed = set_text_locale(data)
    node = onnx.load_from_string(fixed).graph.node[0]
    assert [a.s for a in node.attribute if a.name == "locale"] == [b"C.UTF-8"]
    (u,) = _run(fixed, {"t": np.array(["ÉCOLE Ça"], dtype=object)})
    assert u.tolist() == ["école ça"]
    assert set_text_locale(fixed) == fixed  # an explicit locale is kept
