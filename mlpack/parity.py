"""Container parity: does the running container answer like the model in the kernel?

:func:`kernel_outputs` computes the reference in the kernel (the user's hooks
around the user's own model, exactly as the server applies them around the
converted one) and :func:`compare` checks the container's answer against it:
with :func:`mlpack.bundle.parity.compare`, the same tolerances capture uses
between the original and the converted model (labels exact, floats within
``atol + rtol * |expected|``).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlpack.endpoint import as_array
from mlpack.errors import ServeError

__all__ = ["ParityResult", "compare", "kernel_outputs", "load_hooks", "sample_feeds"]



@dataclass(frozen=True)
class ParityResult:
    """The verdict over every output: ``outputs`` maps each name to the report of
    :func:`mlpack.bundle.parity.compare` (kind, passed, max_abs_error, worst, …)."""

    passed: bool
    rows: int
    outputs: dict[str, dict[str, Any]]

    @property
    def max_abs(self) -> float:
        return max((float(o.get("max_abs_error", 0.0)) for o in self.outputs.values()
                    if o.get("kind") != "label"), default=0.0)

    def summary(self) -> str:
        """One line: verdict, rows, and each output's exactness or worst error."""
        if not self.passed:
            from mlpack.bundle.parity import worst_line

            return f"FAILED on {self.rows} rows: " + worst_line(self.to_dict())
        parts = []
        for name, o in self.outputs.items():
            if o.get("kind") == "label":
                parts.append(f"{name} exact")
            else:
                parts.append(f"{name} max abs err {float(o.get('max_abs_error', 0.0)):.2g}")
        return f"ok on {self.rows} rows: " + ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"checked": True, "passed": self.passed, "rows": self.rows, "outputs": self.outputs}


def compare(expected: dict[str, Any], actual: dict[str, Any]) -> ParityResult:
    """Compare the container's outputs with the kernel's, with capture's tolerances.

    Outputs pair by name, or by position when the container names them
    differently but gives as many.
    """
    from mlpack.bundle.parity import compare as _compare

    exp = {str(k): np.asarray(v) for k, v in expected.items()}
    act = {str(k): np.asarray(v) for k, v in actual.items()}
    if not set(exp) <= set(act) and len(exp) == len(act):
        act = dict(zip(exp, act.values()))
    first = next(iter(exp.values()), np.empty(0))
    rows = int(first.shape[0]) if first.ndim else 1
    report = _compare(exp, act, rows)
    return ParityResult(bool(report["passed"]), rows, dict(report["outputs"]))


# -- the kernel side --------------------------------------------------------------
def load_hooks(source: str | None) -> tuple[Any, Any]:
    """(preprocess, postprocess) defined by a hooks source, each None when absent.

    The source runs in a fresh module namespace, as hooks.py runs in the
    container: a hook that leans on a notebook variable fails here too.
    """
    if not source or not source.strip():
        return None, None
    try:
        code = compile(ast.parse(source, filename="hooks.py"), "hooks.py", "exec")
    except SyntaxError as exc:
        raise ServeError(f"the hooks are not plain Python: {exc.msg} (line {exc.lineno})",
                         hint="the cell body becomes hooks.py in the image; IPython magics "
                              "and !shell lines cannot go there") from None
    namespace: dict[str, Any] = {"__name__": "hooks"}
    exec(code, namespace)  # noqa: S102 - the user's own cell, already run in the kernel
    return namespace.get("preprocess"), namespace.get("postprocess")


def sample_feeds(bundle: Any) -> dict[str, np.ndarray]:
    """The rows the container is asked about: the bundle's stored sample, by input name."""
    return {str(k): np.asarray(v) for k, v in bundle.sample().items()}


def _model_outputs(model: Any, sample: Any, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    # Capture's own adapter calls the original model the way it did for the
    # capture parity check, so both checks mean the same "the model's answer".
    from mlpack.bundle.frameworks import CaptureOptions, select_adapter

    prepared = select_adapter(model).prepare(model, sample, CaptureOptions())
    return prepared.reference_fn(feeds)


def kernel_outputs(model: Any, sample: Any, bundle: Any, hooks_source: str | None = None) -> dict[str, np.ndarray]:
    """What the container should answer for :func:`sample_feeds`: postprocess(model(preprocess(x))).

    Without hooks that is the original model's answer that capture stored
    (``bundle.expected()``); with hooks the kernel runs them around the model.
    """
    preprocess, postprocess = load_hooks(hooks_source)
    feeds = sample_feeds(bundle)
    if preprocess is None and postprocess is None:
        try:
            return {str(k): np.asarray(v) for k, v in bundle.expected().items()}
        except (OSError, KeyError):
            pass  # a bundle without expected outputs: ask the model
    if preprocess is not None:
        feeds = _call_hook(preprocess, "preprocess", dict(feeds))
        feeds = {str(k): as_array(v) for k, v in feeds.items()}
    outputs = _model_outputs(model, sample, feeds)
    if postprocess is not None:
        outputs = _call_hook(postprocess, "postprocess", {k: as_array(v) for k, v in outputs.items()})
    return {str(k): as_array(v) for k, v in outputs.items()}


def _call_hook(func: Any, name: str, value: dict) -> dict:
    try:
        result = func(value)
    except Exception as exc:
        raise ServeError(f"{name}() raised {type(exc).__name__}: {exc}",
                         hint="hooks run in the container without the notebook's variables: "
                              "define or import everything they use inside the cell") from exc
    if not isinstance(result, dict):
        raise ServeError(f"{name}() returned {type(result).__name__}, not a dict of arrays by name",
                         hint=f"return the mapping it was given, changed: def {name}(x): ...; return x")
    return result
