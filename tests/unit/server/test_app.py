"""Every endpoint and error rule of the server, in-process (TestClient over real bundles)."""

from __future__ import annotations

import json
import logging
import shutil
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlpack.bundle import Bundle
from mlpack.server import ServerConfig, create_app


@contextmanager
def serving(bundle: Path, **config: object) -> Iterator[TestClient]:
    app = create_app(bundle, ServerConfig(bundle=str(bundle), access_log=False, **config))
    with TestClient(app, raise_server_exceptions=False) as client:
        assert app.state.loaded.wait(60)
        yield client


@pytest.fixture(scope="module")
def iris(iris_bundle: Path) -> Iterator[TestClient]:
    with serving(iris_bundle) as client:
        yield client


def _expected(bundle: Path, feeds: dict) -> dict:
    return Bundle.load(bundle).load_predictor(threads=1).run(feeds)


def _error(response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    return body


def test_predict_equals_the_bundle_predictor(iris: TestClient, iris_bundle: Path) -> None:
    x = Bundle.load(iris_bundle).sample()["input"]
    response = iris.post("/predict", json={"inputs": x.tolist()})
    assert response.status_code == 200, response.text
    got = response.json()["outputs"]
    want = _expected(iris_bundle, {"input": x})
    assert got["label"] == want["label"].tolist()
    np.testing.assert_allclose(got["probabilities"], want["probabilities"], rtol=1e-6)
    # mapping form and output selection
    response = iris.post("/predict", json={"inputs": {"input": x[:1].tolist()}, "parameters": {"outputs": ["label"]}})
    assert response.json() == {"outputs": {"label": want["label"][:1].tolist()}}


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"inputs": [[1, 2, 3]]}, "input 'input': expected shape [N, 4], got [1, 3]"),
        ({"inputs": [["a", 1, 2, 3]]}, "input 'input': expected float32 numbers, got strings"),
        ({"inputs": {"pixels": [[1, 2, 3, 4]]}}, "missing input 'input'"),
        ({"inputs": {"input": [[1, 2, 3, 4]], "extra": [1]}}, "unknown input 'extra'"),
        ({"inputs": [[1, 2, None, 4]]}, "input 'input'"),
        ({"rows": [[1, 2, 3, 4]]}, '"inputs"'),
    ],
)
def test_predict_422_names_input_expected_and_got(iris: TestClient, body: dict, words: str) -> None:
    assert words in _error(iris.post("/predict", json=body), 422)["error"]


def test_invalid_json_is_422(iris: TestClient) -> None:
    _error(iris.post("/predict", content=b"{not json", headers={"content-type": "application/json"}), 422)


def test_body_limit_413_with_and_without_content_length(iris_bundle: Path) -> None:
    with serving(iris_bundle, max_body_bytes=4096) as client:
        big = b'{"inputs": [' + b",".join([b"[1,2,3,4]"] * 1000) + b"]}"
        body = _error(client.post("/predict", content=big), 413)
        assert "4096" in body["error"] and body["hint"]

        def chunks() -> Iterator[bytes]:
            for i in range(0, len(big), 1000):
                yield big[i : i + 1000]

        _error(client.post("/predict", content=chunks()), 413)
        assert client.post("/predict", json={"inputs": [[1, 2, 3, 4]]}).status_code == 200


def test_before_the_model_is_loaded_readiness_and_inference_are_503(iris_bundle: Path) -> None:
    app = create_app(iris_bundle, ServerConfig(access_log=False))
    client = TestClient(app)  # no context manager: the lifespan (and loading) never starts
    assert client.get("/v2/health/live").status_code == 200
    assert "loading" in _error(client.get("/v2/health/ready"), 503)["error"]
    assert client.get("/v2/health/ready").headers["retry-after"] == "1"
    _error(client.post("/predict", json={"inputs": [[1, 2, 3, 4]]}), 503)
    _error(client.post("/v2/models/iris/infer", json={"inputs": []}), 503)
    _error(client.get("/v2/models/iris/ready"), 503)


def test_a_tampered_bundle_never_becomes_ready(iris_bundle: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(iris_bundle, bad)
    with (bad / "model.onnx").open("ab") as f:
        f.write(b"\0")
    with serving(bad) as client:
        body = _error(client.get("/v2/health/ready"), 503)
        assert "failed to load" in body["error"]
        _error(client.post("/predict", json={"inputs": [[1, 2, 3, 4]]}), 503)
        assert client.get("/v2/health/live").status_code == 200


def test_model_failure_is_500_with_a_request_id_in_the_log(lookup_bundle: Path, caplog: pytest.LogCaptureFixture) -> None:
    with serving(lookup_bundle) as client, caplog.at_level(logging.ERROR, logger="mlpack"):
        assert client.post("/predict", json={"inputs": {"idx": [0, 4]}}).json() == {"outputs": {"value": [0.0, 40.0]}}
        response = client.post("/predict", json={"inputs": {"idx": [1, 7]}}, headers={"x-request-id": "abc-123"})
        body = _error(response, 500)
        assert body["request_id"] == "abc-123"
        assert "Gather" not in body["error"] and "onnxruntime" not in body["error"]
        assert any(getattr(r, "request_id", None) == "abc-123" for r in caplog.records)
        # the worker survived
        assert client.post("/predict", json={"inputs": {"idx": [2]}}).status_code == 200


def test_request_id_is_echoed_or_made(iris: TestClient) -> None:
    assert iris.get("/v2/health/live", headers={"x-request-id": "req.42"}).headers["x-request-id"] == "req.42"
    made = iris.get("/v2/health/live", headers={"x-request-id": "bad id; x=1"}).headers["x-request-id"]
    assert made != "bad id" and len(made) == 16


def test_v2_health_and_metadata(iris: TestClient) -> None:
    assert iris.get("/v2/health/live").json() == {"live": True}
    assert iris.get("/v2/health/ready").json() == {"ready": True}
    assert iris.get("/v2/models/iris/ready").json() == {"name": "iris", "ready": True}
    assert iris.get("/v2").json()["extensions"] == ["binary_tensor_data", "model_configuration", "statistics", "model_repository"]
    meta = iris.get("/v2/models/iris").json()
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
    assert {o["name"]: o["datatype"] for o in meta["outputs"]} == {"label": "INT64", "probabilities": "FP32"}
    assert iris.get("/v2/models/iris/versions/1").json() == meta
    assert "unknown model 'other'" in _error(iris.get("/v2/models/other"), 404)["error"]
    _error(iris.get("/v2/models/iris/versions/7/ready"), 404)
    _error(iris.post("/v2/models/other/infer", json={"inputs": []}), 404)


def test_v2_infer_json(iris: TestClient, iris_bundle: Path) -> None:
    x = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], np.float32)
    request = {"id": "q1", "inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "data": x.ravel().tolist()}]}
    doc = iris.post("/v2/models/iris/infer", json=request).json()
    assert doc["model_name"] == "iris" and doc["id"] == "q1"
    out = {o["name"]: o for o in doc["outputs"]}
    want = _expected(iris_bundle, {"input": x})
    assert out["probabilities"]["shape"] == [2, 3] and out["probabilities"]["datatype"] == "FP32"
    np.testing.assert_allclose(np.reshape(out["probabilities"]["data"], (2, 3)), want["probabilities"], rtol=1e-6)
    assert out["label"]["data"] == want["label"].tolist()
    bad = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "INT64", "data": [1, 2, 3, 4]}]}
    assert "expected datatype FP32" in _error(iris.post("/v2/models/iris/versions/1/infer", json=bad), 422)["error"]


def test_metrics_count_requests_latency_batches_and_in_flight(iris_bundle: Path) -> None:
    with serving(iris_bundle) as client:
        client.post("/predict", json={"inputs": [[1, 2, 3, 4]]})
        client.post("/predict", json={"inputs": [[1, 2, 3]]})
        text = client.get("/metrics").text
    assert 'mlpack_requests_total{endpoint="/predict",method="POST",status="200"} 1' in text
    assert 'mlpack_requests_total{endpoint="/predict",method="POST",status="422"} 1' in text
    assert 'mlpack_request_duration_seconds_count{endpoint="/predict",status="200"} 1' in text
    assert "mlpack_requests_in_flight 1" in text  # the scrape itself
    assert "mlpack_inference_duration_seconds_count 1" in text
    assert 'mlpack_batch_size_bucket{le="1"} 1' in text
    assert "mlpack_model_ready 1" in text


def test_openapi_describes_the_real_model_with_the_sample(iris: TestClient, iris_bundle: Path) -> None:
    doc = iris.get("/openapi.json").json()
    body = doc["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    rows = body["schema"]["properties"]["inputs"]["anyOf"][0]
    assert rows["items"]["minItems"] == rows["items"]["maxItems"] == 4
    assert rows["items"]["items"]["type"] == "number"
    sample = Bundle.load(iris_bundle).sample()["input"][:2]
    np.testing.assert_allclose(body["example"]["inputs"], sample, rtol=1e-6)
    outputs = doc["paths"]["/predict"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert set(outputs["properties"]["outputs"]["properties"]) == {"label", "probabilities"}
    assert {"413", "422", "500", "503"} <= set(doc["paths"]["/predict"]["post"]["responses"])
    assert "/v2/models/{model_name}/infer" in doc["paths"]
    docs = iris.get("/docs")
    assert docs.status_code == 200 and "/openapi.json" in docs.text


def test_hooks_run_before_and_after_the_model(iris_hooks_bundle: Path) -> None:
    with serving(iris_hooks_bundle) as client:
        out = client.post("/predict", json={"inputs": [[5.1, 3.5, 1.4, 0.2]]}).json()["outputs"]
        assert out["species"] == ["setosa"] and out["label"] == [0]
        body = _error(client.post("/predict", json={"inputs": [[-1, 3.5, 1.4, 0.2]]}), 422)
        assert "non-negative" in body["error"]
        v2 = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [6.7, 3.0, 5.2, 2.3]}]}
        species = {o["name"]: o for o in client.post("/v2/models/iris/infer", json=v2).json()["outputs"]}["species"]
        assert species == {"name": "species", "datatype": "BYTES", "shape": [1], "data": ["virginica"]}


def test_python_flavour_serves_through_the_same_endpoints(iris_python_bundle: Path, iris_bundle: Path) -> None:
    x = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
    with serving(iris_python_bundle) as client:
        assert client.get("/v2/models/iris").json()["platform"] == "mlpack_python"
        got = client.post("/predict", json={"inputs": x}).json()["outputs"]
    want = _expected(iris_bundle, {"input": np.array(x, np.float32)})
    assert got["label"] == want["label"].tolist()


def test_two_input_model_mapping_records_and_v2(two_inputs_bundle: Path) -> None:
    with serving(two_inputs_bundle) as client:
        r = client.post("/predict", json={"inputs": {"a": [[1, 2, 3], [0, 0, 1]], "b": [[10], [20]]}})
        assert r.json() == {"outputs": {"y": [[16.0], [21.0]]}}
        r = client.post("/predict", json={"inputs": [{"a": [1, 2, 3], "b": [1]}]})
        assert r.json() == {"outputs": {"y": [[7.0]]}}
        assert "input 'b'" in _error(client.post("/predict", json={"inputs": {"a": [[1, 2, 3]], "b": [[1.5]]}}), 422)["error"]
        assert "missing input 'b'" in _error(client.post("/predict", json={"inputs": {"a": [[1, 2, 3]]}}), 422)["error"]
        v2 = {
            "inputs": [
                {"name": "a", "shape": [1, 3], "datatype": "FP32", "data": [1, 1, 1]},
                {"name": "b", "shape": [1, 1], "datatype": "INT64", "data": [4]},
            ]
        }
        out = client.post("/v2/models/two-inputs/infer", json=v2).json()["outputs"][0]
        assert out["data"] == [7.0] and out["shape"] == [1, 1]


def test_fixed_batch_model_is_not_batched(fixed_bundle: Path) -> None:
    app = create_app(fixed_bundle, ServerConfig(access_log=False))
    with TestClient(app) as client:
        assert app.state.loaded.wait(60)
        assert app.state.mlpack.runner.batcher is None
        assert client.post("/predict", json={"inputs": [[-1, 0.5, 2]]}).json() == {"outputs": {"y": [[0.0, 0.5, 2.0]]}}
        assert "expected shape [1, 3], got [2, 3]" in _error(
            client.post("/predict", json={"inputs": [[1, 2, 3], [4, 5, 6]]}), 422
        )["error"]


def test_concurrent_requests_get_their_own_answers(iris_bundle: Path) -> None:
    x = Bundle.load(iris_bundle).sample()["input"]
    want = _expected(iris_bundle, {"input": x})["label"].tolist()
    with serving(iris_bundle, max_batch_size=4, max_batch_wait_ms=2) as client:

        def one(i: int) -> int:
            return client.post("/predict", json={"inputs": [x[i % len(x)].tolist()]}).json()["outputs"]["label"][0]

        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(one, range(48)))
        text = client.get("/metrics").text
    assert got == [want[i % len(x)] for i in range(48)]
    assert "mlpack_batch_size_sum 48" in text


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    body=st.one_of(
        st.binary(max_size=200),
        st.recursive(
            st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=5),
            lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.sampled_from(["inputs", "parameters", "input", "outputs"]), inner, max_size=3),
            max_leaves=20,
        ).map(lambda v: json.dumps(v).encode()),
    )
)
def test_nothing_a_client_sends_is_a_server_error(iris: TestClient, body: bytes) -> None:
    for path in ("/predict", "/v2/models/iris/infer"):
        response = iris.post(path, content=body, headers={"content-type": "application/json"})
        assert response.status_code in {200, 413, 422}, (path, body, response.text)
