"""The rest of issue 12's matrix in real containers: text (Tfidf + LogisticRegression on
string labels), gradient boosting on DataFrames (an XGBoost regressor answering [N] like
``model.predict``, a LightGBM classifier answering its string labels), and a torch sequence
model captured with ``dynamic_axes`` asked at lengths the sample never had (and a GRU
captured without it, whose 422 names the fixed axis). Each case is one
``mlpack.serve`` (capture, render, a build by mlpack's builder FROM the offline base,
crun/runc, container parity), asked over HTTP with the request forms a client uses. All are
ONNX bundles, so they share every image layer but the bundle's. Build time and image size
are printed (``-s``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mlpack.settings import Settings
from tests.integration.bundle.helpers import json_records, post_json, serve_and_report, v2_output

pytestmark = [pytest.mark.runtime, pytest.mark.build, pytest.mark.slow]
pd = pytest.importorskip("pandas")

N = 120


def _check_onnx_image(service: Any) -> None:
    """An ONNX bundle whose image needs no training framework (nor pandas): onnxruntime serves it,
    and the container answered every stored sample row like the model (container parity)."""
    assert service.bundle.flavor == "onnx", service.bundle.manifest["model"]
    dists = {line.split("==")[0].lower() for line in service.bundle.requirements}
    assert "onnxruntime" in dists and not dists & {"scikit-learn", "xgboost", "lightgbm", "torch", "pandas"}, dists
    assert service.parity is not None and service.parity.passed, service.parity


# -- text: a list of strings in, the model's string labels out --

WORDS = ["good", "great", "fun", "bad", "awful", "boring", "movie", "plot", "actor", "scene", "ending", "café"]


def _texts(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, int(rng.integers(3, 9)))).capitalize() + "." for _ in range(n)]


def _sentiment(texts: list[str]) -> np.ndarray:
    def score(t: str) -> int:
        words = t.lower().rstrip(".").split()
        return sum(w in ("good", "great", "fun") for w in words) - sum(w in ("bad", "awful", "boring") for w in words)
    return np.array(["positive" if score(t) > 0 else "negative" if score(t) < 0 else "mixed" for t in texts])


@pytest.fixture(scope="module")
def text_service(container_settings: Settings):  # type: ignore[no-untyped-def]
    pytest.importorskip("skl2onnx")
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    texts = _texts(N, 1)
    model = make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=500)).fit(texts, _sentiment(texts))
    service = serve_and_report("matrix", model, texts, "matrix-text", container_settings)
    yield service, model
    service.stop()


def test_text_model_in_a_container(text_service) -> None:  # type: ignore[no-untyped-def]
    service, model = text_service
    _check_onnx_image(service)
    assert set(model.classes_) == {"mixed", "negative", "positive"}

    texts = _texts(14, 2) + ["Great fun, GOOD ending!", "awful   plot\tand boring actor", "", "café scène"]
    want = model.predict(texts).tolist()
    status, answer = post_json(f"{service.url}/predict", {"inputs": texts})
    assert status == 200 and answer["outputs"]["label"] == want, answer
    probabilities = np.asarray(answer["outputs"]["probabilities"])
    np.testing.assert_allclose(probabilities, model.predict_proba(texts), atol=1e-5)
    assert service.predict(texts).tolist() == want

    v2 = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": texts}]}
    status, answer = post_json(f"{service.url}/v2/models/matrix-text/infer", v2)
    assert status == 200, answer
    label = v2_output(answer, "label")
    assert label["datatype"] == "BYTES" and label["shape"] == [len(texts)] and label["data"] == want

    # a column of texts ([N, 1], what df[["review"]].values.tolist() gives) is the same list
    status, answer = post_json(f"{service.url}/predict", {"inputs": [[t] for t in texts]})
    assert status == 200 and answer["outputs"]["label"] == want, answer
    status, answer = post_json(f"{service.url}/predict", {"inputs": [1.5, 2.5]})
    assert status == 422 and "expected strings" in answer["error"], answer
    status, answer = post_json(f"{service.url}/predict", {"inputs": "Great fun"})
    assert status == 422 and "not one string" in answer["error"] and '["a text"' in answer["hint"], answer


# -- gradient boosting on a DataFrame: [N] like model.predict, labels as trained --

@pytest.fixture(scope="module")
def numbers() -> "pd.DataFrame":
    rng = np.random.default_rng(21)
    return pd.DataFrame({
        "rooms": rng.integers(1, 7, N),
        "area": rng.normal(80, 25, N).round(1),
        "age": rng.integers(0, 90, N).astype("int32"),
        "garden": rng.random(N) > 0.6,
    })


def _price(frame: "pd.DataFrame") -> "pd.Series":
    return 900 * frame["area"] + 5_000 * frame["rooms"] - 300 * frame["age"] + 20_000 * frame["garden"]


@pytest.fixture(scope="module")
def xgboost_service(container_settings: Settings, numbers):  # type: ignore[no-untyped-def]
    xgboost = pytest.importorskip("xgboost")
    pytest.importorskip("onnxmltools")
    model = xgboost.XGBRegressor(n_estimators=30, max_depth=4, n_jobs=1, random_state=0).fit(numbers, _price(numbers))
    service = serve_and_report("matrix", model, numbers, "matrix-xgb", container_settings)
    yield service, model
    service.stop()


def test_xgboost_regressor_on_a_dataframe_in_a_container(xgboost_service, numbers) -> None:  # type: ignore[no-untyped-def]
    service, model = xgboost_service
    _check_onnx_image(service)
    assert service.bundle.table is not None and service.bundle.table.names == list(numbers.columns)

    rows = numbers[30:47]
    want = model.predict(rows)
    got = service.predict(rows)
    assert np.shape(got) == want.shape == (len(rows),)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    status, answer = post_json(f"{service.url}/predict", {"inputs": json_records(rows)})
    assert status == 200, answer
    prediction = np.asarray(answer["outputs"]["prediction"])
    assert prediction.shape == (len(rows),)
    np.testing.assert_allclose(prediction, want, rtol=1e-5)
    status, answer = post_json(f"{service.url}/predict", {"inputs": {c: rows[c].tolist() for c in rows.columns}})
    assert status == 200 and np.asarray(answer["outputs"]["prediction"]).shape == (len(rows),), answer
    types = {"rooms": "INT64", "area": "FP64", "age": "INT32", "garden": "BOOL"}
    v2 = {"inputs": [{"name": c, "datatype": t, "shape": [len(rows)], "data": rows[c].tolist()} for c, t in types.items()]}
    status, answer = post_json(f"{service.url}/v2/models/matrix-xgb/infer", v2)
    assert status == 200, answer
    out = v2_output(answer, "prediction")
    assert out["shape"] == [len(rows)]
    np.testing.assert_allclose(out["data"], want, rtol=1e-5)

    one = json_records(rows[:1])[0]
    status, answer = post_json(f"{service.url}/predict", {"inputs": [{**one, "colour": "red"}]})
    assert status == 422 and "colour" in answer["error"], answer


@pytest.fixture(scope="module")
def lightgbm_service(container_settings: Settings, numbers):  # type: ignore[no-untyped-def]
    lightgbm = pytest.importorskip("lightgbm")
    pytest.importorskip("onnxmltools")
    price = _price(numbers)
    labels = np.where(price > price.quantile(0.66), "dear", np.where(price > price.quantile(0.33), "fair", "cheap"))
    model = lightgbm.LGBMClassifier(n_estimators=25, min_child_samples=5, verbose=-1, n_jobs=1).fit(numbers, labels)
    service = serve_and_report("matrix", model, numbers, "matrix-lgbm", container_settings)
    yield service, model
    service.stop()


def test_lightgbm_classifier_answers_its_string_labels_in_a_container(lightgbm_service, numbers) -> None:  # type: ignore[no-untyped-def]
    service, model = lightgbm_service
    _check_onnx_image(service)
    assert list(model.classes_) == ["cheap", "dear", "fair"]

    rows = numbers[60:85]
    want = model.predict(rows).tolist()
    assert service.predict(rows).tolist() == want
    status, answer = post_json(f"{service.url}/predict", {"inputs": json_records(rows)})
    assert status == 200 and answer["outputs"]["label"] == want, answer
    np.testing.assert_allclose(answer["outputs"]["probabilities"], model.predict_proba(rows), atol=1e-5)
    # a list of rows in column order
    status, answer = post_json(f"{service.url}/predict", {"inputs": [list(r.values()) for r in json_records(rows)]})
    assert status == 200 and answer["outputs"]["label"] == want, answer
    one = json_records(rows[:1])[0]
    status, answer = post_json(f"{service.url}/predict", {"inputs": [{**one, "garden": "maybe"}]})
    assert status == 422 and "column 'garden'" in answer["error"], answer


# -- torch: a sequence model whose length axis was freed at capture --

@pytest.fixture(scope="module")
def sequence_service(container_settings: Settings):  # type: ignore[no-untyped-def]
    torch = pytest.importorskip("torch")
    from tests.integration.bundle.torch_models import Tokens, tokens

    torch.manual_seed(0)
    model = Tokens().eval()
    sample = tokens(6, 12, 0)
    service = serve_and_report("matrix", model, sample, "matrix-seq", container_settings, memory="1g",
                               dynamic_axes={"input": [1]})
    yield service, model
    service.stop()


@pytest.mark.torch
def test_sequence_model_at_other_lengths_in_a_container(sequence_service) -> None:  # type: ignore[no-untyped-def]
    import torch

    service, model = sequence_service
    _check_onnx_image(service)
    assert service.bundle.inputs[0].shape == (None, None)
    rng = np.random.default_rng(3)
    for length in (3, 20, 57):
        tokens = rng.integers(0, 50, (4, length))
        want = model(torch.from_numpy(tokens)).detach().numpy()
        status, answer = post_json(f"{service.url}/predict", {"inputs": tokens.tolist()})
        assert status == 200, (length, answer)
        np.testing.assert_allclose(np.asarray(answer["outputs"]["output"]), want, atol=1e-5)
        v2 = {"inputs": [{"name": "input", "datatype": "INT64", "shape": [4, length], "data": tokens.ravel().tolist()}]}
        status, answer = post_json(f"{service.url}/v2/models/matrix-seq/infer", v2)
        assert status == 200, (length, answer)
        out = v2_output(answer, "output")
        assert out["shape"] == [4, 3]
        np.testing.assert_allclose(np.asarray(out["data"]).reshape(4, 3), want, atol=1e-5)
    tokens = rng.integers(0, 50, (2, 33))
    np.testing.assert_allclose(service.predict(tokens), model(torch.from_numpy(tokens)).detach().numpy(), atol=1e-5)


@pytest.fixture(scope="module")
def fixed_service(container_settings: Settings):  # type: ignore[no-untyped-def]
    torch = pytest.importorskip("torch")
    from tests.integration.bundle.torch_models import Recurrent, series

    torch.manual_seed(0)
    model = Recurrent().eval()
    service = serve_and_report("matrix", model, series(5, 10, 0), "matrix-gru", container_settings, memory="1g")
    yield service, model
    service.stop()


@pytest.mark.torch
def test_without_dynamic_axes_the_container_names_the_fixed_axis(fixed_service) -> None:  # type: ignore[no-untyped-def]
    import torch

    from tests.integration.bundle.torch_models import series

    service, model = fixed_service
    _check_onnx_image(service)
    assert service.bundle.inputs[0].shape == (None, 10, 2) and service.bundle.outputs[0].shape == (None,)
    same = series(3, 10, 1)
    status, answer = post_json(f"{service.url}/predict", {"inputs": same.tolist()})
    assert status == 200, answer
    np.testing.assert_allclose(answer["outputs"]["output"], model(torch.from_numpy(same)).detach().numpy(), atol=1e-5)
    status, answer = post_json(f"{service.url}/predict", {"inputs": series(3, 25, 1).tolist()})
    assert status == 422 and "expected shape [N, 10, 2], got [3, 25, 2]" in answer["error"], answer
    assert "axis 1 of 'input' is fixed at 10" in answer["hint"] and "dynamic_axes={'input': [1]}" in answer["hint"], answer
    v2 = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 7, 2], "data": series(1, 7, 2).ravel().tolist()}]}
    status, answer = post_json(f"{service.url}/v2/models/matrix-gru/infer", v2)
    assert status == 422 and "axis 1 of 'input' is fixed at 10" in answer.get("hint", "") + answer["error"], answer
