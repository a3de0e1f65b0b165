"""The hooks contract, defined once: what a bundle's hooks.py is and how it is called.

A bundle may carry ``hooks.py``, plain Python defining either or both of::

    def preprocess(inputs: dict[str, np.ndarray]) -> dict[str, array-like]
    def postprocess(outputs: dict[str, np.ndarray]) -> dict[str, Any]

``preprocess`` gets the validated request inputs by name and returns the
model's inputs by name (arrays, lists or scalars; turned into arrays).
``postprocess`` gets the model's outputs by name and returns a dict whose
values are any JSON-serialisable structure: arrays, nested dicts and lists,
strings, numbers, booleans, None (``{"meta": {...}, "outputs": outputs}``).
A preprocess that raises ``ValueError`` or ``TypeError`` rejects the request
(the client's fault, HTTP 422); any other failure is the bundle's (HTTP 500
with the hook's message; its traceback goes to the log and the Service error).

The cell of ``%%containerize`` (or ``hooks_source=``) becomes hooks.py as is:
:func:`check_source` parses it once for every caller. The kernel (container
parity), capture and the server all call the hooks through :func:`load_source`
/ :func:`load_file` and :class:`Hooks`, so the four places run the same code.
"""

from __future__ import annotations

import ast
import importlib.util
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlpack.errors import CaptureError, MlpackError

__all__ = ["HOOK_NAMES", "Hooks", "as_array", "HookFailed", "parse", "defined", "check_source", "imported_modules",
           "load_source", "load_file"]

HOOK_NAMES = ("preprocess", "postprocess")
MODULE_NAME = "mlpack_bundle_hooks"


class BadReturn(Exception):
    """A hook broke the contract's return type (the bundle's fault, never the client's)."""


class HookFailed(Exception):
    """A hook raised: ``name`` (preprocess or postprocess), the original exception as
    ``__cause__`` and the formatted ``traceback`` (kept for error details and logs)."""

    def __init__(self, name: str, exc: BaseException) -> None:
        self.name = name
        self.error = exc
        self.traceback = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        super().__init__(f"{name}() raised {type(exc).__name__}: {exc}")

    @property
    def rejected(self) -> bool:
        """preprocess raising ValueError or TypeError refused the input (HTTP 422)."""
        return self.name == "preprocess" and isinstance(self.error, (ValueError, TypeError))


def parse(source: Any, error: type[MlpackError] = CaptureError) -> ast.Module:
    """The hooks source as a syntax tree: plain Python text, or ``error`` saying what to do."""
    if not isinstance(source, str):
        raise error("hooks_source must be python source text", hint="pass the text of a module, not a function")
    try:
        return ast.parse(source, filename="hooks.py")
    except SyntaxError as exc:
        raise error(f"the hooks are not plain Python (line {exc.lineno}: {exc.msg})",
                    hint="the cell body becomes hooks.py in the image; IPython magics "
                         "and !shell lines cannot go there", stage="hooks") from None


def defined(source: str | ast.Module) -> list[str]:
    """The hooks a source defines at module level, in HOOK_NAMES order."""
    tree = ast.parse(source, filename="hooks.py") if isinstance(source, str) else source
    names = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    return [name for name in HOOK_NAMES if name in names]


def check_source(source: Any, error: type[MlpackError] = CaptureError) -> str:
    """The hooks source, checked: plain Python text that defines a hook at module level."""
    if not defined(parse(source, error)):
        raise error("the hooks define neither preprocess(inputs) nor postprocess(outputs)",
                    hint="define def preprocess(inputs): ... and/or def postprocess(outputs): ... at module level")
    return source


def imported_modules(source: str) -> list[str]:
    """The absolute imports anywhere in the hooks (``import transformers`` inside a function counts)."""
    try:
        tree = ast.parse(source, filename="hooks.py")
    except SyntaxError:
        return []
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return sorted(names)


@dataclass(frozen=True)
class Hooks:
    """The two hooks of a bundle, either may be None."""

    preprocess: Callable[[dict], Any] | None = None
    postprocess: Callable[[dict], Any] | None = None

    def __bool__(self) -> bool:
        return self.preprocess is not None or self.postprocess is not None

    def before(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """preprocess(inputs), or inputs unchanged; HookFailed when it raises."""
        return _apply(self.preprocess, "preprocess", inputs, "inputs")

    def before_arrays(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """preprocess(inputs) as arrays by name: what the model is called with."""
        return {str(k): as_array(v) for k, v in self.before(dict(inputs)).items()}

    def after(self, outputs: dict[str, Any]) -> dict[str, Any]:
        """postprocess(outputs), or outputs unchanged; HookFailed when it raises."""
        return _apply(self.postprocess, "postprocess", outputs, "outputs")


def as_array(value: Any) -> Any:
    """A numpy array from an array, a list, a torch tensor or a pandas object."""
    import numpy as np

    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor
        value = value.detach().cpu().numpy()
    elif hasattr(value, "to_numpy"):  # pandas
        value = value.to_numpy()
    return np.asarray(value)


def _apply(fn: Callable[[dict], Any] | None, name: str, value: dict, what: str) -> dict:
    if fn is None:
        return value
    try:
        result = fn(dict(value))
    except Exception as exc:
        raise HookFailed(name, exc) from exc
    if not isinstance(result, dict):
        raise HookFailed(name, BadReturn(f"{name}() returned {type(result).__name__}, not a dict of {what} by name"))
    return result


def load_source(source: str | None, error: type[MlpackError] = CaptureError) -> Hooks:
    """Hooks from source text, run in a fresh module namespace as hooks.py runs in the image
    (a hook that leans on a notebook variable fails here too)."""
    if source is None or not source.strip():
        return Hooks()
    check_source(source, error)
    namespace: dict[str, Any] = {"__name__": MODULE_NAME}
    try:
        exec(compile(source, "hooks.py", "exec"), namespace)  # noqa: S102 - the user's own cell
    except Exception as exc:
        failed = HookFailed("hooks.py", exc)
        raise error(f"running hooks.py failed: {type(exc).__name__}: {exc}",
                    hint="hooks.py may only use what it imports itself", traceback=failed.traceback) from exc
    return Hooks(namespace.get("preprocess"), namespace.get("postprocess"))


def load_file(path: str | Path | None, error: type[MlpackError] = CaptureError) -> Hooks:
    """A bundle's hooks.py imported as a private module (never through sys.path)."""
    if path is None or not Path(path).is_file():
        return Hooks()
    spec = importlib.util.spec_from_file_location(MODULE_NAME, str(path))
    if spec is None or spec.loader is None:  # pragma: no cover - a .py file always has a loader
        raise error(f"cannot import hooks from {path}", hint="hooks.py must be a Python source file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        failed = HookFailed("hooks.py", exc)
        raise error(f"importing the bundle's hooks.py failed: {type(exc).__name__}: {exc}",
                    hint="fix hooks.py in the bundle (it may only import what the image installs)",
                    traceback=failed.traceback) from exc
    return Hooks(getattr(module, "preprocess", None), getattr(module, "postprocess", None))
