"""Value types of a bundle's schema: tensor specs, dtypes and names."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlpack.errors import CaptureError, ServeError

__all__ = ["TensorSpec", "NAME_RE", "validate_name", "dtype_name", "ORT_DTYPES", "default_name", "parse_dynamic_axes",
           "ColumnSpec", "TableSchema", "COLUMN_DTYPES", "NPZ_MISSING"]

# An image name path component (OCI distribution spec); a bundle's name
# becomes part of an image reference, so it is checked here once.
NAME_RE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
NAME_MAX = 128

# onnxruntime's type strings -> numpy dtype names ("str" for string tensors).
ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int8)": "int8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(uint8)": "uint8",
    "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64",
    "tensor(bool)": "bool",
    "tensor(string)": "str",
}


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: ``shape`` holds ``None`` for dynamic axes (batch)."""

    name: str
    dtype: str
    shape: tuple[int | None, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TensorSpec":
        shape = tuple(None if d is None else int(d) for d in data["shape"])
        return cls(name=str(data["name"]), dtype=str(data["dtype"]), shape=shape)

    @property
    def numpy_dtype(self) -> np.dtype:
        """The numpy dtype; string tensors are ``object`` arrays of str."""
        return np.dtype(object) if self.dtype == "str" else np.dtype(self.dtype)


def dtype_name(dtype: np.dtype) -> str:
    """The schema's name for a numpy dtype ("str" for unicode/object)."""
    dtype = np.dtype(dtype)
    if dtype.kind in ("U", "S", "O"):
        return "str"
    return dtype.name


def validate_name(name: str) -> str:
    """Checks that ``name`` can be an image name component and returns it."""
    if not isinstance(name, str) or not name:
        raise CaptureError(
            f"bundle name {name!r} is not a non-empty string",
            hint="pass name='my-model' (lowercase letters, digits, '.', '_', '-')",
        )
    if len(name) > NAME_MAX or not NAME_RE.match(name):
        suggestion = default_name(name) or "my-model"
        raise CaptureError(
            f"bundle name {name!r} is not a valid image name component",
            hint=(
                f"use lowercase letters and digits separated by single '.', '_' or '-', "
                f"at most {NAME_MAX} characters, for example {suggestion!r}"
            ),
            name=name,
        )
    return name


def parse_dynamic_axes(value: Any) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """``{"input": [1]}``, ``{"input": {1: "seq"}}`` or ``"input:1,mask:1"`` as sorted
    (name, axes) pairs; the batch axis 0 is always dynamic and may be listed."""
    if value is None or value == "" or value == {}:
        return ()
    usage = 'pass dynamic_axes={"input": [1]} (input name -> axes), or "input:1,mask:1" on the command line'
    if isinstance(value, str):
        pairs: dict[str, list[Any]] = {}
        for part in filter(None, (p.strip() for p in value.split(","))):
            name, sep, axis = part.rpartition(":")
            if not sep or not name:
                raise CaptureError(f"dynamic axis {part!r} is not NAME:AXIS", hint=usage)
            pairs.setdefault(name, []).append(axis)
        value = pairs
    if not isinstance(value, dict):
        raise CaptureError(f"dynamic_axes must be a mapping, not {type(value).__name__}", hint=usage)
    out = []
    for name, axes in value.items():
        axes = list(axes) if isinstance(axes, (list, tuple, dict, set)) else [axes]
        try:
            ints = sorted({int(a) for a in axes} - {0})
        except (TypeError, ValueError):
            raise CaptureError(f"dynamic axes of {name!r} must be integers, got {axes!r}", hint=usage) from None
        if not isinstance(name, str) or not name or any(a < 1 for a in ints):
            raise CaptureError(f"dynamic axes {name!r}: {axes!r} are not input axes >= 1", hint=usage)
        if ints:
            out.append((name, tuple(ints)))
    return tuple(sorted(out))


def default_name(text: str) -> str:
    """A valid name derived from free text such as a class name."""
    cleaned = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return cleaned[:NAME_MAX].strip("-._")


# -- tables and text ---------------------------------------------------------------

# sample.npz holds a string column with missing values as the strings plus a
# boolean mask under this prefix, so that loading never needs allow_pickle.
NPZ_MISSING = "mlpack_missing__"

COLUMN_DTYPES = (
    "float16", "float32", "float64",
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "bool", "str", "category",
)  # fmt: skip


@dataclass(frozen=True)
class ColumnSpec:
    """One named column of a table sample.

    ``dtype`` is one of :data:`COLUMN_DTYPES`; ``pandas_dtype`` the exact
    pandas dtype to rebuild (``object`` or ``str`` for strings);
    ``categories`` (category columns) are the allowed values in order;
    ``nullable``: the sample held missing values (NaN) in this column.
    """

    name: str
    dtype: str
    pandas_dtype: str = ""
    nullable: bool = False
    categories: tuple[Any, ...] | None = None
    ordered: bool = False
    categories_dtype: str = ""  # the categories' own pandas dtype (object or str for strings)

    @property
    def value_kind(self) -> str:
        """What one value is: ``float``, ``int``, ``bool`` or ``str``."""
        if self.dtype == "category":
            kinds = {type(c) for c in self.categories or ()}
            return "str" if str in kinds or not kinds else "float" if float in kinds else "int"
        if self.dtype in ("bool", "str"):
            return self.dtype
        return "float" if self.dtype.startswith("float") else "int"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "dtype": self.dtype, "pandas_dtype": self.pandas_dtype, "nullable": self.nullable}
        if self.categories is not None:
            data["categories"] = list(self.categories)
            data["ordered"] = self.ordered
            if self.categories_dtype:
                data["categories_dtype"] = self.categories_dtype
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ColumnSpec":
        dtype = str(data["dtype"])
        if dtype not in COLUMN_DTYPES:
            raise ValueError(f"unknown column dtype {dtype!r}")
        cats = data.get("categories")
        return cls(
            name=str(data["name"]),
            dtype=dtype,
            pandas_dtype=str(data.get("pandas_dtype") or dtype),
            nullable=bool(data.get("nullable", False)),
            categories=tuple(cats) if cats is not None else None,
            ordered=bool(data.get("ordered", False)),
            categories_dtype=str(data.get("categories_dtype") or ""),
        )


@dataclass(frozen=True)
class TableSchema:
    """The schema of a table sample (``kind="table"``: ordered named columns) or
    of a text sample (``kind="text"``: one column of strings, a 1-D list)."""

    kind: str
    columns: tuple[ColumnSpec, ...]

    def __post_init__(self) -> None:
        if self.kind not in ("table", "text"):
            raise ValueError(f"unknown table kind {self.kind!r}")
        names = [c.name for c in self.columns]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"column names must be unique and non-empty: {names}")

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnSpec:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "columns": [c.to_dict() for c in self.columns]}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "TableSchema | None":
        if not data:
            return None
        return cls(kind=str(data["kind"]), columns=tuple(ColumnSpec.from_dict(c) for c in data["columns"]))

    def model_input(self, feeds: dict[str, np.ndarray]) -> Any:
        """What the original model is called with: the exact DataFrame (names, dtypes,
        categories, order) for a table, a list of str for text. Needs pandas for tables."""
        if self.kind == "text":
            return [str(v) for v in np.asarray(feeds[self.columns[0].name]).reshape(-1).tolist()]
        import pandas as pd

        data = {}
        for col in self.columns:
            values = np.asarray(feeds[col.name]).reshape(-1)
            if col.dtype == "category":
                data[col.name] = _categorical(pd, col, values)
            elif col.dtype == "str":
                values = values.astype(object)
                if col.nullable:  # pandas' own marker for a missing string
                    values = np.where(pd.isna(values), np.nan, values)
                data[col.name] = pd.Series(values, dtype=col.pandas_dtype or object)
            else:
                data[col.name] = pd.Series(values.astype(col.dtype), dtype=col.pandas_dtype or col.dtype)
        return pd.DataFrame(data, columns=self.names)


def _categorical(pd: Any, col: ColumnSpec, values: np.ndarray) -> Any:
    """The column as a pandas Categorical; a value outside the categories is a 422 (every
    transport ends up here). The values are looked up in the categories first: pandas would
    make an unknown one NaN without a word (pandas 3 warns that it will raise instead)."""
    if col.value_kind != "str":
        values = values.astype(np.float64 if col.value_kind == "float" else np.int64)
    categories = list(col.categories or ())
    index = pd.Index(categories, dtype=col.categories_dtype or None)
    codes = index.get_indexer(values)
    unseen = (codes < 0) & ~pd.isna(values)
    if unseen.any():
        message = f"column {col.name!r}: {values[unseen][0]!r} is not one of its categories {categories}"
        raise ServeError(message, hint="send one of the categories the model was captured with", status=422, input=col.name)
    return pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(index, ordered=col.ordered))
