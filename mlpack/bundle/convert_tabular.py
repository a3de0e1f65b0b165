"""Tabular models: scikit-learn (skl2onnx), XGBoost and LightGBM (onnxmltools),
and any object with ``predict()`` (python flavour only).

An array sample gives one 2-D float32 input named ``input``; a DataFrame,
dict of columns, list of records or list of strings gives a table or text
bundle (see :mod:`mlpack.bundle.convert_table`). Classifiers give ``label``
and ``probabilities`` (skl2onnx's ZipMap turned off, so a plain tensor),
regressors ``prediction``, shaped like the original's answers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlpack.bundle.frameworks import (
    Adapter,
    CaptureOptions,
    ConversionFailed,
    converter_reason,
    Prepared,
    class_path,
    dynamic_batch,
    mro_modules,
    rename_outputs,
    run_original,
)
from mlpack.bundle.convert_table import matrix_table_onnx, shape_like, sklearn_table_onnx, table_prepared
from mlpack.bundle.samples import as_named, check_array, to_array
from mlpack.errors import CaptureError

__all__ = ["SklearnAdapter", "BoostAdapter", "PredictAdapter", "tabular_feeds"]


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


def _text_name(options: CaptureOptions) -> str:
    return (options.input_names or ("text",))[0]


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
        methods = _methods(model, self._classifier(model))
        table = table_prepared(self.name, model, sample, methods, _text_name(options))
        if table is not None:
            return table
        feeds = tabular_feeds(model, sample, options)
        return _tabular_prepared(self.name, model, feeds, methods)

    def to_onnx(self, model: Any, prepared: Prepared, options: CaptureOptions) -> bytes:
        try:
            from skl2onnx import to_onnx
            from skl2onnx.common.data_types import FloatTensorType
        except ImportError as exc:
            raise ConversionFailed(f"skl2onnx is not installed ({exc}); pip install 'mlpack[notebook]'") from None
        opts = {id(model): {"zipmap": False}} if self._classifier(model) else {}
        # XGBoost/LightGBM steps inside a Pipeline convert with onnxmltools' operator
        # converters, which emit ai.onnx.ml 3 at most.
        opset = {"": 17, "ai.onnx.ml": 3} if _register_boosters(model) else None

        def convert(types: list, options: dict) -> Any:
            try:
                return to_onnx(model, initial_types=types, options=options or None, target_opset=opset)
            except Exception as exc:
                raise ConversionFailed(f"skl2onnx cannot convert {type(model).__name__}: {converter_reason(exc)}") from None

        if prepared.table is not None:
            data = sklearn_table_onnx(model, prepared, convert, opts)
        else:
            name, x = next(iter(prepared.feeds.items()))
            data = convert([(name, FloatTensorType([None, x.shape[1]]))], opts).SerializeToString()
        return shape_like(dynamic_batch(rename_outputs(data, {"variable": "prediction"})), prepared)


def _register_boosters(model: Any) -> bool:
    """Registers skl2onnx converters for XGBoost/LightGBM estimators nested in ``model``."""
    try:
        nested = list(model.get_params(deep=True).values())
    except Exception:
        return False
    libs = {getattr(type(v), "__module__", "").split(".")[0] for v in nested} & {"xgboost", "lightgbm"}
    if not libs:
        return False
    try:
        from skl2onnx import update_registered_converter
        from skl2onnx.common.shape_calculator import (
            calculate_linear_classifier_output_shapes as clf_shapes,
            calculate_linear_regressor_output_shapes as reg_shapes,
        )
    except ImportError:
        return False
    clf_options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    if "xgboost" in libs:
        import xgboost
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost

        update_registered_converter(xgboost.XGBClassifier, "XGBoostXGBClassifier", clf_shapes, convert_xgboost, options=clf_options)
        update_registered_converter(xgboost.XGBRegressor, "XGBoostXGBRegressor", reg_shapes, convert_xgboost)
    if "lightgbm" in libs:
        import lightgbm
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm

        update_registered_converter(lightgbm.LGBMClassifier, "LightGbmLGBMClassifier", clf_shapes, convert_lightgbm, options=clf_options)
        update_registered_converter(lightgbm.LGBMRegressor, "LightGbmLGBMRegressor", reg_shapes, convert_lightgbm, options={"split": None})
    return True


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
        if type(model).__name__ == "Booster" or not _has(model, "predict"):
            raise CaptureError(
                f"{type(model).__name__} is not a {self.name} sklearn-API model",
                hint=f"capture {self.name}'s XGBClassifier/XGBRegressor or LGBMClassifier/LGBMRegressor, not a raw Booster",
            )
        methods = _methods(model, _has(model, "predict_proba"))
        table = table_prepared(self.name, model, sample, methods, _text_name(options))
        if table is not None:
            return table
        feeds = tabular_feeds(model, sample, options)
        return _tabular_prepared(self.name, model, feeds, methods)

    def to_onnx(self, model: Any, prepared: Prepared, options: CaptureOptions) -> bytes:
        try:
            from onnxmltools.convert import convert_lightgbm, convert_xgboost
            from onnxmltools.convert.common.data_types import FloatTensorType
        except ImportError as exc:
            raise ConversionFailed(f"onnxmltools is not installed ({exc}); pip install 'mlpack[notebook]'") from None

        def convert(types: list) -> Any:
            try:
                if self.name == "xgboost":
                    return convert_xgboost(_plain_xgboost(model), initial_types=types)
                return convert_lightgbm(model, initial_types=types, zipmap=False)
            except Exception as exc:
                raise ConversionFailed(f"onnxmltools cannot convert {type(model).__name__}: {converter_reason(exc)}") from None

        if prepared.table is not None:
            data = matrix_table_onnx(self.name, prepared, convert)
        else:
            name, x = next(iter(prepared.feeds.items()))
            data = convert([(name, FloatTensorType([None, x.shape[1]]))]).SerializeToString()
        return shape_like(dynamic_batch(rename_outputs(data, {"variable": "prediction"})), prepared)


def _plain_xgboost(model: Any) -> Any:
    """onnxmltools wants feature names f0..fn; a model fitted on a DataFrame has real ones."""
    booster = model.get_booster()
    named = booster.feature_names and any(n != f"f{i}" for i, n in enumerate(booster.feature_names))
    # A bool DataFrame column is an indicator feature ("i"), whose dumped splits
    # carry no split_condition; as a plain number it splits at the same place.
    typed = booster.feature_types and any(t != "float" for t in booster.feature_types)
    if named or typed:
        import copy

        model = copy.deepcopy(model)
        model.get_booster().feature_names = None
        model.get_booster().feature_types = None
    return model


class PredictAdapter(Adapter):
    """Any object with predict(): python flavour only."""

    name = "python"

    def detect(self, model: Any) -> bool:
        return _has(model, "predict") and not isinstance(model, type)

    def prepare(self, model: Any, sample: Any, options: CaptureOptions) -> Prepared:
        methods = {"prediction": "predict"}
        if _has(model, "predict_proba"):
            methods = {"label": "predict", "probabilities": "predict_proba"}
        table = table_prepared(self.name, model, sample, methods, _text_name(options))
        if table is not None:
            return table
        feeds = tabular_feeds(model, sample, options, cast=False)
        return _tabular_prepared(self.name, model, feeds, methods)
