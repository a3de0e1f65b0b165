"""The parity comparison and its per-kind tolerances."""

from __future__ import annotations

import numpy as np

from mlpack.bundle.parity import TOLERANCES, compare, output_kind, worst_line


def test_kinds() -> None:
    assert output_kind("label", np.array([1, 2])) == "label"
    assert output_kind("label", np.array(["a"])) == "label"
    assert output_kind("probabilities", np.array([0.5])) == "probability"
    assert output_kind("prediction", np.array([0.5])) == "float"
    assert TOLERANCES["label"] == (0.0, 0.0)


def test_within_tolerance_passes_and_records_errors() -> None:
    ref = {"label": np.array([0, 1, 2]), "probabilities": np.array([[0.2, 0.8], [0.5, 0.5], [1.0, 0.0]])}
    served = {"label": np.array([0, 1, 2]), "probabilities": (ref["probabilities"] + 1e-6).astype(np.float32)}
    result = compare(ref, served, rows=3)
    assert result["passed"] and result["checked"] and result["rows"] == 3
    assert 0 < result["outputs"]["probabilities"]["max_abs_error"] < 1e-5
    assert result["outputs"]["label"]["max_abs_error"] == 0


def test_one_wrong_label_fails() -> None:
    result = compare({"label": np.array([0, 1, 2])}, {"label": np.array([0, 2, 2])}, rows=3)
    assert not result["passed"]
    out = result["outputs"]["label"]
    assert out["mismatches"] == 1 and out["worst"] == {"index": 1, "original": 1, "served": 2}
    assert "label [label]: 1 value(s)" in worst_line(result)


def test_string_labels_compare_with_object_arrays() -> None:
    ref = {"label": np.array(["setosa", "virginica"])}
    assert compare(ref, {"label": np.array(["setosa", "virginica"], dtype=object)}, rows=2)["passed"]
    assert not compare(ref, {"label": np.array(["setosa", "setosa"], dtype=object)}, rows=2)["passed"]


def test_float_out_of_tolerance_fails_with_worst_difference() -> None:
    ref = {"prediction": np.array([100.0, 2.0, 3.0])}
    result = compare(ref, {"prediction": np.array([[100.05], [2.0], [3.5]])}, rows=3)  # (n,1) is reshaped
    assert not result["passed"]
    out = result["outputs"]["prediction"]
    assert out["mismatches"] == 1 and abs(out["max_abs_error"] - 0.5) < 1e-9
    assert "max abs error 0.5" in worst_line(result)


def test_relative_tolerance_allows_large_values() -> None:
    ref = {"prediction": np.array([1000.0])}
    assert compare(ref, {"prediction": np.array([1000.5])}, rows=1)["passed"]  # 0.5 <= 1e-4 + 1e-3 * 1000


def test_missing_output_and_wrong_shape_fail() -> None:
    assert not compare({"a": np.zeros(3)}, {}, rows=3)["passed"]
    result = compare({"a": np.zeros((3, 2))}, {"a": np.zeros((3, 3))}, rows=3)
    assert not result["passed"] and "shape" in result["outputs"]["a"]["note"]


def test_nan_served_fails() -> None:
    assert not compare({"p": np.array([0.5, 0.5])}, {"p": np.array([0.5, np.nan])}, rows=2)["passed"]
