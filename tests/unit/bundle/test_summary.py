"""How ``mlpack inspect`` writes shapes."""

from __future__ import annotations

from mlpack.bundle.summary import shape_text


def test_the_batch_axis_and_freed_axes_read_differently() -> None:
    assert shape_text([None, 4]) == "[batch, 4]"
    assert shape_text((None, None)) == "[batch, *]"  # a sequence axis freed by dynamic_axes is not a second batch
    assert shape_text([None, None, 2]) == "[batch, *, 2]"
    assert shape_text([None]) == "[batch]" and shape_text([]) == "[]"
