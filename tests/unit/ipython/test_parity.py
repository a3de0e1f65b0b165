"""Container parity: the kernel's reference (with hooks) and the comparison rules."""

from __future__ import annotations


import numpy as np
import pytest

from mlpack.errors import ServeError
from mlpack.parity import compare, kernel_outputs, load_hooks, sample_feeds

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
    pre, post = load_hooks(HOOKS)
    assert pre is not None and post is not None and pre.__module__ == "hooks"
    assert load_hooks(None) == (None, None) and load_hooks("  \n") == (None, None)
    with pytest.raises(ServeError, match="not plain Python"):
        load_hooks("%time x = 1\n")


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
