"""Container parity: the kernel's reference (with hooks) and the comparison rules."""

from __future__ import annotations


import numpy as np
import pytest

from mlpack.errors import ServeError
from mlpack.bundle.hooks import MODULE_NAME, load_source
from mlpack.parity import compare, kernel_outputs, sample_feeds

HOOKS = '''
import numpy as np

def preprocess(inputs):
    # doubling every feature changes what the model sees
    return {k: v * 2 for k, v in inputs.items()}

def postprocess(outputs):
    outputs["label_name"] = np.array(["setosa", "versicolor", "virginica"])[outputs["label"]]
    return outputs
'''


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory):
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from mlpack.bundle import capture

    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=300).fit(x, y)
    sample = x[::15].astype(np.float32)
    bundle = capture(model, sample, name="iris", path=tmp_path_factory.mktemp("b") / "iris", hooks_source=HOOKS)
    return model, sample, bundle


def test_hooks_load_in_a_fresh_namespace() -> None:
    hooks = load_source(HOOKS, ServeError)
    pre, post = hooks.preprocess, hooks.postprocess
    assert pre is not None and post is not None and pre.__module__ == MODULE_NAME
    assert not load_source(None) and not load_source("  \n")
    with pytest.raises(ServeError, match="not plain Python"):
        load_source("%time x = 1\n", ServeError)


def test_kernel_reference_applies_the_hooks_around_the_model(iris) -> None:
    model, sample, bundle = iris
    feeds = sample_feeds(bundle)
    expected = kernel_outputs(model, sample, bundle, HOOKS)
    x = next(iter(feeds.values())).astype(np.float64) * 2
    assert np.array_equal(expected["label"], model.predict(x))
    assert np.array_equal(expected["label_name"], np.array(["setosa", "versicolor", "virginica"])[model.predict(x)])
    # Without hooks the reference is the original's answer that capture stored.
    plain = kernel_outputs(model, sample, bundle, None)
    assert set(plain) == {"label", "probabilities"}
    assert np.array_equal(plain["label"], model.predict(next(iter(feeds.values())).astype(np.float64)))


def test_a_hook_that_needs_a_notebook_variable_fails_in_the_kernel_too(iris) -> None:
    model, sample, bundle = iris
    with pytest.raises(ServeError, match="NameError") as info:
        kernel_outputs(model, sample, bundle, "def postprocess(o):\n    return scale(o)\n")
    assert "define or import" in info.value.hint


def test_compare_labels_exact_and_floats_within_capture_tolerance() -> None:
    expected = {"label": np.array([0, 1, 2]), "probabilities": np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]])}
    close = {"label": [0, 1, 2], "probabilities": (expected["probabilities"] + 5e-5).tolist()}
    ok = compare(expected, {k: np.asarray(v) for k, v in close.items()})
    assert ok.passed and ok.rows == 3 and "label exact" in ok.summary()
    bad_label = compare(expected, {"label": np.array([0, 2, 2]), "probabilities": expected["probabilities"]})
    assert not bad_label.passed and "label" in bad_label.summary() and "FAILED" in bad_label.summary()
    bad_prob = compare(expected, {"label": expected["label"], "probabilities": expected["probabilities"] + 0.01})
    assert not bad_prob.passed and "probabilities" in bad_prob.summary()


def test_compare_pairs_renamed_outputs_by_position_and_text_labels() -> None:
    result = compare({"label": np.array(["a", "b"])}, {"output": np.array(["a", "b"])})
    assert result.passed
    missing = compare({"label": np.array([1]), "p": np.array([0.5])}, {"label": np.array([1])})
    assert not missing.passed


# -- structured outputs (what a postprocess hook may return) --------------------------
def _nested(version: str = "1.2", label: tuple = ("setosa", "virginica"), score: float = 0.5) -> dict:
    return {"meta": {"version": version, "rows": 2, "ok": True, "extra": None},
            "outputs": {"label": np.array(list(label)), "score": np.array([score, 0.25])},
            "names": ["a", "b"], "threshold": score}


def _as_json(value):
    import json

    return json.loads(json.dumps(value, default=lambda a: a.tolist()))


def test_nested_string_and_scalar_outputs_pass_when_the_container_answers_the_same() -> None:
    result = compare(_nested(), _as_json(_nested(score=0.5 + 1e-6)))
    assert result.passed, result.summary()
    assert "meta same structure" in result.summary()


@pytest.mark.parametrize("changed, path", [
    ({"version": "1.3"}, "outputs.meta.version: kernel '1.2', container '1.3'"),
    ({"label": ("setosa", "versicolor")}, "outputs.outputs.label[1]: kernel 'virginica', container 'versicolor'"),
    ({"score": 0.9}, "outputs.threshold: kernel 0.5, container 0.9"),
])
def test_a_changed_value_fails_with_its_path(changed: dict, path: str) -> None:
    result = compare(_nested(), _as_json(_nested(**changed)))
    assert not result.passed
    assert path in result.summary(), result.summary()


def test_structure_differences_name_keys_lengths_and_types() -> None:
    exp = _nested()
    got = _as_json(exp)
    del got["meta"]["rows"]
    assert "outputs.meta.rows: missing from the container's answer" in compare(exp, got).summary()
    got = _as_json(exp)
    got["names"].append("c")
    assert "names [label]" in compare(exp, got).summary() and "shape [3] instead of [2]" in compare(exp, got).summary()
    got = _as_json(exp)
    got["meta"]["extra"] = [1, 2]
    assert "outputs.meta.extra: kernel None, container [1, 2]" in compare(exp, got).summary()
    got = _as_json(exp)
    got["meta"]["rows"] = "2"
    assert "outputs.meta.rows: kernel 2, container '2'" in compare(exp, got).summary()
    got = _as_json(exp)
    got["meta"] = [1]
    assert "outputs.meta: a dict in the kernel, list from the container" in compare(exp, got).summary()


def test_hook_failure_keeps_the_traceback(iris) -> None:
    model, sample, bundle = iris
    with pytest.raises(ServeError, match="postprocess\\(\\) raised KeyError") as info:
        kernel_outputs(model, sample, bundle, "def postprocess(o):\n    return o['nope']\n")
    assert "line 2, in postprocess" in info.value.traceback
