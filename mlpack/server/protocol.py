"""The Open Inference Protocol's documents, shared by the REST routes and the gRPC service.

Model metadata, Triton's model configuration, statistics and repository index
are built here once as plain dicts (the REST JSON); the gRPC service parses the
same dicts into its messages, so both transports always say the same thing.

Interoperability rule: a model with a single input accepts that input under any
name (KServe's samples send ``input-0``, MLServer's NumpyRequestCodec
``input-1``); the metadata says so in ``parameters.any_input_name``.
"""

from __future__ import annotations

from typing import Any, Sequence

from mlpack._version import __version__
from mlpack.server.metrics import Metrics
from mlpack.server.tensors import Spec, invalid

__all__ = [
    "MODEL_VERSION",
    "SERVER_NAME",
    "EXTENSIONS",
    "server_metadata",
    "model_metadata",
    "model_config",
    "model_statistics",
    "repository_index",
    "input_spec",
]

MODEL_VERSION = "1"
SERVER_NAME = "mlpack"
EXTENSIONS = ["binary_tensor_data", "model_configuration", "statistics", "model_repository"]

# Triton's model_config DataType names.
_CONFIG_TYPES = {"BYTES": "TYPE_STRING"}


def server_metadata() -> dict[str, Any]:
    return {"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS}


def _platform(runner: Any) -> str:
    return "onnxruntime_onnx" if runner.flavor == "onnx" else f"mlpack_{runner.flavor}"


def _tensors(specs: Sequence[Spec]) -> list[dict[str, Any]]:
    return [{"name": s.name, "datatype": s.datatype, "shape": s.v2_shape()} for s in specs]


def model_metadata(runner: Any) -> dict[str, Any]:
    """The V2 model metadata document."""
    doc: dict[str, Any] = {
        "name": runner.name,
        "versions": [MODEL_VERSION],
        "platform": _platform(runner),
        "inputs": _tensors(runner.inputs),
        "outputs": _tensors(runner.outputs),
    }
    params: dict[str, Any] = {}
    if len(runner.inputs) == 1:
        params["any_input_name"] = True
    if runner.table is not None:  # MLServer's convention: a pandas (or str) model, one input per column
        params.update(content_type="pd" if runner.table.kind == "table" else "str", **runner.table.to_dict())
    if params:
        doc["parameters"] = params
    return doc


def model_config(runner: Any) -> dict[str, Any]:
    """Triton's model configuration (JSON form): full shapes, ``max_batch_size`` 0.

    mlpack accepts any number of rows per request and batches on its own, so
    it reports no Triton batch dimension: the dims are the whole shape, -1 for
    a dynamic axis.
    """

    def entry(spec: Spec) -> dict[str, Any]:
        return {"name": spec.name, "data_type": _CONFIG_TYPES.get(spec.datatype, "TYPE_" + spec.datatype), "dims": spec.v2_shape()}

    return {
        "name": runner.name,
        "platform": _platform(runner),
        "backend": "onnxruntime" if runner.flavor == "onnx" else "python",
        "max_batch_size": 0,
        "input": [entry(s) for s in runner.inputs],
        "output": [entry(s) for s in runner.outputs],
    }


def _duration(count: int, seconds: float) -> dict[str, int]:
    return {"count": int(count), "ns": int(seconds * 1e9)}


def model_statistics(runner: Any, metrics: Metrics) -> dict[str, Any]:
    """Triton's statistics document, from the server's own counters (both transports)."""
    stats = metrics.infer_statistics()
    return {
        "model_stats": [
            {
                "name": runner.name,
                "version": MODEL_VERSION,
                "last_inference": int(stats.last_inference_ms),
                "inference_count": stats.rows,
                "execution_count": stats.runs,
                "inference_stats": {
                    "success": _duration(stats.ok, stats.ok_seconds),
                    "fail": _duration(stats.failed, stats.failed_seconds),
                    "queue": _duration(0, 0.0),
                    "compute_input": _duration(0, 0.0),
                    "compute_infer": _duration(stats.runs, stats.run_seconds),
                    "compute_output": _duration(0, 0.0),
                },
                "batch_stats": [],
            }
        ]
    }


def repository_index(name: str, *, ready: bool, reason: str = "") -> list[dict[str, str]]:
    """The one model this server serves, as Triton's repository index lists it."""
    entry = {"name": name, "version": MODEL_VERSION, "state": "READY" if ready else ("UNAVAILABLE" if reason else "LOADING")}
    if reason:
        entry["reason"] = reason
    return [entry]


def input_spec(name: str, inputs: Sequence[Spec], by_name: dict[str, Spec], given: int) -> Spec:
    """The model input a request tensor named ``name`` feeds (one of ``given`` tensors)."""
    spec = by_name.get(name)
    if spec is not None:
        return spec
    if len(inputs) == 1 and given == 1:
        return inputs[0]  # the single-input rule: any one name
    listed = ", ".join(repr(s.name) for s in inputs)
    raise invalid(f"unknown input {name!r}", input=name, hint=f"the model's inputs are {listed}")
