"""The one code path that runs a bundle's model (parity check and server).

``OnnxPredictor`` wraps an onnxruntime session; ``PythonPredictor`` an
unpickled model whose outputs come from methods named in the manifest
(``predict``, ``predict_proba``) or from a torch module's forward. Both
check feeds against the schema first, so callers get one clear error
instead of a framework's.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mlpack.bundle.spec import ORT_DTYPES, TensorSpec
from mlpack.errors import BundleError, ServeError

__all__ = ["Predictor", "OnnxPredictor", "PythonPredictor", "check_feeds"]


def check_feeds(inputs: Sequence[TensorSpec], feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Returns the feeds as arrays of the schema's dtypes, or raises ServeError."""
    names = [s.name for s in inputs]
    unknown = sorted(set(feeds) - set(names))
    missing = [n for n in names if n not in feeds]
    if unknown or missing:
        raise ServeError(
            f"inputs do not match the model: missing {missing}, unknown {unknown}",
            hint=f"send exactly the inputs {names}",
            status=400,
        )
    out: dict[str, np.ndarray] = {}
    for spec in inputs:
        value = feeds[spec.name]
        try:
            array = np.asarray(value)
            if spec.dtype == "str":
                array = array.astype(object)
            elif array.dtype != spec.numpy_dtype:
                if not _castable(array.dtype, spec.numpy_dtype):
                    raise TypeError(f"cannot use {array.dtype} values as {spec.dtype}")
                array = array.astype(spec.numpy_dtype)
        except (TypeError, ValueError) as exc:
            raise ServeError(
                f"input {spec.name!r} has the wrong type: {exc}",
                hint=f"send {spec.dtype} values of shape {list(spec.shape)}",
                status=400,
                input_name=spec.name,
            ) from None
        if array.ndim != len(spec.shape) or any(
            want is not None and got != want for got, want in zip(array.shape, spec.shape)
        ):
            raise ServeError(
                f"input {spec.name!r} has shape {list(array.shape)}, the model takes {list(spec.shape)}",
                hint="None marks an axis of any size (the batch)",
                status=400,
                input_name=spec.name,
            )
        out[spec.name] = array
    return out


def _castable(src: np.dtype, dst: np.dtype) -> bool:
    # JSON numbers arrive as int64/float64: numbers may become floats, and
    # integers may become narrower integers; nothing else is guessed.
    if dst.kind == "f":
        return src.kind in "biuf"
    if dst.kind in "iu":
        return src.kind in "biu"
    return src.kind == dst.kind


class Predictor:
    """Runs a model: ``run(feeds) -> outputs`` by name, in schema order."""

    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    def run(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError


class OnnxPredictor(Predictor):
    """An onnxruntime session over the model bytes (already hash-checked)."""

    def __init__(
        self,
        model_bytes: bytes,
        inputs: list[TensorSpec],
        outputs: list[TensorSpec],
        *,
        threads: int | None = None,
        providers: Sequence[str] | None = None,
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise BundleError(
                "onnxruntime is not installed, so this ONNX bundle cannot run",
                hint="pip install 'mlpack[serve]' (or onnxruntime)",
            ) from None
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            model_bytes, sess_options=options, providers=list(providers or ["CPUExecutionProvider"])
        )
        self.inputs = inputs
        self.outputs = outputs
        self._output_names = [o.name for o in outputs]

    def run(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        arrays = check_feeds(self.inputs, feeds)
        try:
            values = self.session.run(self._output_names, arrays)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ServeError(f"the model failed on this input: {exc}", hint="check the input values", status=400) from None
        return {name: np.asarray(v) for name, v in zip(self._output_names, values)}


class PythonPredictor(Predictor):
    """An unpickled model, called as the manifest's ``entry`` says."""

    def __init__(
        self,
        model_bytes: bytes,
        inputs: list[TensorSpec],
        outputs: list[TensorSpec],
        entry: Mapping[str, Any],
        *,
        threads: int | None = None,
        table: Any = None,
    ) -> None:
        try:
            self.model = pickle.load(io.BytesIO(model_bytes))
        except Exception as exc:  # missing module, version skew ...
            raise BundleError(
                f"the pickled model does not load here: {exc}",
                hint="install the versions in the bundle's requirements.lock",
            ) from None
        self.inputs = inputs
        self.outputs = outputs
        self.kind = str(entry.get("kind", "methods"))
        self.methods = dict(entry.get("outputs", {}))
        self.float64 = bool(entry.get("float64", False))
        self.table = table  # a TableSchema: the model takes the DataFrame (or texts) rebuilt from the columns
        if self.kind == "torch":
            import torch

            self.model.eval()
            if threads is not None:
                torch.set_num_threads(int(threads))
        elif threads is not None:
            _limit_native_threads(int(threads))

    def run(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        arrays = check_feeds(self.inputs, feeds)
        if self.kind == "torch":
            return self._run_torch(arrays)
        if self.table is not None:
            x = self.table.model_input(arrays)
            return {spec.name: np.asarray(getattr(self.model, self.methods[spec.name])(x)) for spec in self.outputs}
        x = arrays[self.inputs[0].name]
        if self.float64 and x.dtype.kind == "f":
            x = x.astype(np.float64)  # what the model saw at capture (and was trained on)
        result = {}
        for spec in self.outputs:
            method = getattr(self.model, self.methods[spec.name])
            result[spec.name] = np.asarray(method(x))
        return result

    def _run_torch(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        with torch.no_grad():
            out = self.model(*(torch.from_numpy(np.ascontiguousarray(arrays[s.name])) for s in self.inputs))
        values = flatten_outputs(out)
        return {spec.name: v for spec, v in zip(self.outputs, values)}


def _limit_native_threads(threads: int) -> None:
    """Caps BLAS/OpenMP pools (scikit-learn, XGBoost, LightGBM) to the container's CPUs."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # not a scikit-learn model: nothing to cap
        return
    threadpool_limits(limits=threads)


def flatten_outputs(out: Any) -> list[np.ndarray]:
    """A torch module's result as a list of arrays (tensor, tuple/list or dict)."""
    if isinstance(out, Mapping):
        out = list(out.values())
    if not isinstance(out, (list, tuple)):
        out = [out]
    return [np.asarray(o.detach().cpu().numpy()) if hasattr(o, "detach") else np.asarray(o) for o in out]


def ort_specs(nodes: Sequence[Any]) -> list[TensorSpec]:
    """Schema from onnxruntime NodeArgs (symbolic dims become None)."""
    specs = []
    for node in nodes:
        dtype = ORT_DTYPES.get(node.type)
        if dtype is None:
            raise BundleError(f"ONNX value {node.name!r} has unsupported type {node.type}", hint="use tensor inputs/outputs")
        shape = tuple(d if isinstance(d, int) and d > 0 else None for d in (node.shape or []))
        specs.append(TensorSpec(node.name, dtype, shape))
    return specs
