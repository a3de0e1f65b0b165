"""Value types of a bundle's schema: tensor specs, dtypes and names."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlpack.errors import CaptureError

__all__ = ["TensorSpec", "NAME_RE", "validate_name", "dtype_name", "ORT_DTYPES", "default_name"]

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


def default_name(text: str) -> str:
    """A valid name derived from free text such as a class name."""
    cleaned = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return cleaned[:NAME_MAX].strip("-._")
