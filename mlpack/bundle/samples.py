"""Turning a user's sample (array, list, DataFrame, tensor, dict) into checked arrays."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from mlpack.bundle.spec import ColumnSpec, TableSchema
from mlpack.errors import CaptureError

__all__ = ["to_array", "check_array", "check_empty", "as_named", "table_sample", "is_table_sample"]


def to_array(value: Any, what: str = "sample") -> np.ndarray:
    """``value`` as a numpy array (DataFrames and torch tensors included)."""
    if value is None:
        raise CaptureError(f"{what} is None", hint="pass a few rows of real input, e.g. X_test[:20]")
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch.Tensor, without importing torch
        value = value.detach().cpu().numpy()
    elif hasattr(value, "to_numpy") and hasattr(value, "columns"):  # pandas / polars DataFrame
        value = value.to_numpy()
    elif hasattr(value, "to_numpy") and hasattr(value, "dtype"):  # pandas Series
        value = value.to_numpy()
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise CaptureError(f"{what} is not array-like: {exc}", hint="pass a numpy array with one row per example") from None
    return array


def check_empty(array: np.ndarray, what: str = "sample") -> None:
    if array.size == 0 or (array.ndim >= 1 and array.shape[0] == 0):
        raise CaptureError(
            f"{what} is empty (shape {list(array.shape)})",
            hint="pass at least one row of real input, e.g. X_test[:20]; the parity check runs on it",
        )


def check_array(array: np.ndarray, what: str = "sample", *, min_ndim: int = 1) -> np.ndarray:
    """Rejects empty, non-numeric and NaN/inf samples with a specific error."""
    check_empty(array, what)
    if array.ndim < min_ndim:
        raise CaptureError(
            f"{what} has {array.ndim} dimension(s); the model needs at least {min_ndim} (batch first)",
            hint="add a batch axis, e.g. x.reshape(1, -1) for a single row",
        )
    if array.dtype.kind not in "biuf":
        raise CaptureError(
            f"{what} has dtype {array.dtype}, not numbers",
            hint="encode strings and categories as numbers first (or put the encoder in a Pipeline "
            "and pass numeric columns), then pass e.g. X.astype(np.float32)",
            dtype=str(array.dtype),
        )
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise CaptureError(
            f"{what} contains {bad} NaN or infinite value(s)",
            hint="pass rows without missing values (e.g. X[~np.isnan(X).any(axis=1)]); "
            "the parity check needs finite inputs",
        )
    return array


def as_named(sample: Any, default: str = "input") -> dict[str, Any] | None:
    """A dict sample stays a dict; anything else is None (single input)."""
    if isinstance(sample, Mapping):
        if not sample:
            raise CaptureError("sample is an empty dict", hint="pass {'input_name': array, ...}")
        for key in sample:
            if not isinstance(key, str) or not key:
                raise CaptureError(f"sample key {key!r} is not a non-empty string", hint="name each input with a string")
        return dict(sample)
    return None


# -- tables and text ---------------------------------------------------------------

_ACCEPTED = "float, int, bool, str (object or pandas str) and pandas category columns"


def _is_frame(value: Any) -> bool:
    return type(value).__module__.split(".")[0] == "pandas" and hasattr(value, "columns") and hasattr(value, "dtypes")


def _is_series(value: Any) -> bool:
    return type(value).__module__.split(".")[0] == "pandas" and hasattr(value, "dtype") and not hasattr(value, "columns")


def _is_text(value: Any) -> bool:
    if _is_series(value):
        return value.dtype == object or str(value.dtype) in ("str", "string")
    if isinstance(value, np.ndarray):
        return value.ndim == 1 and value.dtype.kind in "UO" and value.size > 0 and all(isinstance(v, str) for v in value.tolist())
    return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(v, str) for v in value)


def _is_columns(value: Any) -> bool:
    if not isinstance(value, Mapping) or not value:
        return False
    return all(_is_series(v) or (isinstance(v, (list, tuple)) and not any(isinstance(x, (list, tuple, dict, np.ndarray)) for x in v))
               or (isinstance(v, np.ndarray) and v.ndim == 1) for v in value.values())


def _is_records(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(r, Mapping) for r in value)


def is_table_sample(sample: Any) -> bool:
    """A DataFrame, a dict of equal-length 1-D columns, a list of records, or text (1-D strings)."""
    return _is_frame(sample) or _is_columns(sample) or _is_records(sample) or _is_text(sample)


def _pandas() -> Any:
    try:
        import pandas as pd
    except ImportError:
        raise CaptureError(
            "a table sample (dict of columns or list of records) needs pandas to call the model",
            hint="pip install pandas, or pass a 2-D numpy array",
        ) from None
    return pd


def _as_frame(sample: Any) -> Any:
    if _is_frame(sample):
        return sample
    pd = _pandas()
    if _is_records(sample):
        names = list(sample[0])
        for i, rec in enumerate(sample):
            if list(rec) != names:
                missing = [n for n in names if n not in rec] or [n for n in rec if n not in names]
                raise CaptureError(
                    f"record {i} of the sample has columns {list(rec)}, record 0 has {names} (column {missing[0]!r})"
                    if missing else f"record {i} orders its columns differently from record 0",
                    hint="give every record the same columns in the same order",
                )
        return pd.DataFrame.from_records(list(sample), columns=names)
    lengths = {k: len(v) for k, v in sample.items()}
    if len(set(lengths.values())) > 1:
        raise CaptureError(f"the sample's columns have different lengths: {lengths}", hint="pass columns of equal length")
    return pd.DataFrame({k: (v.to_numpy() if _is_series(v) else v) for k, v in sample.items()})


def _column(name: str, series: Any) -> tuple[ColumnSpec, np.ndarray]:
    dtype = series.dtype
    text = str(dtype)
    nulls = bool(series.isna().any())
    if text == "category":
        cats = series.cat.categories
        values = [v.item() if isinstance(v, np.generic) else v for v in cats.tolist()]
        if not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in values):
            raise CaptureError(
                f"column {name!r} is a category of {cats.dtype} values; mlpack takes categories of strings or numbers",
                hint="convert its categories to strings before fitting", column=name,
            )
        spec = ColumnSpec(name, "category", "category", nulls, tuple(values), bool(series.cat.ordered), str(cats.dtype))
        if nulls and spec.value_kind != "str":
            _refuse_null(name, "numeric category")
        array = np.asarray(series.astype(object).to_numpy())
        if spec.value_kind == "str":
            return spec, _with_none(array)
        return spec, array.astype(np.float64 if spec.value_kind == "float" else np.int64)
    if text in ("str", "string") or dtype == object:
        values = series.to_numpy(dtype=object)
        kinds = {type(v).__name__ for v in values if not _missing(v)}
        if kinds - {"str"}:
            raise CaptureError(
                f"column {name!r} holds {', '.join(sorted(kinds))} values; mlpack takes {_ACCEPTED}",
                hint=f"give the column one type, e.g. df[{name!r}].astype(str)", column=name,
            )
        return ColumnSpec(name, "str", text, nulls), _with_none(values)
    kind = getattr(dtype, "kind", "")
    if isinstance(dtype, np.dtype) and kind in "biuf":
        values = series.to_numpy()
        if kind == "f" and np.isinf(values).any():
            raise CaptureError(f"column {name!r} holds infinite values", hint="pass rows with finite numbers", column=name)
        return ColumnSpec(name, dtype.name, dtype.name, nulls and kind == "f"), values
    raise CaptureError(
        f"column {name!r} has dtype {text}; mlpack takes {_ACCEPTED}",
        hint="convert it before fitting (datetimes to numbers, e.g. df[c].astype('int64') // 10**9; "
        "nullable Int64 to float64)",
        column=name, dtype=text,
    )


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value) or type(value).__name__ in ("NAType", "NaTType")


def _with_none(values: np.ndarray) -> np.ndarray:
    """An object array of str with None where the value is missing (NaN, pd.NA, None)."""
    return np.array([None if _missing(v) else v for v in values.tolist()], dtype=object)


def _refuse_null(name: str, what: str) -> None:
    raise CaptureError(
        f"column {name!r} has missing values in a {what} column; mlpack serves missing values in float, "
        "string and string-category columns only",
        hint=f"fill them with a placeholder, e.g. df[{name!r}] = df[{name!r}].fillna('missing') before fitting",
        column=name,
    )


def table_sample(sample: Any, text_name: str = "text") -> tuple[TableSchema, dict[str, np.ndarray]] | None:
    """The schema and one 1-D array per column of a table or text sample; None for tensors.

    Arrays keep each column's dtype (float64 stays float64, strings are object
    arrays of str, categories their values); NaN marks a missing float.
    """
    if _is_text(sample):
        values = [str(v) for v in (sample.tolist() if hasattr(sample, "tolist") else sample)]
        if _is_series(sample) and sample.isna().any():
            _refuse_null(text_name, "text")
        return TableSchema("text", (ColumnSpec(text_name, "str", "str"),)), {text_name: np.asarray(values, dtype=object)}
    if not (_is_frame(sample) or _is_columns(sample) or _is_records(sample)):
        return None
    frame = _as_frame(sample)
    if len(frame) == 0 or len(frame.columns) == 0:
        raise CaptureError(f"the table sample is empty ({len(frame)} rows, {len(frame.columns)} columns)",
                           hint="pass at least one row of real input, e.g. X_test[:50]")
    names = list(frame.columns)
    bad = [n for n in names if not isinstance(n, str) or not n]
    if bad:
        raise CaptureError(f"column name {bad[0]!r} is not a non-empty string",
                           hint="name every column with a string, e.g. df.columns = [str(c) for c in df.columns]")
    if len(set(names)) != len(names):
        raise CaptureError(f"the sample has duplicate column names: {names}", hint="give every column a unique name")
    columns = [_column(n, frame[n]) for n in names]
    schema, arrays = TableSchema("table", tuple(c for c, _ in columns)), {c.name: a for c, a in columns}
    _check_rebuilds(schema, arrays, frame)
    return schema, arrays


def _check_rebuilds(schema: TableSchema, arrays: dict[str, np.ndarray], frame: Any) -> None:
    """The DataFrame the server will rebuild is the sample's (values, dtypes, categories, order)."""
    pd = _pandas()
    try:
        pd.testing.assert_frame_equal(schema.model_input(arrays), frame.reset_index(drop=True), check_exact=True,
                                      check_column_type=False, check_index_type=False)
    except AssertionError as exc:
        raise CaptureError(
            f"the sample's DataFrame does not survive the round trip through its columns: {exc}",
            hint="report this as an mlpack bug, with the sample's dtypes (df.dtypes)",
        ) from None
