"""V2 tensor shapes checked before anything is allocated for them.

A client's ``shape`` is multiplied, reshaped and allocated by numpy, whose
int64 product overflows ([2^62, 4] is 0 elements) and whose arrays have at
most 64 dimensions: each of those was a 500. The product is computed here in
Python integers, against bounds no real request reaches.
"""

from __future__ import annotations

from collections.abc import Sequence

from mlpack.server.tensors import Spec, invalid

__all__ = ["check_v2_shape", "MAX_RANK", "MAX_ELEMENTS"]

MAX_RANK = 32  # ONNX Runtime's own limit on tensor rank
MAX_ELEMENTS = 1 << 40  # far above any body the server accepts, far below int64 overflow


def check_v2_shape(spec: Spec, shape: Sequence[int]) -> tuple[int, ...]:
    """``shape`` as a tuple, or a 422 naming what is wrong with it (rank, a dimension, the product)."""
    name = spec.name
    if len(shape) > MAX_RANK:
        raise invalid(f"input {name!r}: shape has {len(shape)} dimensions, at most {MAX_RANK} are supported",
                      input=name)
    elements = 1
    for dim in shape:
        if dim < 0 or dim >= MAX_ELEMENTS:
            raise invalid(f"input {name!r}: shape dimension {dim} is out of range (0 to {MAX_ELEMENTS - 1})",
                          input=name)
        elements *= dim
    if elements >= MAX_ELEMENTS:
        raise invalid(f"input {name!r}: shape {list(shape)} describes {elements} elements, more than any request "
                      "can carry", input=name, hint="send the real shape of the data")
    return tuple(shape)
