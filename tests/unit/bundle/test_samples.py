"""Sample checks: each bad sample gets its own CaptureError with a hint."""

from __future__ import annotations

import numpy as np
import pytest

from mlpack.bundle.samples import as_named, check_array, to_array
from mlpack.errors import CaptureError


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (np.zeros((0, 4)), "empty"),
        (np.zeros((3, 0)), "empty"),
        (np.array([[1.0, np.nan]]), "NaN or infinite"),
        (np.array([[1.0, np.inf]]), "NaN or infinite"),
        (np.array([["a", "b"]]), "not numbers"),
        (np.array(3.0), "dimension"),
    ],
)
def test_bad_samples(value: np.ndarray, match: str) -> None:
    with pytest.raises(CaptureError, match=match) as info:
        check_array(value)
    assert info.value.hint


def test_none_and_ragged() -> None:
    with pytest.raises(CaptureError, match="None"):
        to_array(None)
    with pytest.raises(CaptureError, match="array-like"):
        to_array([[1, 2], [3]])


def test_lists_become_arrays() -> None:
    assert to_array([[1.0, 2.0]]).shape == (1, 2)
    assert check_array(to_array([[1, 2]])).dtype.kind == "i"


def test_named_samples() -> None:
    assert as_named(np.zeros(2)) is None
    assert list(as_named({"x": 1, "y": 2})) == ["x", "y"]
    with pytest.raises(CaptureError, match="empty dict"):
        as_named({})
    with pytest.raises(CaptureError, match="key"):
        as_named({1: np.zeros(2)})
