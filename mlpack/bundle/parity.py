"""The parity check: does the captured model answer like the original?

Tolerances per output kind (``|served - original| <= atol + rtol * |original|``):

========== ============================== ======= =======
kind       which outputs                  atol    rtol
========== ============================== ======= =======
label      integer, bool or string dtype  exact   exact
probability float, name contains "prob"   1e-4    1e-3
float      every other float output       1e-4    1e-3
========== ============================== ======= =======

float32 serving against a float64 original (scikit-learn) and reordered
floating point sums (tree ensembles, fused torch kernels) stay well inside
these; a wrong conversion does not.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["TOLERANCES", "output_kind", "compare", "worst_line"]

TOLERANCES: dict[str, tuple[float, float]] = {
    "label": (0.0, 0.0),
    "probability": (1e-4, 1e-3),
    "float": (1e-4, 1e-3),
}


def output_kind(name: str, array: np.ndarray) -> str:
    if array.dtype.kind in "biuUSO":
        return "label"
    return "probability" if "prob" in name.lower() else "float"


def _one(name: str, reference: np.ndarray, served: np.ndarray) -> dict[str, Any]:
    kind = output_kind(name, reference)
    atol, rtol = TOLERANCES[kind]
    result: dict[str, Any] = {"kind": kind, "atol": atol, "rtol": rtol}
    if reference.size == served.size and reference.shape != served.shape:
        # e.g. a regressor's (n,) against ONNX's (n, 1): same values, other layout.
        served = served.reshape(reference.shape)
    if reference.shape != served.shape:
        result.update(passed=False, mismatches=int(reference.size), max_abs_error=float("inf"), max_rel_error=float("inf"),
                      note=f"shape {list(served.shape)} instead of {list(reference.shape)}")
        return result
    if kind == "label":
        ref_l = reference.astype(str) if reference.dtype.kind in "USO" else reference
        srv_l = served.astype(str) if served.dtype.kind in "USO" else served
        wrong = ref_l != srv_l
        mism = int(np.count_nonzero(wrong))
        result.update(passed=mism == 0, mismatches=mism, max_abs_error=float(mism > 0), max_rel_error=float(mism > 0))
        if mism:
            idx = int(np.flatnonzero(wrong.ravel())[0])
            result["worst"] = {"index": idx, "original": ref_l.ravel()[idx].item(), "served": srv_l.ravel()[idx].item()}
        return result
    ref = reference.astype(np.float64)
    srv = served.astype(np.float64)
    diff = np.abs(ref - srv)
    rel = diff / np.maximum(np.abs(ref), 1e-12)
    bad = diff > atol + rtol * np.abs(ref)
    bad |= ~np.isfinite(srv) & np.isfinite(ref)
    mism = int(np.count_nonzero(bad))
    result.update(
        passed=mism == 0,
        mismatches=mism,
        max_abs_error=float(np.nanmax(diff)) if diff.size else 0.0,
        max_rel_error=float(np.nanmax(rel)) if rel.size else 0.0,
    )
    if diff.size:
        idx = int(np.nanargmax(diff.ravel()))
        result["worst"] = {"index": idx, "original": float(ref.ravel()[idx]), "served": float(srv.ravel()[idx])}
    return result


def compare(reference: dict[str, np.ndarray], served: dict[str, np.ndarray], rows: int) -> dict[str, Any]:
    """Compares each reference output with the served one; the manifest's ``parity``."""
    outputs: dict[str, Any] = {}
    for name, ref in reference.items():
        if name not in served:
            outputs[name] = {"kind": "missing", "passed": False, "mismatches": int(np.asarray(ref).size),
                             "max_abs_error": float("inf"), "max_rel_error": float("inf")}
            continue
        outputs[name] = _one(name, np.asarray(ref), np.asarray(served[name]))
    return {
        "checked": True,
        "passed": all(o["passed"] for o in outputs.values()),
        "rows": int(rows),
        "outputs": outputs,
        "override": False,
    }


def worst_line(parity: dict[str, Any]) -> str:
    """One sentence naming each failing output and its worst difference."""
    parts = []
    for name, o in parity["outputs"].items():
        if o["passed"]:
            continue
        w = o.get("worst", {})
        detail = f"; worst at flat index {w['index']}: original {w['original']!r}, served {w['served']!r}" if w else ""
        note = f" ({o['note']})" if o.get("note") else ""
        parts.append(
            f"{name} [{o['kind']}]: {o['mismatches']} value(s) out of tolerance, "
            f"max abs error {o['max_abs_error']:.3g}, max rel error {o['max_rel_error']:.3g}{note}{detail}"
        )
    return "; ".join(parts)
