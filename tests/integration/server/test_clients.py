"""Other servers' clients, unchanged, against a real ``mlpack-serve`` process:
tritonclient (HTTP and gRPC, binary and JSON), kserve's clients; numeric and BYTES
tensors; the answers must equal onnxruntime's in-process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from mlpack.bundle import Bundle
from mlpack.endpoint import wait_ready
from tests.integration.server.serving import READY_TIMEOUT_S, Served, external_python, get, serving, start, stop
from tests.plugins.server import WORDS


@pytest.fixture(scope="module")
def words_server(words_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    log = tmp_path_factory.mktemp("words-server") / "server.log"
    with serving(words_bundle, log) as served:
        yield served


def _texts() -> np.ndarray:
    return np.array([*WORDS, "unknown", "a\x00b"], dtype=object)


def _want(bundle: Path, text: np.ndarray) -> dict[str, np.ndarray]:
    return Bundle.load(bundle).load_predictor(threads=1).run({"text": text})


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_http_sends_and_receives_bytes(words_server: Served, words_bundle: Path, binary: bool) -> None:
    import tritonclient.http as triton

    text = _texts()
    want = _want(words_bundle, text)
    assert want["label"].tolist() == [1, 2, 3, 4, 5, 0, 0]
    client = triton.InferenceServerClient(url=f"127.0.0.1:{words_server.port}")
    try:
        meta = client.get_model_metadata("words")
        assert meta["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
        tensor = triton.InferInput("text", [len(text)], "BYTES")
        tensor.set_data_from_numpy(text, binary_data=binary)
        outputs = [triton.InferRequestedOutput(n, binary_data=binary) for n in ("label", "echo")]
        result = client.infer("words", [tensor], outputs=outputs)
        np.testing.assert_array_equal(result.as_numpy("label"), want["label"])
        echo = result.as_numpy("echo")
        assert [v.decode() if isinstance(v, bytes) else v for v in echo] == want["echo"].tolist()
        if binary:  # the echo came back in the BYTES binary layout, not as JSON
            assert result.get_output("echo")["parameters"]["binary_data_size"] == sum(4 + len(w.encode()) for w in text)
        # no outputs named: the client asks for all of them binary
        result = client.infer("words", [tensor])
        assert [v.decode() for v in result.as_numpy("echo")] == want["echo"].tolist()
    finally:
        client.close()


def test_tritonclient_http_bad_bytes_are_4xx_with_the_reason(words_server: Served) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=f"127.0.0.1:{words_server.port}")
    try:
        tensor = triton.InferInput("text", [2], "BYTES")
        tensor.set_data_from_numpy(np.array([b"ok", b"\xff\xfe"], dtype=object))
        with pytest.raises(triton.InferenceServerException, match="is not UTF-8") as info:
            client.infer("words", [tensor])
        assert info.value.status() == "422"
        numbers = triton.InferInput("text", [2], "INT64")
        numbers.set_data_from_numpy(np.array([1, 2], dtype=np.int64))
        with pytest.raises(triton.InferenceServerException, match="expected datatype BYTES"):
            client.infer("words", [numbers])
    finally:
        client.close()


# -- gRPC ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def iris_server(iris_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    log = tmp_path_factory.mktemp("iris-grpc") / "server.log"
    with serving(iris_bundle, log, "--max-body-bytes", "65536") as served:
        yield served


def _grpc_client(served: Served):  # type: ignore[no-untyped-def]
    import tritonclient.grpc as tg

    return tg.InferenceServerClient(f"127.0.0.1:{served.grpc_port}")


def _status(info: pytest.ExceptionInfo) -> str:
    return str(info.value.status())


def test_tritonclient_grpc_health_metadata_config_statistics(iris_server: Served) -> None:
    client = _grpc_client(iris_server)
    try:
        assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("iris")
        assert client.get_server_metadata(as_json=True)["name"] == "mlpack"
        meta = client.get_model_metadata("iris", as_json=True)
        assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": ["-1", "4"]}]
        assert [o["name"] for o in meta["outputs"]] == ["label", "probabilities"]
        config = client.get_model_config("iris", as_json=True)["config"]
        assert config["input"] == [{"name": "input", "data_type": "TYPE_FP32", "dims": ["-1", "4"]}]
        assert client.get_model_repository_index(as_json=True)["models"] == [{"name": "iris", "version": "1", "state": "READY"}]
        before = client.get_inference_statistics("iris", as_json=True)["model_stats"][0]
        x = np.ones((3, 4), np.float32)
        import tritonclient.grpc as tg

        tensor = tg.InferInput("input", [3, 4], "FP32")
        tensor.set_data_from_numpy(x)
        client.infer("iris", [tensor])
        after = client.get_inference_statistics("iris", as_json=True)["model_stats"][0]
        assert int(after["inference_count"]) == int(before.get("inference_count", 0)) + 3
        assert int(after["inference_stats"]["success"]["count"]) == int(before["inference_stats"]["success"].get("count", 0)) + 1
        with pytest.raises(tg.InferenceServerException) as info:
            client.get_model_metadata("nope")
        assert _status(info) == "StatusCode.NOT_FOUND"
        with pytest.raises(tg.InferenceServerException) as info:
            client.is_model_ready("iris", model_version="2")
        assert _status(info) == "StatusCode.NOT_FOUND"
    finally:
        client.close()


def test_tritonclient_grpc_infer_equals_onnxruntime_in_process(iris_server: Served, iris_bundle: Path) -> None:
    import tritonclient.grpc as tg

    x = Bundle.load(iris_bundle).sample()["input"]
    want = Bundle.load(iris_bundle).load_predictor(threads=1).run({"input": x})
    client = _grpc_client(iris_server)
    try:
        tensor = tg.InferInput("input", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        result = client.infer("iris", [tensor], outputs=[tg.InferRequestedOutput("probabilities")], request_id="g1")
        np.testing.assert_array_equal(result.as_numpy("probabilities"), want["probabilities"])
        assert result.as_numpy("label") is None and result.get_response().id == "g1"
        result = client.infer("iris", [tensor], model_version="1")
        np.testing.assert_array_equal(result.as_numpy("label"), want["label"])
        # the single-input rule: KServe's and MLServer's names are accepted
        other = tg.InferInput("input-0", list(x.shape), "FP32")
        other.set_data_from_numpy(x)
        np.testing.assert_array_equal(client.infer("iris", [other]).as_numpy("label"), want["label"])
    finally:
        client.close()


def test_tritonclient_grpc_bytes_round_trip(words_server: Served, words_bundle: Path) -> None:
    import tritonclient.grpc as tg

    text = _texts()
    want = _want(words_bundle, text)
    client = _grpc_client(words_server)
    try:
        tensor = tg.InferInput("text", [len(text)], "BYTES")
        tensor.set_data_from_numpy(text)
        result = client.infer("words", [tensor])
        np.testing.assert_array_equal(result.as_numpy("label"), want["label"])
        assert [v.decode() for v in result.as_numpy("echo")] == want["echo"].tolist()
    finally:
        client.close()


def _triton_stub(served: Served):  # type: ignore[no-untyped-def]
    import grpc
    from tritonclient.grpc import service_pb2_grpc

    channel = grpc.insecure_channel(f"127.0.0.1:{served.grpc_port}")
    return channel, service_pb2_grpc.GRPCInferenceServiceStub(channel)


def test_typed_contents_in_and_out_with_triton_messages(iris_server: Served, iris_bundle: Path, words_server: Served) -> None:
    from tritonclient.grpc import service_pb2 as pb

    x = Bundle.load(iris_bundle).sample()["input"]
    want = Bundle.load(iris_bundle).load_predictor(threads=1).run({"input": x})
    channel, stub = _triton_stub(iris_server)
    try:
        request = pb.ModelInferRequest(model_name="iris")
        tensor = request.inputs.add(name="input", datatype="FP32", shape=list(x.shape))
        tensor.contents.fp32_contents.extend(x.ravel().tolist())
        response = stub.ModelInfer(request)
        assert not response.raw_output_contents  # typed in, typed out
        out = {o.name: o for o in response.outputs}
        assert list(out["label"].contents.int64_contents) == want["label"].tolist()
        np.testing.assert_array_equal(
            np.array(out["probabilities"].contents.fp32_contents, np.float32).reshape(out["probabilities"].shape),
            want["probabilities"],
        )
    finally:
        channel.close()
    channel, stub = _triton_stub(words_server)
    try:
        request = pb.ModelInferRequest(model_name="words")
        tensor = request.inputs.add(name="text", datatype="BYTES", shape=[2])
        tensor.contents.bytes_contents.extend(["dog".encode(), "日本語".encode()])
        response = stub.ModelInfer(request)
        out = {o.name: o for o in response.outputs}
        assert list(out["label"].contents.int64_contents) == [2, 4]
        assert [b.decode() for b in out["echo"].contents.bytes_contents] == ["dog", "日本語"]
    finally:
        channel.close()


def _bad_requests():  # type: ignore[no-untyped-def]
    from tritonclient.grpc import service_pb2 as pb

    def req(**kw):  # type: ignore[no-untyped-def]
        r = pb.ModelInferRequest(model_name=kw.pop("model", "iris"), model_version=kw.pop("version", ""))
        raw = kw.pop("raw", None)
        t = r.inputs.add(name=kw.pop("name", "input"), datatype=kw.pop("datatype", "FP32"), shape=kw.pop("shape", [1, 4]))
        if raw is not None:
            r.raw_input_contents.append(raw)
        else:
            t.contents.fp32_contents.extend(kw.pop("values", [1.0, 2.0, 3.0, 4.0]))
        return r

    four = np.ones(4, np.float32).tobytes()
    return [
        ("unknown model", req(model="nope"), "NOT_FOUND"),
        ("unknown version", req(version="7"), "NOT_FOUND"),
        ("wrong datatype", req(datatype="INT64"), "INVALID_ARGUMENT"),
        ("shape and data disagree", req(shape=[2, 4]), "INVALID_ARGUMENT"),
        ("wrong shape", req(shape=[4], values=[1.0] * 4), "INVALID_ARGUMENT"),
        ("negative shape", req(shape=[-1, -4]), "INVALID_ARGUMENT"),
        ("huge shape", req(shape=[2**32, 2**32]), "INVALID_ARGUMENT"),
        ("raw not a whole number of values", req(raw=four[:-1]), "INVALID_ARGUMENT"),
        ("raw for another shape", req(raw=four * 2), "INVALID_ARGUMENT"),
        ("two raw buffers for one input", _with_extra_raw(req(raw=four)), "INVALID_ARGUMENT"),
        ("FP16 without raw", req(datatype="FP16"), "INVALID_ARGUMENT"),
        ("message over the limit", req(raw=b"\0" * 70_000, shape=[4375, 4]), "RESOURCE_EXHAUSTED"),
    ]


def _with_extra_raw(request):  # type: ignore[no-untyped-def]
    request.raw_input_contents.append(b"x")
    return request


def test_malformed_grpc_requests_get_the_protocol_status(iris_server: Served) -> None:
    import grpc

    channel, stub = _triton_stub(iris_server)
    try:
        for what, request, status in _bad_requests():
            with pytest.raises(grpc.RpcError) as info:
                stub.ModelInfer(request, timeout=10)
            assert info.value.code().name == status, f"{what}: {info.value.code()} {info.value.details()}"
            assert info.value.details(), what
        # and the server still answers
        assert stub.ServerReady(__import__("tritonclient.grpc.service_pb2", fromlist=["x"]).ServerReadyRequest()).ready
    finally:
        channel.close()
    assert "Traceback" not in iris_server.log.read_text()


def test_lying_bytes_lengths_over_grpc_are_invalid_argument(words_server: Served) -> None:
    import grpc
    from tritonclient.grpc import service_pb2 as pb

    channel, stub = _triton_stub(words_server)
    try:
        for raw in (b"\x10\x00\x00\x00abc", b"\x03\x00", b"\x02\x00\x00\x00\xff\xfe"):
            request = pb.ModelInferRequest(model_name="words")
            request.inputs.add(name="text", datatype="BYTES", shape=[1])
            request.raw_input_contents.append(raw)
            with pytest.raises(grpc.RpcError) as info:
                stub.ModelInfer(request, timeout=10)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    finally:
        channel.close()


@pytest.mark.parametrize("compression", ["gzip", "deflate"])
def test_tritonclient_http_config_statistics_index_and_compression(
    iris_server: Served, iris_bundle: Path, compression: str
) -> None:
    import tritonclient.http as triton

    x = Bundle.load(iris_bundle).sample()["input"]
    want = Bundle.load(iris_bundle).load_predictor(threads=1).run({"input": x})
    client = triton.InferenceServerClient(url=f"127.0.0.1:{iris_server.port}")
    try:
        assert client.get_model_config("iris")["input"] == [{"name": "input", "data_type": "TYPE_FP32", "dims": [-1, 4]}]
        assert client.get_model_repository_index() == [{"name": "iris", "version": "1", "state": "READY"}]
        before = client.get_inference_statistics("iris")["model_stats"][0]["inference_count"]
        tensor = triton.InferInput("input-0", list(x.shape), "FP32")  # the single-input rule
        tensor.set_data_from_numpy(x)
        result = client.infer("iris", [tensor], request_compression_algorithm=compression)
        np.testing.assert_array_equal(result.as_numpy("probabilities"), want["probabilities"])
        assert client.get_inference_statistics()["model_stats"][0]["inference_count"] == before + len(x)
        # a Triton extension mlpack does not serve: a clear protocol error, not a decoding failure
        with pytest.raises(triton.InferenceServerException, match="no route /v2/trace/setting"):
            client.get_trace_settings()
    finally:
        client.close()


def test_fuzzed_grpc_messages_never_get_internal(iris_server: Served) -> None:
    """Random ModelInferRequests and random bytes: only the protocol's client-error statuses."""
    import grpc
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from tritonclient.grpc import service_pb2 as pb

    allowed = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.RESOURCE_EXHAUSTED}
    datatypes = st.sampled_from(["FP32", "FP64", "INT64", "INT8", "UINT8", "BOOL", "BYTES", "FP16", "BF16", "", "fp32"])
    dims = st.lists(st.integers(min_value=-3, max_value=2**40) | st.integers(0, 6), max_size=4) | st.lists(st.just(1), min_size=60, max_size=70)
    contents = st.fixed_dictionaries(
        {},
        optional={
            "fp32_contents": st.lists(st.floats(width=32, allow_nan=True), max_size=30),
            "int64_contents": st.lists(st.integers(-(2**63), 2**63 - 1), max_size=30),
            "int_contents": st.lists(st.integers(-(2**31), 2**31 - 1), max_size=30),
            "bool_contents": st.lists(st.booleans(), max_size=30),
            "bytes_contents": st.lists(st.binary(max_size=8), max_size=8),
        },
    )
    tensor = st.fixed_dictionaries(
        {"name": st.sampled_from(["input", "input-0", "x", ""]), "datatype": datatypes, "shape": dims, "contents": contents}
    )
    request = st.fixed_dictionaries(
        {
            "model_name": st.sampled_from(["iris", "iris", "other", ""]),
            "model_version": st.sampled_from(["", "1", "2"]),
            "inputs": st.lists(tensor, max_size=3),
            "raw": st.lists(st.binary(max_size=64), max_size=3),
            "outputs": st.lists(st.sampled_from(["label", "probabilities", "nope"]), max_size=3),
        }
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{iris_server.grpc_port}")
    infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")

    def call(message: bytes) -> grpc.StatusCode:
        try:
            infer(message, timeout=10)
            return grpc.StatusCode.OK
        except grpc.RpcError as exc:
            assert exc.code() in allowed, (exc.code(), exc.details())
            return exc.code()

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(request, st.binary(max_size=200))
    def fuzz(doc: dict, junk: bytes) -> None:
        msg = pb.ModelInferRequest(model_name=doc["model_name"], model_version=doc["model_version"])
        for t in doc["inputs"]:
            tensor_msg = msg.inputs.add(name=t["name"], datatype=t["datatype"], shape=t["shape"])
            for field, values in t["contents"].items():
                getattr(tensor_msg.contents, field).extend(values)
        msg.raw_input_contents.extend(doc["raw"])
        for name in doc["outputs"]:
            msg.outputs.add(name=name)
        call(msg.SerializeToString())
        call(junk)

    try:
        fuzz()
    finally:
        channel.close()
    assert "Traceback" not in iris_server.log.read_text()


def test_kserve_rest_and_grpc_clients(iris_server: Served, iris_bundle: Path, tmp_path: Path) -> None:
    python = external_python("MLPACK_KSERVE_PYTHON", "kserve")
    x = Bundle.load(iris_bundle).sample()["input"]
    want = Bundle.load(iris_bundle).load_predictor(threads=1).run({"input": x})
    doc = {"model": "iris", "input": "input", "x": x.tolist(), "outputs": {k: v.tolist() for k, v in want.items()}}
    (tmp_path / "want.json").write_text(json.dumps(doc))
    script = Path(__file__).parent / "external" / "kserve_clients.py"
    done = subprocess.run(
        [python, str(script), str(iris_server.port), str(iris_server.grpc_port), str(tmp_path / "want.json")],
        capture_output=True, text=True, timeout=120, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(": OK") == 4, done.stdout


def test_mlserver_codecs_numeric_and_strings(iris_server: Served, iris_bundle: Path, words_server: Served, words_bundle: Path, tmp_path: Path) -> None:
    python = external_python("MLPACK_MLSERVER_PYTHON", "mlserver")
    x = Bundle.load(iris_bundle).sample()["input"]
    iris_want = Bundle.load(iris_bundle).load_predictor(threads=1).run({"input": x})
    text = _texts()
    words_want = _want(words_bundle, text)
    cases = [
        {"url": iris_server.url, "model": "iris", "codec": "numpy", "x": x.tolist(), "outputs": {k: v.tolist() for k, v in iris_want.items()}},
        {"url": words_server.url, "model": "words", "codec": "string", "x": text.tolist(), "outputs": {k: v.tolist() for k, v in words_want.items()}},
    ]
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    script = Path(__file__).parent / "external" / "mlserver_codecs.py"
    done = subprocess.run(
        [python, str(script), str(tmp_path / "cases.json")],
        capture_output=True, text=True, timeout=120, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(": OK") == 2, done.stdout


def test_grpc_calls_are_in_the_metrics_and_the_access_log(iris_server: Served) -> None:
    import tritonclient.grpc as tg

    client = _grpc_client(iris_server)
    try:
        tensor = tg.InferInput("input", [1, 4], "FP32")
        tensor.set_data_from_numpy(np.ones((1, 4), np.float32))
        client.infer("iris", [tensor], request_id="grpc-log-1")
        with pytest.raises(tg.InferenceServerException):
            client.infer("nope", [tensor], request_id="grpc-log-2")
    finally:
        client.close()
    status, body = get(iris_server.url + "/metrics")
    text = body.decode()
    assert 'mlpack_requests_total{endpoint="/inference.GRPCInferenceService/ModelInfer",method="GRPC",status="OK"}' in text
    assert 'endpoint="/inference.GRPCInferenceService/ModelInfer",method="GRPC",status="NOT_FOUND"' in text
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the access log is written in batches, a few times a second
        lines = [r for r in iris_server.lines() if r.get("request_id") in ("grpc-log-1", "grpc-log-2")]
        if len(lines) == 2:
            break
        time.sleep(0.05)
    ok, failed = sorted(lines, key=lambda r: r["request_id"])
    assert ok["method"] == "GRPC" and ok["status"] == 0 and ok["client"] == "127.0.0.1"
    assert failed["status"] == 5  # NOT_FOUND, under the id the client sent


def test_a_taken_grpc_port_stops_the_server(iris_bundle: Path, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        served = start(iris_bundle, tmp_path / "server.log", "--grpc-port", str(port))
        try:
            assert served.proc.wait(60) == 3  # uvicorn's status for a failed startup
        finally:
            stop(served)
    assert "cannot listen for gRPC on 127.0.0.1:" in served.log.read_text()


def test_two_workers_share_the_grpc_port(iris_bundle: Path, tmp_path: Path) -> None:
    import tritonclient.grpc as tg

    served = start(iris_bundle, tmp_path / "server.log", "--workers", "2", "--no-access-log")
    try:
        wait_ready(served, timeout=READY_TIMEOUT_S)
        deadline = time.monotonic() + 60
        while len({r.get("pid") for r in served.lines() if r.get("msg") == "grpc listening"}) < 2:
            assert time.monotonic() < deadline, served.log.read_text()[-2000:]
            time.sleep(0.2)
        client = tg.InferenceServerClient(f"127.0.0.1:{served.grpc_port}")
        try:
            tensor = tg.InferInput("input", [1, 4], "FP32")
            tensor.set_data_from_numpy(np.array([[5.1, 3.5, 1.4, 0.2]], np.float32))
            for _ in range(5):
                assert client.infer("iris", [tensor]).as_numpy("label").tolist() == [0]
        finally:
            client.close()
    finally:
        assert stop(served) in (0, -15)
