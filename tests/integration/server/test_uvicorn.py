"""The server as a real uvicorn process on 127.0.0.1: HTTP, Triton's client, logs, SIGTERM."""

from __future__ import annotations

import http.client
import json
import re
import shutil
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from mlpack.bundle import Bundle
from mlpack.endpoint import wait_ready
from tests.integration.server.serving import READY_TIMEOUT_S, Served, get, post, serving, start, stop


@pytest.fixture(scope="module")
def iris_server(iris_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    log = tmp_path_factory.mktemp("iris-server") / "server.log"
    with serving(iris_bundle, log) as served:
        yield served


def test_predict_v2_metrics_and_openapi_over_http(iris_server: Served, iris_bundle: Path) -> None:
    x = Bundle.load(iris_bundle).sample()["input"][:3]
    want = Bundle.load(iris_bundle).load_predictor(threads=1).run({"input": x})
    status, body, headers = post(iris_server.url + "/predict", json.dumps({"inputs": x.tolist()}).encode())
    assert status == 200
    assert json.loads(body)["outputs"]["label"] == want["label"].tolist()
    status, body, _ = post(iris_server.url + "/predict", b'{"inputs": [[1, 2]]}')
    assert status == 422 and "expected shape [N, 4], got [1, 2]" in json.loads(body)["error"]
    status, body = get(iris_server.url + "/v2/models/iris")
    assert status == 200 and json.loads(body)["inputs"][0]["shape"] == [-1, 4]
    status, body = get(iris_server.url + "/metrics")
    assert status == 200
    assert re.search(rb'mlpack_requests_total\{endpoint="/predict",method="POST",status="200"\} [1-9]', body)
    status, body = get(iris_server.url + "/openapi.json")
    assert status == 200 and "/v2/models/{model_name}/infer" in json.loads(body)["paths"]


def test_access_log_is_json_with_the_request_id(iris_server: Served) -> None:
    status, _, headers = post(iris_server.url + "/predict", b'{"inputs": [[1, 2, 3, 4]]}', headers={"x-request-id": "log-me-1"})
    assert status == 200 and headers["x-request-id"] == "log-me-1"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        hits = [r for r in iris_server.lines() if r.get("request_id") == "log-me-1"]
        if hits:
            break
        time.sleep(0.05)
    assert hits, iris_server.log.read_text()[-2000:]
    line = hits[0]
    assert line["logger"] == "mlpack.access" and line["status"] == 200 and line["path"] == "/predict"
    assert isinstance(line["ms"], float)


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_infer_equals_onnxruntime_in_process(iris_server: Served, iris_bundle: Path, binary: bool) -> None:
    import tritonclient.http as triton

    x = Bundle.load(iris_bundle).sample()["input"]
    want = Bundle.load(iris_bundle).load_predictor().run({"input": x})
    client = triton.InferenceServerClient(url=f"127.0.0.1:{iris_server.port}")
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("iris")
        meta = client.get_model_metadata("iris")
        assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
        tensor = triton.InferInput("input", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=binary)
        outputs = [triton.InferRequestedOutput(n, binary_data=binary) for n in ("label", "probabilities")]
        result = client.infer("iris", [tensor], outputs=outputs, request_id="t1")
        np.testing.assert_array_equal(result.as_numpy("label"), want["label"])
        np.testing.assert_array_equal(result.as_numpy("probabilities"), want["probabilities"])
        # no outputs named: the client asks for every output in binary
        result = client.infer("iris", [tensor], model_version="1")
        np.testing.assert_array_equal(result.as_numpy("probabilities"), want["probabilities"])
        bad = triton.InferInput("input", [1, 3], "FP32")
        bad.set_data_from_numpy(np.zeros((1, 3), np.float32), binary_data=binary)
        with pytest.raises(triton.InferenceServerException, match="expected shape"):
            client.infer("iris", [bad])
    finally:
        client.close()


def test_concurrent_requests_are_micro_batched(iris_server: Served) -> None:
    def worker(_: int) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", iris_server.port, timeout=10)
        ok = 0
        for _ in range(25):
            conn.request("POST", "/predict", body=b'{"inputs": [[5.1, 3.5, 1.4, 0.2]]}', headers={"content-type": "application/json"})
            response = conn.getresponse()
            ok += response.status == 200 and json.loads(response.read())["outputs"]["label"] == [0]
        conn.close()
        return ok

    _, before = get(iris_server.url + "/metrics")
    with ThreadPoolExecutor(16) as pool:
        assert sum(pool.map(worker, range(16))) == 400
    _, after = get(iris_server.url + "/metrics")

    def stat(text: bytes, name: str) -> float:
        return float(re.search(rb"^" + name.encode() + rb" (\S+)$", text, re.M).group(1))

    runs = stat(after, "mlpack_batch_requests_count") - stat(before, "mlpack_batch_requests_count")
    requests = stat(after, "mlpack_batch_requests_sum") - stat(before, "mlpack_batch_requests_sum")
    assert requests == 400
    assert runs < requests, "16 concurrent clients never shared a model run"


def test_sigterm_finishes_the_request_in_flight(iris_bundle: Path, tmp_path: Path) -> None:
    served = start(iris_bundle, tmp_path / "server.log", "--graceful-timeout-s", "10")
    try:
        wait_ready(served, timeout=READY_TIMEOUT_S)
        body = b'{"inputs": [[5.1, 3.5, 1.4, 0.2]]}'
        sock = socket.create_connection(("127.0.0.1", served.port), timeout=10)
        head = f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        sock.sendall(head.encode() + body[:10])
        # In flight once the server counts it (the gauge also counts the /metrics request itself).
        deadline = time.monotonic() + 30  # a bound on an event, not a wait
        while not re.search(rb"^mlpack_requests_in_flight 2", get(served.url + "/metrics")[1], re.M):
            assert time.monotonic() < deadline, "the partial request never reached the server"
            time.sleep(0.01)
        served.proc.send_signal(signal.SIGTERM)
        # Shutdown has started when the listener is gone: no new connections from then on.
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", served.port), timeout=2).close()
            except OSError:
                break
            assert time.monotonic() < deadline, "the server still accepts connections after SIGTERM"
            time.sleep(0.01)
        assert served.proc.poll() is None, "exited with a request in flight"
        sock.sendall(body[10:])
        response = b""
        while b"\r\n\r\n" not in response or not response.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            response += chunk
        sock.close()
        assert response.startswith(b"HTTP/1.1 200"), response
        assert b'"label":[0]' in response
        assert served.proc.wait(15) == 0
    finally:
        stop(served)


def test_a_bundle_that_fails_to_load_stops_the_server(iris_bundle: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(iris_bundle, bad)
    (bad / "model.onnx").write_bytes(b"not a model")
    served = start(bad, tmp_path / "server.log")
    try:
        assert served.proc.wait(60) == 1
        errors = [r for r in served.lines() if r.get("msg") == "model failed to load"]
        assert errors and errors[0]["level"] == "error"
    finally:
        stop(served)


def test_configuration_from_environment_variables(iris_bundle: Path, tmp_path: Path) -> None:
    served = start(
        iris_bundle,
        tmp_path / "server.log",
        env={"MLPACK_ACCESS_LOG": "0", "MLPACK_BATCHING": "0", "MLPACK_THREADS": "1"},
        via_env=True,
    )
    try:
        wait_ready(served, timeout=READY_TIMEOUT_S)
        assert post(served.url + "/predict", b'{"inputs": [[1, 2, 3, 4]]}')[0] == 200
        lines = served.lines()
        assert not [r for r in lines if r.get("logger") == "mlpack.access"]
        ready = [r for r in lines if r.get("msg") == "model ready"][0]
        assert ready["batching"] is False and ready["threads"] == 1
    finally:
        stop(served)


def test_two_workers_serve_the_same_model(iris_bundle: Path, tmp_path: Path) -> None:
    served = start(iris_bundle, tmp_path / "server.log", "--workers", "2", "--no-access-log")
    try:
        wait_ready(served, timeout=READY_TIMEOUT_S)
        # Each worker loads the model itself and answers 503 until it has: wait for both.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            pids = {r.get("pid") for r in served.lines() if r.get("msg") == "model ready"}
            if len(pids) == 2:
                break
            time.sleep(0.2)
        assert len(pids) == 2, served.log.read_text()[-2000:]
        for _ in range(10):
            status, body, _ = post(served.url + "/predict", b'{"inputs": [[5.1, 3.5, 1.4, 0.2]]}')
            assert status == 200 and json.loads(body)["outputs"]["label"] == [0]
    finally:
        assert stop(served) in (0, -15)
