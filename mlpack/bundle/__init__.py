"""capture stage: a model in the kernel → a verified bundle directory.

Imports only numpy and yaml at module level: the server image loads
bundles with this package and nothing of the training stack. Converters
(skl2onnx, onnxmltools, torch.onnx) and onnxruntime are imported when used.
"""

from __future__ import annotations

from mlpack.bundle.bundle import Bundle
from mlpack.bundle.capturing import capture
from mlpack.bundle.manifest import FORMAT_VERSION
from mlpack.bundle.parity import TOLERANCES
from mlpack.bundle.predictor import Predictor
from mlpack.bundle.spec import TensorSpec, validate_name

__all__ = ["Bundle", "TensorSpec", "Predictor", "capture", "FORMAT_VERSION", "TOLERANCES", "validate_name"]
