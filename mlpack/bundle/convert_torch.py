"""PyTorch ``nn.Module`` → ONNX with torch.onnx (dynamic batch axis, several inputs).

The TorchScript-based exporter (``dynamo=False``) is used on purpose: the
dynamo exporter needs onnxscript, which the notebook side does not ship,
and the legacy one handles the feed-forward models people serve from a
notebook with a dynamic batch axis.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np

from mlpack.bundle.frameworks import Adapter, CaptureOptions, ConversionFailed, Prepared, class_path, mro_modules, run_original
from mlpack.bundle.samples import as_named, check_array, to_array
from mlpack.errors import CaptureError

__all__ = ["TorchAdapter", "OPSET"]

OPSET = 17


def _names(given: tuple[str, ...] | None, count: int, stem: str) -> list[str]:
    if given is not None:
        if len(given) != count:
            raise CaptureError(
                f"{len(given)} {stem} name(s) given for {count} {stem}(s)", hint=f"pass exactly {count} {stem}_names"
            )
        return list(given)
    return [stem] if count == 1 else [f"{stem}_{i}" for i in range(count)]


class TorchAdapter(Adapter):
    name = "torch"

    def detect(self, model: Any) -> bool:
        return any(m == "torch.nn.modules.module" for m in mro_modules(model))

    def prepare(self, model: Any, sample: Any, options: CaptureOptions) -> Prepared:
        import torch

        named = as_named(sample)
        if named is not None:
            names, values = list(named), list(named.values())
        elif isinstance(sample, (tuple, list)) and sample and all(hasattr(v, "shape") for v in sample):
            values = list(sample)
            names = _names(options.input_names, len(values), "input")
        else:
            values = [sample]
            names = _names(options.input_names, 1, "input")
        param = next(iter(model.parameters()), None)
        float_dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
        np_float = torch.empty(0, dtype=float_dtype).numpy().dtype
        feeds: dict[str, np.ndarray] = {}
        for name, value in zip(names, values):
            array = check_array(to_array(value, f"sample input {name!r}"), f"sample input {name!r}")
            # Numpy data is float64 by default; the module computes in its parameters' dtype.
            feeds[name] = np.ascontiguousarray(array.astype(np_float) if array.dtype.kind == "f" else array)
        batches = {a.shape[0] for a in feeds.values()}
        if len(batches) != 1:
            raise CaptureError(
                f"sample inputs have different batch sizes {sorted(batches)}",
                hint="give every input the same number of rows (axis 0 is the batch)",
            )
        output_names: list[str] = []

        def reference(f: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            from mlpack.bundle.predictor import flatten_outputs

            was_training = model.training
            model.eval()
            try:
                with torch.no_grad():
                    out = model(*(torch.from_numpy(f[n]) for n in names))
            finally:
                model.train(was_training)
            if isinstance(out, dict) and not output_names:
                output_names.extend(str(k) for k in out)
            arrays = flatten_outputs(out)
            if not output_names:
                output_names.extend(_names(options.output_names, len(arrays), "output"))
            return dict(zip(output_names, arrays))

        run_original(lambda: reference(feeds))
        if options.output_names is not None and list(options.output_names) != output_names:
            raise CaptureError(
                f"output_names {list(options.output_names)} do not match the {len(output_names)} output(s)",
                hint="pass one name per output",
            )
        _check_axes(options.dynamic_axes, feeds)
        return Prepared(self.name, class_path(model), feeds, reference, {"kind": "torch", "outputs": {}})

    def to_onnx(self, model: Any, prepared: Prepared, options: CaptureOptions) -> bytes:
        import torch

        outputs = list(prepared.reference_fn(prepared.feeds))
        inputs = list(prepared.feeds)
        args = tuple(torch.from_numpy(a) for a in prepared.feeds.values())
        buffer = io.BytesIO()
        was_training = model.training
        model.eval()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the exporter's deprecation and tracer warnings
                torch.onnx.export(
                    model,
                    args,
                    buffer,
                    input_names=inputs,
                    output_names=outputs,
                    dynamic_axes=_export_axes(inputs + outputs, dict(options.dynamic_axes)),
                    opset_version=OPSET,
                    dynamo=False,
                )
        except Exception as exc:
            raise ConversionFailed(f"torch.onnx cannot export {class_path(model)}: {type(exc).__name__}: {exc}") from None
        finally:
            model.train(was_training)
        data = buffer.getvalue()
        if options.dynamic_axes:
            _check_shorter(data, prepared, dict(options.dynamic_axes))
        return data


def _check_axes(axes: tuple[tuple[str, tuple[int, ...]], ...], feeds: dict[str, np.ndarray]) -> None:
    for name, dims in axes:
        if name not in feeds:
            raise CaptureError(f"dynamic_axes names {name!r}, which is not an input", hint=f"the inputs are {list(feeds)}")
        ndim = feeds[name].ndim
        if max(dims) >= ndim:
            raise CaptureError(
                f"dynamic axis {max(dims)} of {name!r} does not exist: the sample input has {ndim} axes",
                hint=f"use axes 1..{ndim - 1} (axis 0, the batch, is always dynamic)",
            )


def _export_axes(names: list[str], dynamic: dict[str, tuple[int, ...]]) -> dict[str, dict[int, str]]:
    return {n: {0: "batch", **{a: f"{n}_axis{a}" for a in dynamic.get(n, ())}} for n in names}


def _check_shorter(model_bytes: bytes, prepared: Prepared, dynamic: dict[str, tuple[int, ...]]) -> None:
    """Runs the export at a length other than the sample's on every dynamic axis: the
    sample cut one shorter there must answer like the original, or the axis is not free."""
    import onnxruntime as ort

    from mlpack.bundle.parity import compare, worst_line

    feeds = dict(prepared.feeds)
    for name, axes in dynamic.items():
        for axis in axes:
            if feeds[name].shape[axis] > 1:
                feeds[name] = np.ascontiguousarray(np.take(feeds[name], range(feeds[name].shape[axis] - 1), axis=axis))
    shapes = {n: list(a.shape) for n, a in feeds.items()}
    try:
        reference = prepared.reference_fn(feeds)
    except Exception as exc:
        raise CaptureError(
            f"the model fails on inputs of shape {shapes} (the sample cut one shorter on its dynamic axes): "
            f"{type(exc).__name__}: {exc}",
            hint="mark only axes whose length the model itself accepts as varying",
        ) from None
    try:
        session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
        served = dict(zip(reference, session.run(list(reference), feeds)))
    except Exception as exc:
        raise ConversionFailed(f"the exported model does not take inputs of shape {shapes}: {exc}") from None
    result = compare(reference, served, rows=next(iter(feeds.values())).shape[0])
    if not result["passed"]:
        raise ConversionFailed(f"the exported model answers differently at shape {shapes}: {worst_line(result)}")
