"""The ``python`` flavour: the model pickled, with the modules it needs."""

from __future__ import annotations

import io
import pickle
from typing import Any

from mlpack.errors import CaptureError

__all__ = ["pickle_model", "PICKLE_PROTOCOL"]

PICKLE_PROTOCOL = 5


class _RecordingUnpickler(pickle.Unpickler):
    """Records every global a pickle references (module, qualified name)."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.globals: set[tuple[str, str]] = set()

    def find_class(self, module: str, name: str) -> Any:
        self.globals.add((module, name))
        return super().find_class(module, name)


def pickle_model(model: Any) -> tuple[bytes, set[str]]:
    """Pickles ``model`` and returns the bytes and the modules they reference.

    The modules come from unpickling the bytes once (which also proves the
    pickle loads), so a Pipeline's steps and a module's layers all count.
    """
    try:
        data = pickle.dumps(model, protocol=PICKLE_PROTOCOL)
    except Exception as exc:  # lambdas, open files, locks ...
        raise CaptureError(
            f"the model cannot be pickled: {exc}",
            hint="remove unpicklable attributes (lambdas, open handles) or make the model convertible to ONNX",
        ) from None
    unpickler = _RecordingUnpickler(data)
    try:
        unpickler.load()
    except Exception as exc:
        raise CaptureError(
            f"the pickled model does not load back: {exc}",
            hint="classes defined inside functions cannot be unpickled; define them at module level",
        ) from None
    return data, {module for module, _ in unpickler.globals}
