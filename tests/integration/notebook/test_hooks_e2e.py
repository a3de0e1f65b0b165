"""The hooks contract end to end: nested, string and scalar outputs of a postprocess hook
pass container parity; a value that differs in the container fails with its path; a hook
that fails in the container puts its traceback into the Service's error."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from mlpack.errors import ServeError
from mlpack.settings import Settings

pytestmark = [pytest.mark.runtime, pytest.mark.build, pytest.mark.slow]

NESTED = textwrap.dedent('''
    import os
    import numpy as np

    NAMES = np.array(["setosa", "versicolor", "virginica"])

    def postprocess(outputs):
        label = np.asarray(outputs["label"]).reshape(-1)
        version = "{version}" if os.environ.get("MLPACK_BUNDLE") else "1.0"
        return {{
            "meta": {{"version": version, "rows": int(label.shape[0]), "model": "tree", "extra": None}},
            "outputs": {{"label": label, "name": NAMES[label]}},
            "first": str(NAMES[label[0]]),
            "mean_probability": float(np.asarray(outputs["probabilities"]).max(axis=1).mean()),
        }}
''')

FAILING = textwrap.dedent('''
    import os

    def postprocess(outputs):
        if os.environ.get("MLPACK_BUNDLE"):
            return outputs["no-such-output"]
        return outputs
''')


@pytest.fixture(scope="module")
def tree_and_sample():
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier

    x, y = load_iris(return_X_y=True)
    x = x.astype(np.float32)
    return DecisionTreeClassifier(max_depth=3, random_state=0).fit(x, y), x


def test_nested_string_and_scalar_outputs_pass_container_parity(tree_and_sample, e2e_settings: Settings) -> None:
    import mlpack

    model, x = tree_and_sample
    with mlpack.serve(model, x[::10], name="hooks-nested", hooks_source=NESTED.format(version="1.0"),
                      settings=e2e_settings) as service:
        assert service.parity.passed, service.parity.summary()
        assert "meta same structure" in service.parity.summary()
        answer = service.predict_all(x[:3])
        assert answer["first"].item() == "setosa"


def test_a_value_that_differs_in_the_container_fails_parity_with_its_path(tree_and_sample,
                                                                          e2e_settings: Settings) -> None:
    import mlpack

    model, x = tree_and_sample
    with pytest.raises(ServeError) as info:
        mlpack.serve(model, x[::10], name="hooks-differs", hooks_source=NESTED.format(version="2.0"),
                     settings=e2e_settings)
    try:
        assert "outputs.meta.version: kernel '1.0', container '2.0'" in str(info.value), str(info.value)
    finally:
        info.value.service.stop()  # left running for inspection


def test_a_hook_failing_in_the_container_brings_its_traceback(tree_and_sample, e2e_settings: Settings) -> None:
    import mlpack

    model, x = tree_and_sample
    with pytest.raises(ServeError) as info:
        mlpack.serve(model, x[::10], name="hooks-fails", hooks_source=FAILING, settings=e2e_settings)
    message = str(info.value)
    assert "POST /predict answered 500" in message and "postprocess() raised KeyError" in message, message
    assert "the last lines of the container's log" in message and "no-such-output" in message, message
    assert info.value.service.container is None  # stopped: nothing left running


def test_a_library_only_the_hook_imports_is_in_the_image(tree_and_sample, e2e_settings: Settings) -> None:
    """The model is ONNX (its lock is the serving stack); the hook needs scipy."""
    import mlpack

    model, x = tree_and_sample
    hooks = ("def postprocess(outputs):\n    from scipy.special import logit\n"
             "    return {'logit': logit(outputs['probabilities'].clip(0.01, 0.99))}\n")
    with mlpack.serve(model, x[::10], name="hooks-scipy", hooks_source=hooks, settings=e2e_settings) as service:
        assert service.bundle.flavor == "onnx"
        assert "scipy==" in (service.bundle.path / "requirements.lock").read_text()
        assert service.parity.passed, service.parity.summary()
