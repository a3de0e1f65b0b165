"""A ready ONNX model (``onnx.ModelProto`` or a path to a .onnx file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mlpack.bundle.frameworks import Adapter, CaptureOptions, Prepared, run_original
from mlpack.bundle.predictor import ort_specs
from mlpack.bundle.samples import as_named, check_array, check_empty, to_array
from mlpack.errors import CaptureError

__all__ = ["OnnxAdapter"]


class OnnxAdapter(Adapter):
    name = "onnx"

    def detect(self, model: Any) -> bool:
        if isinstance(model, (str, Path)):
            return str(model).endswith(".onnx")
        return type(model).__name__ == "ModelProto" and type(model).__module__.startswith("onnx")

    def _bytes(self, model: Any) -> bytes:
        if isinstance(model, (str, Path)):
            path = Path(model).expanduser()
            if not path.is_file():
                raise CaptureError(f"ONNX file {path} does not exist", hint="pass the path of an existing .onnx file")
            return path.read_bytes()
        return model.SerializeToString()

    def prepare(self, model: Any, sample: Any, options: CaptureOptions) -> Prepared:
        import onnxruntime as ort

        data = self._bytes(model)
        try:
            session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise CaptureError(f"onnxruntime cannot load this ONNX model: {exc}", hint="check the model with onnx.checker") from None
        specs = ort_specs(session.get_inputs())
        named = as_named(sample)
        if named is None:
            values = list(sample) if isinstance(sample, (tuple, list)) and len(specs) > 1 else [sample]
            if len(values) != len(specs):
                raise CaptureError(
                    f"the model has {len(specs)} inputs, the sample gives {len(values)}",
                    hint="pass a dict {input_name: array} with " + ", ".join(s.name for s in specs),
                )
            named = {s.name: v for s, v in zip(specs, values)}
        if set(named) != {s.name for s in specs}:
            raise CaptureError(
                f"sample inputs {sorted(named)} do not match the model's {[s.name for s in specs]}",
                hint="name each sample array after a model input",
            )
        feeds: dict[str, np.ndarray] = {}
        for spec in specs:
            what = f"sample input {spec.name!r}"
            array = to_array(named[spec.name], what)
            if spec.dtype == "str":
                check_empty(array, what)
                array = array.astype(str)
            else:
                check_array(array, what)
                want = np.dtype(spec.dtype)
                if array.dtype != want:
                    # Same kind only (float64 -> float32); never floats to ints or back.
                    if array.dtype.kind != want.kind and not (array.dtype.kind in "iu" and want.kind in "iu"):
                        raise CaptureError(
                            f"{what} has dtype {array.dtype}, the model takes {spec.dtype}",
                            hint=f"convert it first, e.g. x.astype(np.{spec.dtype})",
                            dtype=str(array.dtype),
                        )
                    array = array.astype(want)
            if array.ndim != len(spec.shape) or any(w is not None and g != w for g, w in zip(array.shape, spec.shape)):
                raise CaptureError(
                    f"{what} has shape {list(array.shape)}, the model takes {['batch' if d is None else d for d in spec.shape]}",
                    hint="reshape the sample to the model's input shape (axis 0 is the batch)",
                )
            feeds[spec.name] = np.ascontiguousarray(array)
        out_names = [o.name for o in session.get_outputs()]

        def reference(f: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return dict(zip(out_names, (np.asarray(v) for v in session.run(out_names, f))))

        run_original(lambda: reference(feeds))
        prepared = Prepared(self.name, "onnx.ModelProto", feeds, reference, python_ok=False)
        prepared.entry = {"kind": "onnx"}
        return prepared

    def to_onnx(self, model: Any, prepared: Prepared, options: CaptureOptions) -> bytes:
        return self._bytes(model)
