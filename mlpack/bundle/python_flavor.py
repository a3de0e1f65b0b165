"""The ``python`` flavour: the model pickled, with the modules it needs."""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

from mlpack.errors import CaptureError

__all__ = ["pickle_model", "pickle_modules", "PICKLE_PROTOCOL"]

PICKLE_PROTOCOL = 5


class _RecordingUnpickler(pickle.Unpickler):
    """Records every global a pickle references (module, qualified name), and the
    modules of each referenced class's bases: LightGBM's ``LGBMRegressor`` pickles
    as ``lightgbm.sklearn`` only, yet subclasses scikit-learn's estimators."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.globals: set[tuple[str, str]] = set()
        self.base_modules: set[str] = set()

    def find_class(self, module: str, name: str) -> Any:
        self.globals.add((module, name))
        found = super().find_class(module, name)
        if isinstance(found, type):
            self.base_modules.update(str(base.__module__) for base in found.__mro__[1:])
        return found


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
    from importlib.metadata import packages_distributions

    # A base class's module counts when an installed distribution provides it (Cython
    # and generated classes can name modules that none does: not the model's own).
    provided = packages_distributions()
    bases = {m for m in unpickler.base_modules if m.split(".")[0] in provided}
    return data, {module for module, _ in unpickler.globals} | bases


def pickle_modules(path: str | Path) -> list[str]:
    """The modules a pickle file references, read from its opcodes without unpickling it.

    Protocol 4/5 pickles name a class with two strings pushed (or fetched from
    the memo) before STACK_GLOBAL; older ones use GLOBAL "module name".
    """
    import pickletools

    modules: set[str] = set()
    memo: dict[int, Any] = {}
    recent: list[Any] = []  # the last two values pushed, strings or None
    try:
        with open(path, "rb") as fh:
            for opcode, arg, _ in pickletools.genops(fh):
                name = opcode.name
                if name == "GLOBAL":
                    modules.add(str(arg).split(" ", 1)[0])
                    value: Any = None
                elif name == "STACK_GLOBAL":
                    if len(recent) == 2 and isinstance(recent[0], str):
                        modules.add(recent[0])
                    value = None
                elif name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"):
                    value = arg
                elif name in ("BINGET", "LONG_BINGET", "GET"):
                    value = memo.get(int(arg))
                elif name == "MEMOIZE":
                    memo[len(memo)] = recent[-1] if recent else None
                    continue
                elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
                    memo[int(arg)] = recent[-1] if recent else None
                    continue
                else:
                    value = None
                recent = (recent + [value])[-2:]
    except (ValueError, OSError, EOFError) as exc:
        raise CaptureError(f"{path} is not a readable pickle: {exc}", hint="capture the model again") from None
    return sorted(m for m in modules if m and all(part.isidentifier() for part in m.split(".")))
