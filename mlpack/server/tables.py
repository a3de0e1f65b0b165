"""Requests for table models: records, columns or rows in column order, one array per column.

A table bundle (``table`` in its manifest) takes one 1-D input per column.
``/predict`` accepts the table three ways, as pandas users write it:

- records: ``{"inputs": [{"age": 31, "city": "oslo"}, ...]}`` (``df.to_dict("records")``)
- columns: ``{"inputs": {"age": [31, 40], "city": ["oslo", "rome"]}}`` (``df.to_dict("list")``),
  a single record ``{"inputs": {"age": 31, "city": "oslo"}}`` being one row
- rows in column order: ``{"inputs": [[31, "oslo"], [40, "rome"]]}`` (``df.values.tolist()``)

Each column's values are checked against the captured schema here (missing
values only where the sample had them; a category among its categories)
and then pass the same :func:`mlpack.server.tensors.coerce` as every tensor,
so a wrong value gets a 422 naming the column and the expected type.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mlpack.server.tensors import Spec, coerce, invalid

if TYPE_CHECKING:  # pragma: no cover
    from mlpack.bundle.spec import ColumnSpec, TableSchema

__all__ = ["decode_table", "decode_text", "column_values", "describe_column", "v2_column"]


def describe_column(col: "ColumnSpec") -> str:
    """``int64``, ``str``, ``category of ['a', 'b']``, with ``or null`` when nullable."""
    text = f"category of {list(col.categories or ())}" if col.dtype == "category" else col.dtype
    return text + (" or null" if col.nullable else "")


def _expected(table: "TableSchema") -> str:
    return ", ".join(f"{c.name!r} ({describe_column(c)})" for c in table.columns)


def column_values(col: "ColumnSpec", spec: Spec, values: Any, *, bools: bool = False) -> np.ndarray:
    """One column's values (a list, or a 1-D/[N, 1] array) as the input array, or a 422."""
    if isinstance(values, np.ndarray):  # V2 binary or gRPC contents, already typed
        arr = values.reshape(-1) if values.ndim == 2 and values.shape[1:] == (1,) else values
        if col.dtype == "category" or arr.dtype.kind == "O":
            values = arr.tolist()  # the element checks below (categories, strings)
        else:
            if arr.dtype.kind == "f" and not col.nullable and np.isnan(arr).any():
                raise invalid(f"column {col.name!r} has a missing value (NaN); the model was captured without missing values there",
                              input=col.name, hint=f"send {describe_column(col)} values")
            return coerce(spec, arr, bools=bools)
    if not isinstance(values, list):
        raise invalid(f"column {col.name!r}: expected a list of values, got {type(values).__name__}", input=col.name)
    has_null = any(v is None for v in values)
    if has_null:
        if not col.nullable or col.value_kind not in ("float", "str"):
            raise invalid(
                f"column {col.name!r} has a missing value (null); the model was captured without missing values there",
                input=col.name,
                hint=f"send {describe_column(col)} values; capture with a sample that has missing values to allow them",
            )
        if col.value_kind == "float":
            values = [math.nan if v is None else v for v in values]
    if col.dtype == "category":
        _check_categories(col, values)
    elif col.dtype == "bool":
        wrong = next((v for v in values if not isinstance(v, bool)), None)
        if wrong is not None:
            raise invalid(f"column {col.name!r}: expected true or false, got {wrong!r}", input=col.name, hint=f"send {col.name!r} as booleans")
    elif col.value_kind == "str":
        wrong = next((v for v in values if not isinstance(v, str) and v is not None), None)
        if wrong is not None:
            raise invalid(f"column {col.name!r}: expected strings, got {wrong!r}", input=col.name, hint=f"send {col.name!r} as strings")
    if has_null and col.value_kind == "str":  # None stays None: the python flavour's DataFrame has it missing
        return np.array(values, dtype=object)
    try:
        return coerce(spec, values, bools=bools)
    except Exception as exc:
        message = getattr(exc, "message", str(exc)).replace(f"input {col.name!r}", f"column {col.name!r}", 1)
        raise invalid(message, input=col.name, hint=f"column {col.name!r} takes {describe_column(col)} values") from None


def _check_categories(col: "ColumnSpec", values: Sequence[Any]) -> None:
    allowed = set(col.categories or ())
    for v in values:
        if v is None and col.nullable:
            continue
        if not isinstance(v, (str, int, float)) or isinstance(v, bool) or v not in allowed:
            raise invalid(
                f"column {col.name!r}: {v!r} is not one of its categories {list(col.categories or ())}",
                input=col.name,
                hint="send one of the categories the model was captured with",
            )


def _from_records(rows: list[Any], names: list[str], table: "TableSchema") -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {n: [] for n in names}
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise invalid(f"record {i} is a {type(row).__name__}, not an object", hint="send every record as {column: value}")
        _check_columns(row, names, table, where=f"record {i}")
        for n in names:
            columns[n].append(row[n])
    return columns


def _from_rows(rows: list[Any], names: list[str], table: "TableSchema") -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {n: [] for n in names}
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(names):
            got = len(row) if isinstance(row, list) else type(row).__name__
            raise invalid(
                f"row {i} has {got} values; the table has {len(names)} columns in this order: {names}",
                hint=f"send records {{column: value}} or rows of {len(names)} values: {_expected(table)}",
            )
        for n, v in zip(names, row):
            columns[n].append(v)
    return columns


def _check_columns(given: Mapping[str, Any], names: list[str], table: "TableSchema", *, where: str = "the request") -> None:
    missing = [n for n in names if n not in given]
    if missing:
        col = table.column(missing[0])
        raise invalid(
            f"{where} lacks column {missing[0]!r} ({describe_column(col)})",
            input=missing[0],
            hint=f"the model's columns are {_expected(table)}",
        )
    unknown = [n for n in given if n not in names]
    if unknown:
        raise invalid(f"{where} has unknown column {unknown[0]!r}", input=str(unknown[0]), hint=f"the model's columns are {_expected(table)}")


def _flat(values: Any) -> Any:
    """``[[v], [v], ...]`` (an ``[N, 1]`` array's tolist()) as ``[v, v, ...]``."""
    if isinstance(values, list) and values and all(isinstance(v, list) and len(v) == 1 for v in values):
        return [v[0] for v in values]
    return values


def decode_text(data: Any, name: str) -> Any:
    """The ``inputs`` of a text model, normalised: ``[[t], [t]]`` (``df[["review"]].values.tolist()``)
    is the list of texts it holds; one bare string is refused with the form to send."""
    if isinstance(data, str):
        raise invalid("a text model takes a list of texts, not one string", input=name,
                      hint='send {"inputs": ["a text", "another text"]}')
    if isinstance(data, Mapping) and isinstance(data.get(name), list):
        return {**data, name: _flat(data[name])}
    return _flat(data)


def decode_table(data: Any, table: "TableSchema", inputs: Sequence[Spec], *, bools: bool = False) -> dict[str, np.ndarray]:
    """The ``inputs`` field of a ``/predict`` request to a table model, as one array per column."""
    names = table.names
    by_name = {s.name: s for s in inputs}
    if isinstance(data, Mapping):
        _check_columns(data, names, table)
        if not any(isinstance(data[n], list) for n in names):
            columns = {n: [data[n]] for n in names}  # one record
        else:
            columns = {n: _flat(data[n]) for n in names}
    elif isinstance(data, list) and data and all(isinstance(r, Mapping) for r in data):
        columns = _from_records(data, names, table)
    elif isinstance(data, list) and data and all(isinstance(r, list) for r in data):
        columns = _from_rows(data, names, table)
    else:
        raise invalid(
            "a table model takes records, columns or rows in column order",
            hint='send {"inputs": [{"' + names[0] + '": ...}, ...]} or {"inputs": {"' + names[0] + '": [...]}}; '
            f"columns: {_expected(table)}",
        )
    feeds = {n: column_values(table.column(n), by_name[n], columns[n], bools=bools) for n in names}
    lengths = {n: len(a) for n, a in feeds.items()}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{n!r} has {k}" for n, k in lengths.items())
        raise invalid(f"columns have different lengths: {detail}", hint="send the same number of values for every column")
    return feeds


def v2_column(table: "TableSchema", spec: Spec, data: Any, shape: Sequence[int], *, bools: bool = False) -> np.ndarray:
    """One V2 input (REST or gRPC) of a table model: a column of shape [N] or [N, 1]
    (MLServer's PandasCodec), checked like /predict's columns."""
    shape = list(shape)
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
        raise invalid(f"column {spec.name!r}: shape {shape} is not [N] or [N, 1]", input=spec.name)
    values = data.reshape(-1) if isinstance(data, np.ndarray) else list(data)
    if len(values) != shape[0]:
        raise invalid(f"column {spec.name!r}: shape {shape} holds {shape[0]} values but {len(values)} came", input=spec.name)
    return column_values(table.column(spec.name), spec, values, bools=bools)
