"""Other servers' clients, unchanged, against a real ``mlpack-serve`` process:
tritonclient (HTTP and gRPC, binary and JSON), kserve's clients; numeric and BYTES
tensors; the answers must equal onnxruntime's in-process."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from mlpack.bundle import Bundle
from tests.integration.server.serving import Served, serving
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
