"""Table and text samples for tabular models: the prepared model and its ONNX form.

A table bundle has one 1-D input per column, named like the column and of
the column's dtype; a text bundle one 1-D string input. The original model
is called with the exact DataFrame (or list of str) rebuilt from those
inputs by :meth:`TableSchema.model_input`, at capture and in the python
flavour's server, so both see the same data.

Conversion: a ColumnTransformer (alone or first in a Pipeline) converts
with one skl2onnx input per column; a model that takes one numeric feature
matrix converts with one matrix input, then each column is cast and
concatenated into it in the graph; text vectorizers get a locale that every
image has and a Unicode token pattern that onnxruntime's RE2 understands.
What cannot convert says why (the auto flavour then pickles the model).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from mlpack.bundle.frameworks import ConversionFailed, Prepared, class_path, run_original
from mlpack.bundle.onnx_table import INTERNAL_PREFIX, TEXT_LOCALE, columns_to_matrix, converter_dtype, set_text_locale, squeeze_outputs, wrap_columns
from mlpack.bundle.samples import table_sample
from mlpack.bundle.spec import TableSchema

__all__ = ["table_prepared", "sklearn_table_onnx", "matrix_table_onnx", "shape_like", "MATRIX"]

MATRIX = INTERNAL_PREFIX + "matrix"  # the converters' one feature input, before columns_to_matrix
# sklearn's default token_pattern (?u)\b\w\w+\b; RE2's \w and \b are ASCII-only.
_DEFAULT_TOKEN_PATTERN = r"(?u)\b\w\w+\b"
_UNICODE_TOKENS = r"[\p{L}\p{N}_]{2,}"


def table_prepared(
    framework: str, model: Any, sample: Any, methods: dict[str, str], text_name: str = "text"
) -> Prepared | None:
    """The Prepared model for a table or text sample; None when ``sample`` is a tensor."""
    found = table_sample(sample, text_name)
    if found is None:
        return None
    schema, feeds = found

    def reference(f: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = schema.model_input(f)
        return {out: np.asarray(getattr(model, m)(x)) for out, m in methods.items()}

    prepared = Prepared(framework, class_path(model), feeds, reference, {"kind": "methods", "outputs": methods}, table=schema)
    run_original(lambda: reference(feeds))
    return prepared


def _numeric(schema: TableSchema) -> bool:
    return schema.kind == "table" and all(c.value_kind != "str" for c in schema.columns)


def _skl_type(name: str, dtype: np.dtype, shape: list[int | None]) -> Any:
    from skl2onnx.common.data_types import BooleanTensorType, FloatTensorType, Int64TensorType, StringTensorType

    conv = converter_dtype(dtype)
    cls = {"f": FloatTensorType, "i": Int64TensorType, "b": BooleanTensorType}.get(conv.kind, StringTensorType)
    return (name, cls(shape))


def _starts_with_column_transformer(model: Any) -> bool:
    from sklearn.compose import ColumnTransformer

    first = model.steps[0][1] if hasattr(model, "steps") else model
    return isinstance(first, ColumnTransformer)


def _estimators(model: Any) -> list[Any]:
    """``model`` and every estimator inside it, as fitted: a ColumnTransformer clones its
    transformers at fit, and skl2onnx converts (and keys options by) the fitted clones in
    ``transformers_``, not the unfitted ones ``get_params`` lists."""
    found: list[Any] = []
    seen: set[int] = set()
    todo = [model]
    while todo and len(found) < 10_000:  # bounded: a model is a tree of a few estimators
        item = todo.pop()
        if id(item) in seen or item is None or isinstance(item, (str, bytes, int, float, bool)):
            continue
        seen.add(id(item))
        found.append(item)
        for _, step in getattr(item, "steps", None) or []:  # Pipeline (fitted in place)
            todo.append(step)
        for entry in getattr(item, "transformers_", None) or []:  # fitted ColumnTransformer
            todo.append(entry[1])
        for entry in getattr(item, "transformer_list", None) or []:  # FeatureUnion (fitted in place)
            todo.append(entry[1])
        try:  # other wrappers' estimators
            todo.extend(v for v in item.get_params(deep=False).values() if hasattr(v, "get_params"))
        except Exception:  # noqa: BLE001 - an object without get_params holds no estimators
            pass
    return found


def _text_options(model: Any) -> dict[int, dict[str, Any]]:
    from sklearn.feature_extraction.text import CountVectorizer

    options: dict[int, dict[str, Any]] = {}
    for step in _estimators(model):
        if isinstance(step, CountVectorizer):  # TfidfVectorizer derives from it
            opts: dict[str, Any] = {"locale": TEXT_LOCALE}
            if step.token_pattern == _DEFAULT_TOKEN_PATTERN and step.tokenizer is None and step.analyzer == "word":
                opts["tokenexp"] = _UNICODE_TOKENS
            options[id(step)] = opts
    return options


def _check_names(schema: TableSchema) -> None:
    clash = [n for n in schema.names if n.startswith(INTERNAL_PREFIX)]
    if clash:
        raise ConversionFailed(f"column name {clash[0]!r} starts with {INTERNAL_PREFIX!r}, which the ONNX graph uses itself")


def _check_missing_strings(schema: TableSchema) -> None:
    missing = [c.name for c in schema.columns if c.nullable and c.value_kind == "str"]
    if missing:
        raise ConversionFailed(f"string column(s) {missing} have missing values, which ONNX string tensors cannot carry")


def sklearn_table_onnx(model: Any, prepared: Prepared, convert: Callable[..., Any], options: dict[int, Any]) -> bytes:
    """skl2onnx with the table's or text's inputs; ``convert(initial_types, options)`` -> ModelProto."""
    schema: TableSchema = prepared.table
    _check_names(schema)
    _check_missing_strings(schema)
    options = {**options, **_text_options(model)}
    if schema.kind == "text":
        name = schema.columns[0].name
        proto = convert([(name, _string_type())], options)
        return set_text_locale(proto.SerializeToString())
    columns = {n: a.dtype for n, a in prepared.feeds.items()}
    if _starts_with_column_transformer(model):
        types = [_skl_type(n, d, [None, 1]) for n, d in columns.items()]
        proto = convert(types, options)
        return set_text_locale(wrap_columns(proto.SerializeToString(), columns))
    if _numeric(schema):
        proto = convert([_skl_type(MATRIX, np.dtype(np.float32), [None, len(columns)])], options)
        return columns_to_matrix(proto.SerializeToString(), MATRIX, columns)
    strings = [c.name for c in schema.columns if c.value_kind == "str"]
    raise ConversionFailed(
        f"the model takes string column(s) {strings} without a ColumnTransformer in front; "
        "skl2onnx converts string columns selected by a ColumnTransformer"
    )


def _string_type() -> Any:
    from skl2onnx.common.data_types import StringTensorType

    return StringTensorType([None])


def matrix_table_onnx(framework: str, prepared: Prepared, convert: Callable[[Any], Any]) -> bytes:
    """A model that takes one float feature matrix (XGBoost, LightGBM), fed column by column."""
    schema: TableSchema = prepared.table
    _check_names(schema)
    if schema.kind == "text":
        raise ConversionFailed(f"{framework} takes numbers, not text")
    cats = [c.name for c in schema.columns if c.dtype == "category"]
    if cats:
        raise ConversionFailed(
            f"{framework} splits on the pandas category column(s) {cats}, which onnxmltools cannot convert"
        )
    strings = [c.name for c in schema.columns if c.value_kind == "str"]
    if strings:
        raise ConversionFailed(f"{framework} got string column(s) {strings}; only numeric columns convert")
    from onnxmltools.convert.common.data_types import FloatTensorType

    columns = {n: a.dtype for n, a in prepared.feeds.items()}
    proto = convert([(MATRIX, FloatTensorType([None, len(columns)]))])
    return columns_to_matrix(proto.SerializeToString(), MATRIX, columns)


def shape_like(model_bytes: bytes, prepared: Prepared) -> bytes:
    """Squeezes ``[N, 1]`` outputs whose original is 1-D (a regressor's ``predict``)."""
    import onnx

    rows = {k: v[:2] for k, v in prepared.feeds.items()}
    reference = prepared.reference_fn(rows)
    proto = onnx.load_from_string(model_bytes)
    flat = []
    for out in proto.graph.output:
        ref = reference.get(out.name)
        dims = out.type.tensor_type.shape.dim
        if ref is not None and np.asarray(ref).ndim == 1 and len(dims) == 2 and dims[1].dim_value == 1:
            flat.append(out.name)
    return squeeze_outputs(model_bytes, flat) if flat else model_bytes
