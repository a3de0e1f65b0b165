"""Framework adapters: recognise a model, check its sample, convert it.

Each adapter answers three questions (in the manner of repo2docker's build
packs): ``detect(model)`` (by class module, without importing the
framework), ``prepare(model, sample, options)`` (checked inputs, the
original model's outputs, how the python flavour calls it) and
``to_onnx(model, prepared)``. Converters are imported lazily so that
``mlpack.bundle`` needs only numpy and yaml.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlpack.bundle.spec import TensorSpec, dtype_name
from mlpack.errors import CaptureError

__all__ = ["Prepared", "ConversionFailed", "Adapter", "CaptureOptions", "select_adapter", "SUPPORTED", "rename_outputs", "dynamic_batch",
           "converter_reason"]

SUPPORTED = (
    "scikit-learn estimators and Pipelines, PyTorch nn.Module, XGBoost and LightGBM "
    "(sklearn API), a ready ONNX model (onnx.ModelProto or a path to a .onnx file); "
    "and, as the pickled python flavour, any object with a predict() method from an installed package"
)


class ConversionFailed(Exception):
    """The converter could not produce ONNX (the auto flavour falls back to python)."""


def converter_reason(exc: BaseException, limit: int = 400) -> str:
    """A converter's message as a one-line reason: skl2onnx follows its first line with a
    paragraph of boilerplate ("It usually means ... Examples can be found in the gallery.")
    that the manifest and ``mlpack inspect`` would otherwise carry for every fallback."""
    text = str(exc).strip()
    first = next((line.strip() for line in text.splitlines() if line.strip()), "") or type(exc).__name__
    return first if len(first) <= limit else first[: limit - 3] + "..."


@dataclass(frozen=True)
class CaptureOptions:
    """Options of one capture that adapters read."""

    input_names: tuple[str, ...] | None = None
    output_names: tuple[str, ...] | None = None
    # input name -> axes besides the batch whose length varies in use (torch export)
    dynamic_axes: tuple[tuple[str, tuple[int, ...]], ...] = ()


@dataclass
class Prepared:
    """A model made ready for capture by its adapter."""

    framework: str
    model_class: str
    feeds: dict[str, np.ndarray]
    reference_fn: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
    entry: dict[str, Any] = field(default_factory=dict)  # how the python flavour calls the model
    python_ok: bool = True
    table: Any = None  # a TableSchema when the sample is a table or text (one 1-D input per column)

    def input_specs(self) -> list[TensorSpec]:
        return [TensorSpec(n, dtype_name(a.dtype), (None, *a.shape[1:])) for n, a in self.feeds.items()]

    def model_input(self) -> Any:
        """The sample as the original model takes it (a DataFrame for a table)."""
        return self.table.model_input(self.feeds) if self.table is not None else None


class Adapter:
    name = "?"

    def detect(self, model: Any) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def prepare(self, model: Any, sample: Any, options: CaptureOptions) -> Prepared:  # pragma: no cover
        raise NotImplementedError

    def to_onnx(self, model: Any, prepared: Prepared, options: CaptureOptions) -> bytes:
        raise ConversionFailed(f"no ONNX converter for {type(model).__name__}")


def class_path(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def mro_modules(obj: Any) -> list[str]:
    return [getattr(c, "__module__", "") or "" for c in type(obj).__mro__]


def run_original(fn: Callable[[], Any], what: str = "the model") -> Any:
    """Runs the original model on the sample; its failure is the user's to fix."""
    try:
        return fn()
    except CaptureError:
        raise
    except Exception as exc:
        raise CaptureError(
            f"{what} fails on the sample: {type(exc).__name__}: {exc}",
            hint="pass input of the shape and dtype the model was trained on (a few rows of X_test)",
        ) from None


def rename_outputs(model_bytes: bytes, mapping: dict[str, str]) -> bytes:
    """Renames graph outputs (e.g. skl2onnx's ``variable`` to ``prediction``)."""
    import onnx

    proto = onnx.load_from_string(model_bytes)
    present = {o.name for o in proto.graph.output}
    mapping = {old: new for old, new in mapping.items() if old in present and old != new}
    if not mapping:
        return model_bytes
    for node in proto.graph.node:
        for i, name in enumerate(node.output):
            if name in mapping:
                node.output[i] = mapping[name]
        for i, name in enumerate(node.input):
            if name in mapping:
                node.input[i] = mapping[name]
    for out in proto.graph.output:
        if out.name in mapping:
            out.name = mapping[out.name]
    return proto.SerializeToString()


def dynamic_batch(model_bytes: bytes) -> bytes:
    """Marks axis 0 of every graph input and output as the dynamic batch axis.

    Some converters (onnxmltools for LightGBM labels) declare a fixed first
    dimension of 1, which onnxruntime warns about on every batch.
    """
    import onnx

    proto = onnx.load_from_string(model_bytes)
    for value in list(proto.graph.input) + list(proto.graph.output):
        tensor = value.type.tensor_type
        if tensor.HasField("shape") and len(tensor.shape.dim) >= 1:
            dim = tensor.shape.dim[0]
            dim.Clear()
            dim.dim_param = "batch"
    return proto.SerializeToString()


def select_adapter(model: Any) -> Adapter:
    """The adapter for ``model``, or a CaptureError naming what is supported."""
    from mlpack.bundle.convert_onnx import OnnxAdapter
    from mlpack.bundle.convert_tabular import BoostAdapter, PredictAdapter, SklearnAdapter
    from mlpack.bundle.convert_torch import TorchAdapter

    # Order matters: XGBoost/LightGBM classes also derive from sklearn's.
    for adapter in (OnnxAdapter(), TorchAdapter(), BoostAdapter("xgboost"), BoostAdapter("lightgbm"), SklearnAdapter(), PredictAdapter()):
        if adapter.detect(model):
            return adapter
    raise CaptureError(
        f"mlpack cannot capture a {type(model).__module__}.{type(model).__qualname__}",
        hint=f"supported: {SUPPORTED}",
        model_type=class_path(model),
    )
