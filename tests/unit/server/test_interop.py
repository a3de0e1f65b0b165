"""The interoperability rules: any one input name, protocol errors everywhere under /v2,
Triton's config/statistics/index, compressed bodies, OpenMetrics."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mlpack.bundle import Bundle
from tests.unit.server.test_app import serving


@pytest.fixture(scope="module")
def iris(iris_bundle: Path):  # type: ignore[no-untyped-def]
    with serving(iris_bundle, max_body_bytes=64 * 1024) as client:
        yield client


def _infer_doc(name: str, x: np.ndarray) -> dict:
    return {"inputs": [{"name": name, "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}


@pytest.mark.parametrize("name", ["input-0", "input-1", "anything"])
def test_single_input_model_takes_any_one_name(iris: TestClient, iris_bundle: Path, name: str) -> None:
    x = Bundle.load(iris_bundle).sample()["input"][:2]
    want = Bundle.load(iris_bundle).load_predictor(threads=1).run({"input": x})
    response = iris.post("/v2/models/iris/infer", json=_infer_doc(name, x))
    assert response.status_code == 200, response.text
    assert {o["name"]: o["data"] for o in response.json()["outputs"]}["label"] == want["label"].tolist()
    assert iris.get("/v2/models/iris").json()["parameters"] == {"any_input_name": True}


def test_two_input_models_still_need_their_names(two_inputs_bundle: Path) -> None:
    with serving(two_inputs_bundle) as client:
        doc = {
            "inputs": [
                {"name": "input-0", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]},
                {"name": "b", "shape": [1, 1], "datatype": "INT64", "data": [1]},
            ]
        }
        response = client.post("/v2/models/two-inputs/infer", json=doc)
        assert response.status_code == 422 and "unknown input 'input-0'" in response.json()["error"]
        assert "parameters" not in client.get("/v2/models/two-inputs").json()


def test_unknown_routes_and_methods_under_v2_answer_the_protocol_error(iris: TestClient) -> None:
    for method, path, status in [
        ("GET", "/v2/models/iris/trace/setting", 404),
        ("POST", "/v2/systemsharedmemory/status", 404),
        ("GET", "/v2/models/iris/infer", 405),
        ("DELETE", "/v2/health/ready", 405),
    ]:
        response = iris.request(method, path)
        assert response.status_code == status, (method, path, response.text)
        body = response.json()
        assert set(body) >= {"error", "request_id"} and "detail" not in body, body


def test_config_statistics_and_repository_index(iris: TestClient) -> None:
    config = iris.get("/v2/models/iris/config").json()
    assert config["input"] == [{"name": "input", "data_type": "TYPE_FP32", "dims": [-1, 4]}]
    assert iris.get("/v2/models/iris/versions/1/config").json() == config
    assert iris.get("/v2/models/nope/config").status_code == 404
    before = iris.get("/v2/models/iris/stats").json()["model_stats"][0]
    assert iris.post("/predict", json={"inputs": [[1, 2, 3, 4], [1, 2, 3, 4]]}).status_code == 200
    assert iris.post("/predict", json={"inputs": [[1, 2]]}).status_code == 422
    after = iris.get("/v2/models/stats").json()["model_stats"][0]
    assert after["inference_count"] == before["inference_count"] + 2
    assert after["inference_stats"]["success"]["count"] == before["inference_stats"]["success"]["count"] + 1
    assert after["inference_stats"]["fail"]["count"] == before["inference_stats"]["fail"]["count"] + 1
    assert iris.post("/v2/repository/index", json={}).json() == [{"name": "iris", "version": "1", "state": "READY"}]
    assert iris.post("/v2/repository/index", content=b"[1]").status_code == 422


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_compressed_bodies_are_accepted(iris: TestClient, coding: str) -> None:
    body = b'{"inputs": [[5.1, 3.5, 1.4, 0.2]]}'
    packed = gzip.compress(body) if coding == "gzip" else zlib.compress(body)
    response = iris.post("/predict", content=packed, headers={"content-type": "application/json", "content-encoding": coding})
    assert response.status_code == 200 and response.json()["outputs"]["label"] == [0]


def test_a_zip_bomb_is_413_on_its_decoded_size(iris: TestClient) -> None:
    bomb = gzip.compress(b" " * (50 * 1024 * 1024))  # 50 MB of spaces, about 50 kB packed
    assert len(bomb) < 64 * 1024
    response = iris.post("/predict", content=bomb, headers={"content-encoding": "gzip"})
    assert response.status_code == 413 and "once decompressed" in response.json()["error"]
    response = iris.post("/predict", content=b"not gzip", headers={"content-encoding": "gzip"})
    assert response.status_code == 422 and "does not decompress" in response.json()["error"]
    truncated = gzip.compress(b'{"inputs": [[1, 2, 3, 4]]}')[:-6]
    assert iris.post("/predict", content=truncated, headers={"content-encoding": "gzip"}).status_code == 422
    assert iris.post("/predict", content=b"{}", headers={"content-encoding": "br"}).status_code == 415


def test_metrics_negotiate_openmetrics(iris: TestClient) -> None:
    plain = iris.get("/metrics")
    assert plain.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "# TYPE mlpack_requests_total counter" in plain.text and "# EOF" not in plain.text
    om = iris.get("/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"})
    assert om.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    assert "# TYPE mlpack_requests counter" in om.text and om.text.endswith("# EOF\n")
    parser = pytest.importorskip("prometheus_client.openmetrics.parser", reason="prometheus_client parses OpenMetrics")
    families = {f.name: f for f in parser.text_string_to_metric_families(om.text)}
    assert families["mlpack_requests"].type == "counter"
    assert families["mlpack_request_duration_seconds"].type == "histogram"


def test_openapi_lists_every_route_and_the_binary_content_type(iris: TestClient) -> None:
    doc = iris.get("/openapi.json").json()
    paths = doc["paths"]
    served = {
        "/v2", "/v2/models/stats", "/v2/repository/index",
        "/v2/models/{model_name}/versions/{model_version}", "/v2/models/{model_name}/versions/{model_version}/infer",
        "/v2/models/{model_name}/versions/{model_version}/ready", "/v2/models/{model_name}/config",
        "/v2/models/{model_name}/versions/{model_version}/stats",
    }  # fmt: skip
    assert served <= set(paths)
    infer = paths["/v2/models/{model_name}/infer"]["post"]
    assert infer["requestBody"]["content"]["application/octet-stream"]["schema"]["format"] == "binary"
    assert "application/octet-stream" in infer["responses"]["200"]["content"]
    assert "4-byte little-endian length" in infer["description"]
    versioned = paths["/v2/models/{model_name}/versions/{model_version}/infer"]["post"]
    assert [p["name"] for p in versioned["parameters"]] == ["model_name", "model_version"]
    name_schema = infer["requestBody"]["content"]["application/json"]["schema"]["properties"]["inputs"]["items"]["properties"]["name"]
    assert name_schema == {"type": "string"}  # the single-input rule
    # every documented route answers something other than the /v2 catch-all's 404
    for path in served:
        concrete = path.replace("{model_name}", "iris").replace("{model_version}", "1")
        method = next(iter(paths[path]))
        response = iris.request(method.upper(), concrete, json={"inputs": []} if method == "post" else None)
        assert "no route" not in response.text, (path, response.text)
