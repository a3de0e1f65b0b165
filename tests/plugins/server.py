"""Session fixtures for the inference server: real bundles made with mlpack.capture.

Each bundle is captured once per run under the run home and shared by the
unit tests (TestClient), the integration tests (a real uvicorn process) and
the benchmark. ONNX graphs with properties sklearn models lack (two inputs,
a fixed batch, a runtime failure) are built with onnx.helper and captured as
ready ONNX models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest

HOOKS = '''
import numpy as np

NAMES = np.array(["setosa", "versicolor", "virginica"])


def preprocess(inputs):
    x = inputs["input"]
    if (x < 0).any():
        raise ValueError("measurements must be non-negative")
    return {"input": x}


def postprocess(outputs):
    outputs = dict(outputs)
    outputs["species"] = NAMES[outputs["label"]]
    return outputs
'''


def _cached(root: Path, name: str, make: Callable[[Path], object]) -> Path:
    from mlpack.bundle import Bundle

    path = root / name
    if (path / "mlpack.yaml").is_file():
        try:
            Bundle.load(path)
            return path
        except Exception:  # noqa: BLE001 - stale cache from an older format: capture again
            import shutil

            shutil.rmtree(path)
    make(path)
    return path


def iris_data() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    return x.astype(np.float32), y


def _iris(path: Path, **options: object) -> None:
    import mlpack.bundle as mb
    from sklearn.linear_model import LogisticRegression

    x, y = iris_data()
    model = LogisticRegression(max_iter=500).fit(x, y)
    mb.capture(model, x[:8], name="iris", path=path, **options)


def _onnx_bundle(path: Path, name: str, graph_inputs, graph_outputs, nodes, sample: dict, inits=()) -> None:
    import mlpack.bundle as mb
    from onnx import helper

    graph = helper.make_graph(nodes, name, graph_inputs, graph_outputs, initializer=list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    mb.capture(model, sample, name=name, path=path)


def _two_inputs(path: Path) -> None:
    from onnx import TensorProto, helper

    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [None, 3])
    b = helper.make_tensor_value_info("b", TensorProto.INT64, [None, 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])
    nodes = [
        helper.make_node("ReduceSum", ["a", "axes"], ["s"], keepdims=1),
        helper.make_node("Cast", ["b"], ["bf"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["s", "bf"], ["y"]),
    ]
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    sample = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([[1], [2]], dtype=np.int64)}
    _onnx_bundle(path, "two-inputs", [a, b], [y], nodes, sample, inits=[axes])


def _fixed_batch(path: Path) -> None:
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    _onnx_bundle(path, "fixed", [x], [y], nodes, {"x": np.array([[-1.0, 0.5, 2.0]], dtype=np.float32)})


def _lookup(path: Path) -> None:
    """Gather from a 5-entry table: an index out of range makes onnxruntime fail at run time."""
    from onnx import TensorProto, helper

    idx = helper.make_tensor_value_info("idx", TensorProto.INT64, [None])
    out = helper.make_tensor_value_info("value", TensorProto.FLOAT, [None])
    table = helper.make_tensor("table", TensorProto.FLOAT, [5], [0.0, 10.0, 20.0, 30.0, 40.0])
    nodes = [helper.make_node("Gather", ["table", "idx"], ["value"], axis=0)]
    _onnx_bundle(path, "lookup", [idx], [out], nodes, {"idx": np.array([0, 1, 4], dtype=np.int64)}, inits=[table])


def _words(path: Path) -> None:
    """A string model: LabelEncoder (ai.onnx.ml) from words to ids, and the text echoed back."""
    from onnx import TensorProto, helper

    text = helper.make_tensor_value_info("text", TensorProto.STRING, [None])
    label = helper.make_tensor_value_info("label", TensorProto.INT64, [None])
    echo = helper.make_tensor_value_info("echo", TensorProto.STRING, [None])
    nodes = [
        helper.make_node(
            "LabelEncoder", ["text"], ["label"], domain="ai.onnx.ml",
            keys_strings=list(WORDS), values_int64s=list(range(1, len(WORDS) + 1)), default_int64=0,
        ),
        helper.make_node("Identity", ["text"], ["echo"]),
    ]
    graph = helper.make_graph(nodes, "words", [text], [label, echo])
    import mlpack.bundle as mb

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])
    model.ir_version = 8
    mb.capture(model, {"text": np.array(["cat", "émeu", "?"], dtype=object)}, name="words", path=path)


WORDS = ("cat", "dog", "émeu", "日本語", "")


@pytest.fixture(scope="session")
def server_bundles_dir(run_home: Path) -> Path:
    path = run_home / "server-bundles"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def iris_bundle(server_bundles_dir: Path) -> Path:
    """LogisticRegression on iris: input float32 [N, 4] -> label int64 [N], probabilities float32 [N, 3]."""
    return _cached(server_bundles_dir, "iris", _iris)


@pytest.fixture(scope="session")
def iris_hooks_bundle(server_bundles_dir: Path) -> Path:
    """The iris model with hooks.py: rejects negative input, adds a "species" string output."""
    return _cached(server_bundles_dir, "iris-hooks", lambda p: _iris(p, hooks_source=HOOKS))


@pytest.fixture(scope="session")
def iris_python_bundle(server_bundles_dir: Path) -> Path:
    """The iris model as the pickled python flavour."""
    return _cached(server_bundles_dir, "iris-python", lambda p: _iris(p, flavor="python"))


@pytest.fixture(scope="session")
def two_inputs_bundle(server_bundles_dir: Path) -> Path:
    """y = sum(a, axis=1) + b with a float32 [N, 3], b int64 [N, 1]."""
    return _cached(server_bundles_dir, "two-inputs", _two_inputs)


@pytest.fixture(scope="session")
def fixed_bundle(server_bundles_dir: Path) -> Path:
    """Relu over a fixed [1, 3] input: no dynamic batch axis, so no micro-batching."""
    return _cached(server_bundles_dir, "fixed", _fixed_batch)


@pytest.fixture(scope="session")
def lookup_bundle(server_bundles_dir: Path) -> Path:
    """Gather with out-of-range indices failing inside onnxruntime (the 500 path)."""
    return _cached(server_bundles_dir, "lookup", _lookup)



@pytest.fixture(scope="session")
def words_bundle(server_bundles_dir: Path) -> Path:
    """Strings in, strings and ids out: text str [N] -> label int64 [N] (WORDS ids from 1, else 0), echo str [N]."""
    return _cached(server_bundles_dir, "words", _words)
