"""Tensor specs, dtype names and the one validation every request goes through.

Whatever a client sends (JSON lists, V2 flat data, V2 binary buffers) ends up
in :func:`coerce`, which either returns an array of exactly the model's dtype
and a shape the model accepts, or raises a 422 :class:`ServeError` naming the
input, what was expected and what came.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from mlpack.errors import ServeError

__all__ = ["Spec", "coerce", "coerce_numbers", "check_rows", "invalid", "V2_OF_NUMPY", "NUMPY_OF_V2", "shape_text", "v2_datatype"]

# Open Inference Protocol datatypes <-> numpy dtype names.
V2_OF_NUMPY = {
    "bool": "BOOL",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
    "str": "BYTES",
    "object": "BYTES",
    "bytes": "BYTES",
}
NUMPY_OF_V2 = {v: k for k, v in V2_OF_NUMPY.items() if k not in {"object", "bytes"}}
# Keyed by dtype object (str(dtype) is a slow Python-level call in numpy 2): what encoders look up.
_V2_OF_DTYPE = {np.dtype(k): v for k, v in V2_OF_NUMPY.items() if k not in {"str", "object", "bytes"}}


def v2_datatype(arr: np.ndarray) -> str:
    """The V2 datatype of an output array (strings and objects are BYTES)."""
    return _V2_OF_DTYPE.get(arr.dtype, "BYTES")

_KIND_WORDS = {"b": "booleans", "i": "integers", "u": "integers", "f": "numbers", "U": "strings", "S": "bytes", "O": "mixed values"}


@dataclass(frozen=True)
class Spec:
    """One model input or output: ``name``, numpy ``dtype`` name, ``shape`` (None: any size)."""

    name: str
    dtype: str
    shape: tuple[int | None, ...]

    @classmethod
    def of(cls, spec: Any) -> "Spec":
        """Copy any object with ``name``, ``dtype``, ``shape`` (a bundle TensorSpec)."""
        dtype = str(np.dtype(spec.dtype)) if str(spec.dtype) not in {"str", "object", "bytes"} else str(spec.dtype)
        shape = tuple(None if (d is None or (isinstance(d, int) and d < 0) or isinstance(d, str)) else int(d) for d in spec.shape)
        return cls(str(spec.name), dtype, shape)

    @property
    def datatype(self) -> str:
        """The V2 protocol datatype (FP32, INT64, ...)."""
        return V2_OF_NUMPY.get(self.dtype, "BYTES")

    @property
    def is_string(self) -> bool:
        return self.dtype in {"str", "object", "bytes"}

    def v2_shape(self) -> list[int]:
        """The shape as the V2 metadata spells it (-1 for dynamic axes)."""
        return [-1 if d is None else d for d in self.shape]


def shape_text(shape: Sequence[int | None]) -> str:
    return "[" + ", ".join("N" if d is None else str(d) for d in shape) + "]"


def invalid(message: str, *, input: str | None = None, hint: str | None = None, **context: Any) -> ServeError:
    """A 422 error for a request the model cannot accept."""
    return ServeError(message, hint=hint, status=422, input=input, **context)


def _describe(arr: np.ndarray) -> str:
    return _KIND_WORDS.get(arr.dtype.kind, str(arr.dtype))


def _has_bool(data: Any) -> bool:
    if type(data) is bool:
        return True
    if isinstance(data, list):
        return any(_has_bool(v) for v in data)
    return False


def coerce(spec: Spec, data: Any, *, shape: Sequence[int] | None = None, bools: bool = False) -> np.ndarray:
    """Turn client ``data`` into an array of ``spec``'s dtype and shape, or raise a 422.

    ``shape`` (V2 requests) reshapes flat data first and must hold exactly
    as many elements. Numbers must be numbers (no strings, no booleans for
    numeric inputs), integers must be integral and in range for the dtype.
    ``bools``: the body may hold JSON booleans, which numpy silently turns
    into 0/1 next to numbers; only then is the data scanned for them.
    """
    name = spec.name
    if spec.is_string:
        arr = _strings(name, data)
    elif isinstance(data, np.ndarray):
        arr = data
    else:
        try:
            arr = np.asarray(data)
        except (ValueError, TypeError):
            raise invalid(
                f"input {name!r}: rows have different lengths or mixed types; expected {spec.dtype} {shape_text(spec.shape)}",
                input=name,
                hint="every row must have the same number of values",
            ) from None
    if bools and arr.dtype.kind in "iuf" and not spec.is_string and np.dtype(spec.dtype).kind != "b" and _has_bool(data):
        raise invalid(f"input {name!r}: expected {spec.dtype} numbers, got booleans", input=name)
    if not spec.is_string:
        arr = _numeric(spec, arr)
    if shape is not None:
        shape = tuple(shape)
        if any((not isinstance(d, int)) or d < 0 for d in shape):
            raise invalid(f"input {name!r}: shape {list(shape)} must be non-negative integers", input=name)
        # math.prod: numpy's int64 product wraps around, so [2**32, 2**32] would "hold" 0 values.
        if math.prod(shape) != arr.size:
            raise invalid(
                f"input {name!r}: shape {list(shape)} holds {math.prod(shape)} elements but {arr.size} values came",
                input=name,
            )
        arr = _unit_axis(spec, arr.reshape(shape))
    _check_shape(spec, arr)
    return arr


_F32, _F64, _I64 = np.dtype("float32"), np.dtype("float64"), np.dtype("int64")


@np.errstate(over="ignore")  # as a decorator numpy builds the error state once, not per call
def _narrowed(arr: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float64 -> a narrower float; overflow becomes inf, as in :func:`coerce`."""
    return arr.astype(dtype)
_NUMERIC_DTYPES = {k: np.dtype(k) for k in V2_OF_NUMPY if k not in {"str", "object", "bytes"}}


def coerce_numbers(spec: Spec, data: Any, *, shape: Sequence[int] | None = None, bools: bool = False) -> np.ndarray:
    """:func:`coerce` for the common request in one pass: what it returns, or what it raises.

    Common: a numeric input whose values numpy reads as float64 or int64 (JSON
    numbers only; ``bools`` false or the data already an array) or as the
    input's own dtype, converted to that dtype without a range or integrality
    question, in a shape that fits the input as it is (V2: flat data
    reshaped to ``shape``, already checked by :func:`mlpack.server.shapes.check_v2_shape`).
    Anything else (strings, booleans, nulls, ragged rows, a narrowing integer
    conversion, a shape to adjust or refuse) goes to :func:`coerce`, so the
    result and every 422 message are coerce's own.
    """
    target = _NUMERIC_DTYPES.get(spec.dtype)
    if target is None or (bools and type(data) is list):
        return coerce(spec, data, shape=shape, bools=bools)
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError):
        return coerce(spec, data, shape=shape, bools=bools)
    dtype = arr.dtype
    if dtype is not target and dtype != target:
        if dtype == _F64 and target.kind == "f":
            arr = _narrowed(arr, target)
        elif dtype == _I64 and (target == _F32 or target == _F64):  # int64 fits either without overflow
            arr = arr.astype(target)
        else:
            return coerce(spec, data, shape=shape, bools=bools)
    if shape is not None:
        if math.prod(shape) != arr.size:
            return coerce(spec, data, shape=shape, bools=bools)
        arr = arr.reshape(shape)
    if not _fits(spec.shape, arr.shape):
        return coerce(spec, data, shape=shape, bools=bools)
    return arr


_TYPE_WORDS = {bool: "booleans", int: "integers", float: "numbers", type(None): "nulls", bytes: "bytes", list: "rows of different lengths"}


def _strings(name: str, data: Any) -> np.ndarray:
    """An object array of ``str`` (never a fixed-width ``U`` array, which one
    long string among many short ones would make as large as their product)."""
    if isinstance(data, np.ndarray) and data.dtype.kind == "U":
        return data.astype(object)
    try:
        arr = data if isinstance(data, np.ndarray) else np.array(data, dtype=object)
    except ValueError:
        raise invalid(
            f"input {name!r}: rows have different lengths", input=name, hint="every row must have the same number of values"
        ) from None
    for value in arr.flat:
        if type(value) is not str:
            what = _TYPE_WORDS.get(type(value), "mixed values")
            raise invalid(f"input {name!r}: expected strings, got {what}", input=name)
    return arr


def _numeric(spec: Spec, arr: np.ndarray) -> np.ndarray:
    name = spec.name
    target = np.dtype(spec.dtype)
    kind = arr.dtype.kind
    if arr.dtype == target:
        return arr
    if kind == "b" and target.kind != "b":
        raise invalid(f"input {name!r}: expected {spec.dtype} numbers, got booleans", input=name)
    if kind not in "biuf":
        if arr.size == 0 and kind in "fO":
            return arr.astype(target)
        raise invalid(
            f"input {name!r}: expected {spec.dtype} numbers, got {_describe(arr)}",
            input=name,
            hint="send numbers only (no strings, nulls or nested objects)",
        )
    if target.kind == "b":
        if kind not in "biu" or not np.isin(arr, (0, 1)).all():
            raise invalid(f"input {name!r}: expected booleans (true/false or 0/1), got {_describe(arr)}", input=name)
        return arr.astype(target)
    if target.kind in "iu":
        if kind == "f":
            if not np.isfinite(arr).all() or not np.equal(np.floor(arr), arr).all():
                raise invalid(f"input {name!r}: expected {spec.dtype} integers, got fractional numbers", input=name)
            if arr.size and np.abs(arr).max() > 2**53:
                # JSON integers beyond 64 bits arrive as floats, already rounded.
                raise invalid(
                    f"input {name!r}: values out of range for {spec.dtype} or not exact as numbers",
                    input=name,
                    hint="write integers without a decimal point or exponent, within the dtype's range",
                )
        info = np.iinfo(target)
        if arr.size and (arr.min() < info.min or arr.max() > info.max):
            raise invalid(
                f"input {name!r}: values out of range for {spec.dtype} ({info.min}..{info.max})",
                input=name,
            )
        return arr.astype(target)
    with np.errstate(over="ignore"):  # float64 -> float32 overflow becomes inf, as in numpy
        return arr.astype(target)


def _fits(expected: Sequence[int | None], shape: Sequence[int]) -> bool:
    if len(shape) != len(expected):
        return False
    for e, g in zip(expected, shape):
        if e is not None and e != g:
            return False
    return True


def _unit_axis(spec: Spec, arr: np.ndarray) -> np.ndarray:
    """A V2 tensor that differs from the model's shape only by a trailing axis of 1 is
    reshaped to it: MLServer's codecs send a list of strings as [N, 1], skl2onnx
    text models take [N, 1] where clients send [N]."""
    if _fits(spec.shape, arr.shape):
        return arr
    if arr.ndim == len(spec.shape) + 1 and arr.shape[-1] == 1:
        fitted = arr.reshape(arr.shape[:-1])
    elif arr.ndim + 1 == len(spec.shape) and spec.shape[-1] == 1:
        fitted = arr.reshape(arr.shape + (1,))
    else:
        return arr
    return fitted if _fits(spec.shape, fitted.shape) else arr


def _check_shape(spec: Spec, arr: np.ndarray) -> None:
    expected = spec.shape
    if not _fits(expected, arr.shape):
        hint = None
        if arr.ndim == len(expected) - 1 and len(expected) >= 2:
            hint = "wrap a single row in a list: [[...]]"
        elif arr.ndim == len(expected):
            hint = _fixed_axis_hint(spec, arr.shape)
        raise invalid(
            f"input {name_of(spec)}: expected shape {shape_text(expected)}, got {list(arr.shape)}",
            input=spec.name,
            hint=hint,
            expected=shape_text(expected),
            got=list(arr.shape),
        )


def _fixed_axis_hint(spec: Spec, got: Sequence[int]) -> str | None:
    """Which fixed axis refused the length, and how a model whose length varies frees it."""
    for axis, (want, have) in enumerate(zip(spec.shape, got)):
        if axis and want is not None and want != have:
            return (f"axis {axis} of {spec.name!r} is fixed at {want}, the capture sample's length; if the model "
                    f"takes other lengths there, capture it with dynamic_axes={{{spec.name!r}: [{axis}]}} "
                    f"(--dynamic-axes {spec.name}:{axis})")
    return None


def name_of(spec: Spec) -> str:
    return repr(spec.name)


def check_rows(specs: Sequence[Spec], feeds: dict[str, np.ndarray]) -> None:
    """Inputs that all have a dynamic batch axis must agree on the number of rows."""
    if len(feeds) < 2 or not all(s.shape and s.shape[0] is None for s in specs):
        return
    rows = {name: int(arr.shape[0]) for name, arr in feeds.items() if arr.ndim}
    if len(set(rows.values())) > 1:
        detail = ", ".join(f"{n!r} has {r}" for n, r in rows.items())
        raise invalid(f"inputs have different numbers of rows: {detail}", hint="send the same number of rows for every input")
