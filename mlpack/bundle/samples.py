"""Turning a user's sample (array, list, DataFrame, tensor, dict) into checked arrays."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from mlpack.errors import CaptureError

__all__ = ["to_array", "check_array", "check_empty", "as_named"]


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
