"""A ready ONNX model, as a ModelProto or a path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="onnx is not installed (mlpack[notebook])")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (mlpack[serve])")

from mlpack.bundle import capture  # noqa: E402
from mlpack.errors import CaptureError  # noqa: E402
from tests.integration.bundle.helpers import check_round_trip  # noqa: E402


def _two_input_model() -> "onnx.ModelProto":
    """y = a + b (float32 [batch, 3]) and n = argmax (int64 [batch])."""
    from onnx import TensorProto, helper

    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 3])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])
    n = helper.make_tensor_value_info("n", TensorProto.INT64, ["N"])
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["y"]), helper.make_node("ArgMax", ["y"], ["n"], axis=1, keepdims=0)],
        "add", [a, b], [y, n],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_model_proto_with_two_inputs(out: Path) -> None:
    rng = np.random.default_rng(0)
    sample = {"a": rng.normal(size=(6, 3)).astype(np.float32), "b": rng.normal(size=(6, 3)).astype(np.float32)}
    bundle = capture(_two_input_model(), sample, name="adder", path=out / "a")
    assert bundle.framework == "onnx" and bundle.flavor == "onnx"
    assert [(s.name, s.dtype, s.shape) for s in bundle.outputs] == [("y", "float32", (None, 3)), ("n", "int64", (None,))]
    outputs = check_round_trip(bundle, {"a": np.ones((2, 3), np.float32), "b": np.eye(2, 3, dtype=np.float32)})
    np.testing.assert_array_equal(outputs["y"], np.ones((2, 3)) + np.eye(2, 3))


def test_path_to_onnx_file(sklearn_bundle, out: Path) -> None:
    bundle = capture(str(sklearn_bundle.model_path), sklearn_bundle.sample()["input"], name="from-file", path=out / "f")
    assert bundle.model_sha256 == sklearn_bundle.model_sha256  # the very same model bytes
    check_round_trip(bundle, {"input": np.zeros((3, 4), np.float32)})


def test_wrong_dtype_and_shape_for_an_onnx_model(out: Path) -> None:
    model = _two_input_model()
    with pytest.raises(CaptureError, match="dtype int64, the model takes float32") as info:
        capture(model, {"a": np.ones((2, 3), np.int64), "b": np.ones((2, 3), np.float32)}, name="x", path=out / "x")
    assert "astype" in info.value.hint
    with pytest.raises(CaptureError, match=r"shape \[2, 4\]"):
        capture(model, {"a": np.ones((2, 4), np.float32), "b": np.ones((2, 4), np.float32)}, name="x", path=out / "x")
    with pytest.raises(CaptureError, match="do not match"):
        capture(model, {"a": np.ones((2, 3), np.float32)}, name="x", path=out / "x")


def test_missing_onnx_file(out: Path) -> None:
    with pytest.raises(CaptureError, match="does not exist"):
        capture(str(out / "nope.onnx"), np.ones((1, 4)), name="x", path=out / "x")


def test_default_name_comes_from_the_file_name(sklearn_bundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    src = tmp_path / "My Iris_Net.onnx"
    shutil.copy(sklearn_bundle.model_path, src)
    monkeypatch.chdir(tmp_path)
    bundle = capture(src, sklearn_bundle.sample()["input"])
    assert bundle.name == "my-iris-net" and bundle.path == (tmp_path / "bundles" / "my-iris-net").resolve()
