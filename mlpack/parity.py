"""Container parity: does the running container answer like the model in the kernel?

:func:`kernel_outputs` computes the reference in the kernel (the user's hooks
around the user's own model, called through :mod:`mlpack.bundle.hooks`
exactly as the server calls them) and :func:`compare` checks the container's
answer against it. Tensors (arrays, lists of numbers or strings) are compared
with :func:`mlpack.bundle.parity.compare`, the tolerances capture uses
(labels exact, floats within ``atol + rtol * |expected|``); anything else a
postprocess hook may return is compared as a structure: dict keys, list
lengths, strings, ints, bools and None exactly, floats with the same
tolerance, and the first difference is reported with its path
(``outputs.meta.version``, ``outputs.label[3]``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlpack.bundle.hooks import HookFailed, load_source
from mlpack.errors import ServeError

__all__ = ["ParityResult", "compare", "first_difference", "kernel_outputs", "sample_feeds"]


@dataclass(frozen=True)
class ParityResult:
    """The verdict over every output: ``outputs`` maps each name to the report of
    :func:`mlpack.bundle.parity.compare` (kind, passed, max_abs_error, worst, …), or for
    a structured output ``{"kind": "structure", "passed", "path", "difference"}``."""

    passed: bool
    rows: int
    outputs: dict[str, dict[str, Any]]

    @property
    def max_abs(self) -> float:
        return max((float(o.get("max_abs_error", 0.0)) for o in self.outputs.values()
                    if o.get("kind") not in ("label", "structure")), default=0.0)

    def summary(self) -> str:
        """One line: verdict, rows, and each output's exactness or worst error."""
        if not self.passed:
            from mlpack.bundle.parity import worst_line

            tensors = {k: o for k, o in self.outputs.items() if o.get("kind") != "structure"}
            parts = [f"{o['difference']}" for o in self.outputs.values()
                     if o.get("kind") == "structure" and not o["passed"]]
            if any(not o["passed"] for o in tensors.values()):
                parts.append(worst_line({"outputs": tensors}))
            return f"FAILED on {self.rows} rows: " + "; ".join(parts)
        parts = []
        for name, o in self.outputs.items():
            if o.get("kind") in ("label", "structure"):
                parts.append(f"{name} exact" if o.get("kind") == "label" else f"{name} same structure")
            else:
                parts.append(f"{name} max abs err {float(o.get('max_abs_error', 0.0)):.2g}")
        return f"ok on {self.rows} rows: " + ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"checked": True, "passed": self.passed, "rows": self.rows, "outputs": self.outputs}


def _tensor(value: Any) -> np.ndarray | None:
    """``value`` as a non-object array when it is one (an array, a list of numbers or strings)."""
    if isinstance(value, np.ndarray):
        return value if value.dtype.kind != "O" and value.ndim > 0 else None
    if not isinstance(value, (list, tuple)) or not value:
        return None
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):  # ragged
        return None
    return array if array.dtype.kind in "biufcUS" else None


def compare(expected: dict[str, Any], actual: dict[str, Any]) -> ParityResult:
    """Compare the container's outputs with the kernel's, with capture's tolerances.

    Outputs pair by name, or by position when the container names them
    differently but gives as many.
    """
    from mlpack.bundle.parity import compare as _compare

    exp = {str(k): v for k, v in expected.items()}
    act = {str(k): v for k, v in actual.items()}
    if not set(exp) <= set(act) and len(exp) == len(act):
        act = dict(zip(exp, act.values()))
    tensors = {k: t for k, v in exp.items() if (t := _tensor(v)) is not None and _tensor(act.get(k)) is not None}
    first = next(iter(tensors.values()), None)
    rows = int(first.shape[0]) if first is not None else 1
    report = _compare(tensors, {k: np.asarray(act[k]) for k in tensors}, rows)
    outputs: dict[str, dict[str, Any]] = {}
    for name, value in exp.items():
        if name in tensors:
            outputs[name] = report["outputs"][name]
            continue
        path = f"outputs.{name}"
        difference = (f"{path}: missing from the container's answer" if name not in act
                      else first_difference(value, act[name], path))
        outputs[name] = {"kind": "structure", "passed": difference is None, "path": path,
                         "difference": difference}
    return ParityResult(all(o["passed"] for o in outputs.values()), rows, outputs)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def first_difference(expected: Any, actual: Any, path: str) -> str | None:
    """Where ``actual`` (decoded JSON) first differs from ``expected`` (the kernel's value), or None."""
    from mlpack.bundle.parity import TOLERANCES, compare as _compare

    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"{path}: a dict in the kernel, {_kind(actual)} from the container"
        keys = [str(k) for k in expected]
        missing = [k for k in keys if k not in actual]
        if missing:
            return f"{path}.{missing[0]}: missing from the container's answer"
        extra = [k for k in actual if k not in keys]
        if extra:
            return f"{path}.{extra[0]}: in the container's answer, not the kernel's"
        for key, value in expected.items():
            found = first_difference(value, actual[str(key)], f"{path}.{key}")
            if found:
                return found
        return None
    tensor = _tensor(expected)
    if tensor is not None and _tensor(actual) is not None:
        report = _compare({"value": tensor}, {"value": np.asarray(actual)}, len(tensor))["outputs"]["value"]
        if report["passed"]:
            return None
        worst = report.get("worst")
        if worst is None:
            return f"{path}: {report.get('note', 'differs')}"
        return f"{path}[{worst['index']}]: kernel {worst['original']!r}, container {worst['served']!r}"
    if isinstance(expected, (list, tuple)) or (isinstance(expected, np.ndarray) and expected.ndim > 0):
        items = list(expected)
        if not isinstance(actual, list):
            return f"{path}: a list in the kernel, {_kind(actual)} from the container"
        if len(items) != len(actual):
            return f"{path}: {len(items)} items in the kernel, {len(actual)} from the container"
        for i, (e, a) in enumerate(zip(items, actual)):
            found = first_difference(e, a, f"{path}[{i}]")
            if found:
                return found
        return None
    if isinstance(expected, np.generic) or (isinstance(expected, np.ndarray) and expected.ndim == 0):
        expected = expected.item()
    if isinstance(expected, float) and isinstance(actual, (int, float)) and not isinstance(actual, bool):
        atol, rtol = TOLERANCES["float"]
        if (math.isnan(expected) and math.isnan(actual)) or abs(actual - expected) <= atol + rtol * abs(expected):
            return None
        return f"{path}: kernel {expected!r}, container {actual!r}"
    if expected is None and actual is None:
        return None
    if type(expected) is not type(actual) or expected != actual:
        return f"{path}: kernel {expected!r}, container {actual!r}"
    return None


# -- the kernel side --------------------------------------------------------------
def sample_feeds(bundle: Any) -> dict[str, np.ndarray]:
    """The rows the container is asked about: the bundle's stored sample, by input name."""
    return {str(k): np.asarray(v) for k, v in bundle.sample().items()}


def _model_outputs(model: Any, sample: Any, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    # Capture's own adapter calls the original model the way it did for the
    # capture parity check, so both checks mean the same "the model's answer".
    from mlpack.bundle.frameworks import CaptureOptions, select_adapter

    prepared = select_adapter(model).prepare(model, sample, CaptureOptions())
    return prepared.reference_fn(feeds)


def kernel_outputs(model: Any, sample: Any, bundle: Any, hooks_source: str | None = None) -> dict[str, Any]:
    """What the container should answer for :func:`sample_feeds`: postprocess(model(preprocess(x))).

    The model's part is the original model's answer that capture stored
    (``bundle.expected()``, on the preprocessed rows when there is a preprocess
    hook), so the model is not prepared or run again; only bundles captured
    before that was stored make the kernel run the model. Values may be any
    structure a postprocess hook returns.
    """
    hooks = load_source(hooks_source, ServeError)
    feeds = sample_feeds(bundle)
    try:
        # The model's answer on exactly these rows (preprocessed when there is a
        # preprocess hook) is what capture stored: the model is not run again.
        stored = bundle.expected(preprocessed=hooks.preprocess is not None)
    except (OSError, KeyError):
        stored = None  # a bundle from before capture stored it: ask the model
    try:
        if stored is not None:
            outputs = hooks.after(stored)
        else:
            outputs = hooks.after(_model_outputs(model, sample, hooks.before_arrays(feeds)))
    except HookFailed as exc:
        raise ServeError(str(exc), hint="hooks run in the container without the notebook's variables: "
                                        "define or import everything they use inside the cell",
                         traceback=exc.traceback) from exc
    return {str(k): v for k, v in outputs.items()}
