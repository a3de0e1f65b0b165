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

from mlpack.bundle.samples import as_named, check_array, to_array
from mlpack.bundle.spec import TensorSpec, dtype_name
from mlpack.errors import CaptureError

__all__ = ["Prepared", "ConversionFailed", "Adapter", "CaptureOptions", "select_adapter", "SUPPORTED", "rename_outputs"]

SUPPORTED = (
    "scikit-learn estimators and Pipelines, PyTorch nn.Module, XGBoost and LightGBM "
    "(sklearn API), a ready ONNX model (onnx.ModelProto or a path to a .onnx file); "
    "and, as the pickled python flavour, any object with a predict() method from an installed package"
)


class ConversionFailed(Exception):
    """The converter could not produce ONNX (the auto flavour falls back to python)."""


@dataclass(frozen=True)
class CaptureOptions:
    """Options of one capture that adapters read."""

    input_names: tuple[str, ...] | None = None
    output_names: tuple[str, ...] | None = None


@dataclass
class Prepared:
    """A model made ready for capture by its adapter."""

    framework: str
    model_class: str
    feeds: dict[str, np.ndarray]
    reference_fn: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
    entry: dict[str, Any] = field(default_factory=dict)  # how the python flavour calls the model
    python_ok: bool = True

    def input_specs(self) -> list[TensorSpec]:
        return [TensorSpec(n, dtype_name(a.dtype), (None, *a.shape[1:])) for n, a in self.feeds.items()]


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


# -- tabular models: scikit-learn, XGBoost, LightGBM, anything with predict ---


def tabular_feeds(model: Any, sample: Any, options: CaptureOptions, *, cast: bool = True) -> dict[str, np.ndarray]:
    """One 2-D numeric input, float32 for the converters, feature count checked."""
    named = as_named(sample)
    if named is not None:
        if len(named) != 1:
            raise CaptureError(
                f"this model takes one input, the sample has {len(named)} ({', '.join(named)})",
                hint="pass a single 2-D array (rows x features)",
            )
        (name, value), = named.items()
    else:
        name, value = (options.input_names or ("input",))[0], sample
    array = check_array(to_array(value), min_ndim=2)
    if array.ndim != 2:
        raise CaptureError(
            f"sample has shape {list(array.shape)}; this model takes 2-D input (rows x features)",
            hint="reshape to (rows, features), e.g. X.reshape(len(X), -1)",
        )
    n_features = getattr(model, "n_features_in_", None)
    if isinstance(n_features, (int, np.integer)) and array.shape[1] != n_features:
        raise CaptureError(
            f"sample has {array.shape[1]} feature column(s), the model was trained on {int(n_features)}",
            hint=f"pass rows with {int(n_features)} columns, like the training data",
            expected_features=int(n_features),
        )
    if cast:
        array = array.astype(np.float32)
    return {name: np.ascontiguousarray(array)}


def _methods(model: Any, classifier: bool) -> dict[str, str]:
    if classifier:
        methods = {"label": "predict"}
        if _has(model, "predict_proba"):
            methods["probabilities"] = "predict_proba"
        return methods
    return {"prediction": "predict"}


def _has(model: Any, attr: str) -> bool:
    try:  # sklearn hides predict_proba behind a property that may raise
        return callable(getattr(model, attr, None))
    except Exception:
        return False


def _tabular_prepared(framework: str, model: Any, feeds: dict[str, np.ndarray], methods: dict[str, str]) -> Prepared:
    name = next(iter(feeds))

    def reference(f: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # The original sees the float32 values that will be served, in float64.
        x = f[name].astype(np.float64) if f[name].dtype.kind == "f" else f[name]
        return {out: np.asarray(getattr(model, m)(x)) for out, m in methods.items()}

    prepared = Prepared(framework, class_path(model), feeds, reference, {"kind": "methods", "outputs": methods, "float64": True})
    run_original(lambda: reference(feeds))
    return prepared


class SklearnAdapter(Adapter):
    name = "sklearn"

    def detect(self, model: Any) -> bool:
        return any(m.startswith("sklearn.") for m in mro_modules(model))

    def _classifier(self, model: Any) -> bool:
        from sklearn.base import is_classifier

        return bool(is_classifier(model))

    def prepare(self, model: Any, sample: Any, options: CaptureOptions) -> Prepared:
        if not _has(model, "predict"):
            raise CaptureError(
                f"{type(model).__name__} has no predict(); mlpack serves predictors",
                hint="capture a fitted classifier, regressor or a Pipeline ending in one",
            )
        _check_fitted(model)
        feeds = tabular_feeds(model, sample, options)
        return _tabular_prepared(self.name, model, feeds, _methods(model, self._classifier(model)))

    def to_onnx(self, model: Any, prepared: Prepared, options: CaptureOptions) -> bytes:
        try:
            from skl2onnx import to_onnx
            from skl2onnx.common.data_types import FloatTensorType
        except ImportError as exc:
            raise ConversionFailed(f"skl2onnx is not installed ({exc}); pip install 'mlpack[notebook]'") from None
        name, x = next(iter(prepared.feeds.items()))
        opts = {id(model): {"zipmap": False}} if self._classifier(model) else None
        try:
            proto = to_onnx(model, initial_types=[(name, FloatTensorType([None, x.shape[1]]))], options=opts)
        except Exception as exc:
            raise ConversionFailed(f"skl2onnx cannot convert {type(model).__name__}: {exc}") from None
        return dynamic_batch(rename_outputs(proto.SerializeToString(), {"variable": "prediction"}))


def _check_fitted(model: Any) -> None:
    try:
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted
    except ImportError:  # pragma: no cover
        return
    try:
        check_is_fitted(model)
    except NotFittedError:
        raise CaptureError(f"{type(model).__name__} is not fitted", hint="call model.fit(X, y) before capturing it") from None
    except TypeError:
        pass


class BoostAdapter(Adapter):
    """XGBoost and LightGBM through their scikit-learn API (onnxmltools)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def detect(self, model: Any) -> bool:
        return any(m.startswith(self.name + ".") for m in mro_modules(model))

    def prepare(self, model: Any, sample: Any, options: CaptureOptions) -> Prepared:
        if not _has(model, "predict"):
            raise CaptureError(
                f"{type(model).__name__} is not a {self.name} sklearn-API model",
                hint=f"capture {self.name}'s XGBClassifier/XGBRegressor or LGBMClassifier/LGBMRegressor, not a raw Booster",
            )
        feeds = tabular_feeds(model, sample, options)
        return _tabular_prepared(self.name, model, feeds, _methods(model, _has(model, "predict_proba")))

    def to_onnx(self, model: Any, prepared: Prepared, options: CaptureOptions) -> bytes:
        try:
            from onnxmltools.convert import convert_lightgbm, convert_xgboost
            from onnxmltools.convert.common.data_types import FloatTensorType
        except ImportError as exc:
            raise ConversionFailed(f"onnxmltools is not installed ({exc}); pip install 'mlpack[notebook]'") from None
        name, x = next(iter(prepared.feeds.items()))
        types = [(name, FloatTensorType([None, x.shape[1]]))]
        try:
            if self.name == "xgboost":
                proto = convert_xgboost(_plain_xgboost(model), initial_types=types)
            else:
                proto = convert_lightgbm(model, initial_types=types, zipmap=False)
        except Exception as exc:
            raise ConversionFailed(f"onnxmltools cannot convert {type(model).__name__}: {exc}") from None
        return dynamic_batch(rename_outputs(proto.SerializeToString(), {"variable": "prediction"}))


def _plain_xgboost(model: Any) -> Any:
    """onnxmltools wants feature names f0..fn; a model fitted on a DataFrame has real ones."""
    booster = model.get_booster()
    if booster.feature_names and any(n != f"f{i}" for i, n in enumerate(booster.feature_names)):
        import copy

        model = copy.deepcopy(model)
        model.get_booster().feature_names = None
    return model


class PredictAdapter(Adapter):
    """Any object with predict(): python flavour only."""

    name = "python"

    def detect(self, model: Any) -> bool:
        return _has(model, "predict") and not isinstance(model, type)

    def prepare(self, model: Any, sample: Any, options: CaptureOptions) -> Prepared:
        feeds = tabular_feeds(model, sample, options, cast=False)
        methods = {"prediction": "predict"}
        if _has(model, "predict_proba"):
            methods = {"label": "predict", "probabilities": "predict_proba"}
        return _tabular_prepared(self.name, model, feeds, methods)


def select_adapter(model: Any) -> Adapter:
    """The adapter for ``model``, or a CaptureError naming what is supported."""
    from mlpack.bundle.convert_onnx import OnnxAdapter
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
