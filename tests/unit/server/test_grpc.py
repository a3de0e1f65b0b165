"""The gRPC side without a network: the committed descriptor, messages, request decoding."""

from __future__ import annotations

import numpy as np
import pytest

from mlpack.errors import ServeError
from mlpack.server.grpc import _descriptor
from mlpack.server.grpc.codec import decode_request, encode_response
from mlpack.server.grpc.messages import message, method_types
from mlpack.server.tensors import Spec

X = Spec("input", "float32", (None, 4))
OUT = [Spec("label", "int64", (None,)), Spec("probabilities", "float32", (None, 3))]


def test_committed_descriptor_matches_the_proto() -> None:
    pytest.importorskip("grpc_tools", reason="grpcio-tools regenerates the descriptor (mlpack[test])")
    from mlpack.server.grpc.protoc import compile_proto, render

    assert _descriptor.SERIALIZED == compile_proto(), "run: python -m mlpack.server.grpc.protoc"
    assert render(_descriptor.SERIALIZED) == open(_descriptor.__file__).read()


def test_the_service_has_the_protocol_methods() -> None:
    assert set(method_types()) == {
        "ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer",
        "ModelConfig", "ModelStatistics", "RepositoryIndex",
    }  # fmt: skip


def _request(**kw: object):  # type: ignore[no-untyped-def]
    request = message("ModelInferRequest")(model_name="iris")
    tensor = request.inputs.add(name=kw.get("name", "input"), datatype="FP32", shape=[2, 4])
    if "raw" in kw:
        request.raw_input_contents.append(kw["raw"])
    else:
        tensor.contents.fp32_contents.extend(range(8))
    return request


def test_typed_and_raw_contents_decode_to_the_same_feeds() -> None:
    typed = decode_request(_request(), [X], OUT)
    raw = decode_request(_request(raw=np.arange(8, dtype=np.float32).tobytes()), [X], OUT)
    np.testing.assert_array_equal(typed.feeds["input"], raw.feeds["input"])
    assert typed.feeds["input"].dtype == np.float32 and typed.feeds["input"].shape == (2, 4)
    assert not typed.binary_all and raw.binary_all
    # single input: any one name feeds it
    assert set(decode_request(_request(name="input-1"), [X], OUT).feeds) == {"input"}


def test_response_is_raw_when_the_request_was() -> None:
    outputs = {"label": np.array([0, 2]), "probabilities": np.ones((2, 3), np.float32)}
    response_class = message("ModelInferResponse")
    typed = encode_response(response_class, outputs, decode_request(_request(), [X], OUT), model_name="iris")
    assert list(typed.outputs[0].contents.int64_contents) == [0, 2] and not typed.raw_output_contents
    raw = encode_response(response_class, outputs, decode_request(_request(raw=bytes(32)), [X], OUT), model_name="iris")
    assert raw.raw_output_contents[0] == np.array([0, 2], np.int64).tobytes()
    assert list(raw.outputs[1].shape) == [2, 3]


def test_two_input_models_still_want_their_names() -> None:
    a, b = Spec("a", "float32", (None, 4)), Spec("b", "float32", (None, 4))
    with pytest.raises(ServeError, match="unknown input 'input'"):
        decode_request(_request(), [a, b], OUT)


def test_shapes_past_numpy_limits_are_422() -> None:
    request = _request()
    request.inputs[0].ClearField("shape")
    request.inputs[0].shape.extend([1] * 70)  # numpy arrays have at most 64 dimensions
    with pytest.raises(ServeError, match="dimensions"):
        decode_request(request, [X], OUT)
