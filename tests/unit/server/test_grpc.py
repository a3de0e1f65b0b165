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
    typed = response_class.FromString(encode_response(response_class, outputs, decode_request(_request(), [X], OUT), model_name="iris"))
    assert list(typed.outputs[0].contents.int64_contents) == [0, 2] and not typed.raw_output_contents
    raw = response_class.FromString(encode_response(response_class, outputs, decode_request(_request(raw=bytes(32)), [X], OUT), model_name="iris"))
    assert raw.raw_output_contents[0] == np.array([0, 2], np.int64).tobytes()
    assert list(raw.outputs[1].shape) == [2, 3]


@pytest.mark.parametrize("model_name, request_id, arrays", [
    ("iris", "", [("label", np.array([0, 2])), ("probabilities", np.ones((2, 3), np.float32))]),
    ("m", "req-7", [("scalar", np.array(3.5, np.float64))]),  # shape (): no packed field at all
    ("", "", [("empty", np.zeros((0, 4), np.float32))]),  # no model name, zero rows
    ("modèle", "x" * 64, [("größe", np.arange(5000, dtype=np.int64).reshape(1000, 5))]),  # UTF-8, 40 kB buffer
    ("text", "id", [("labels", np.array(["spam", "ham", "naïve", ""], dtype=object))]),  # BYTES
    ("big", "", [("dims", np.zeros((300, 1, 129), np.uint8))]),  # dims and lengths over one varint byte
])  # fmt: skip
def test_raw_responses_written_directly_parse_as_protobuf_writes_them(model_name: str, request_id: str, arrays: list) -> None:
    from mlpack.server.codec import bytes_buffer
    from mlpack.server.grpc.codec import raw_response
    from mlpack.server.protocol import MODEL_VERSION
    from mlpack.server.tensors import v2_datatype

    response_class = message("ModelInferResponse")
    types = [v2_datatype(arr) for _, arr in arrays]
    expected = response_class(model_name=model_name, model_version=MODEL_VERSION, id=request_id)
    for (name, arr), datatype in zip(arrays, types):
        expected.outputs.add(name=name, datatype=datatype, shape=arr.shape)
        expected.raw_output_contents.append(bytes_buffer(arr) if datatype == "BYTES" else arr.tobytes())
    written = raw_response(model_name, request_id, arrays, types)
    assert response_class.FromString(written) == expected
    assert written == expected.SerializeToString()  # field order and encoding as protobuf's own
    assert raw_response(model_name, request_id, arrays, types) == written  # the cached heads give the same bytes


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


# -- the wire: framing, grpc-timeout, grpc-message ----------------------------------------------------


def test_unframe_takes_exactly_one_message() -> None:
    import gzip
    import zlib

    from mlpack.server.grpc.wire import RpcError, Status, frame, unframe

    assert unframe(frame(b"abc"), "identity", 1024) == b"abc"
    assert unframe(frame(b""), "identity", 1024) == b""
    packed = gzip.compress(b"x" * 100)
    assert unframe(b"\x01" + len(packed).to_bytes(4, "big") + packed, "gzip", 1024) == b"x" * 100
    packed = zlib.compress(b"y" * 10)
    assert unframe(b"\x01" + len(packed).to_bytes(4, "big") + packed, "deflate", 1024) == b"y" * 10
    cases = {
        b"": Status.INVALID_ARGUMENT,  # no message
        b"\x00\x00": Status.INVALID_ARGUMENT,  # a truncated prefix
        frame(b"abc")[:-1]: Status.INVALID_ARGUMENT,  # a truncated message
        frame(b"a") + frame(b"b"): Status.INVALID_ARGUMENT,  # two messages
        b"\x02" + frame(b"a")[1:]: Status.INVALID_ARGUMENT,  # a flag that is neither 0 nor 1
        b"\x01" + frame(b"a")[1:]: Status.INVALID_ARGUMENT,  # compressed, but identity
        b"\x00\xff\xff\xff\xff": Status.RESOURCE_EXHAUSTED,  # declares 4 GiB
        frame(b"z" * 2000): Status.RESOURCE_EXHAUSTED,  # over the limit
    }
    for body, code in cases.items():
        with pytest.raises(RpcError) as info:
            unframe(body, "identity", 1024)
        assert info.value.code is code, body[:12]
    bomb = gzip.compress(b"\0" * 100_000)
    with pytest.raises(RpcError) as info:
        unframe(b"\x01" + len(bomb).to_bytes(4, "big") + bomb, "gzip", 1024)
    assert info.value.code is Status.RESOURCE_EXHAUSTED
    with pytest.raises(RpcError) as info:
        unframe(b"\x01\x00\x00\x00\x03abc", "gzip", 1024)
    assert info.value.code is Status.INVALID_ARGUMENT


def test_grpc_timeout_units_and_malformed_values() -> None:
    from mlpack.server.grpc.wire import RpcError, timeout_seconds

    assert timeout_seconds(b"2S") == 2.0 and timeout_seconds(b"1H") == 3600.0 and timeout_seconds(b"5M") == 300.0
    assert timeout_seconds(b"250m") == pytest.approx(0.25) and timeout_seconds(b"99999999n") == pytest.approx(0.099999999)
    assert timeout_seconds(b"7u") == pytest.approx(7e-6)
    for bad in (b"", b"S", b"1", b"123456789S", b"1s", b"-1S", b"1.5S", b"1 S"):
        with pytest.raises(RpcError):
            timeout_seconds(bad)


def test_grpc_message_is_percent_encoded() -> None:
    from urllib.parse import unquote

    from mlpack.server.grpc.wire import percent_encode

    assert percent_encode("plain text: ok") == b"plain text: ok"
    encoded = percent_encode("100% 'émeu'\n日本")
    assert all(0x20 <= b < 0x7F for b in encoded) and b"%25" in encoded and b"%0A" in encoded
    assert unquote(encoded.decode()) == "100% 'émeu'\n日本"


def test_encodings() -> None:
    from mlpack.server.grpc.wire import encoding_of

    assert encoding_of(None) == "identity" and encoding_of(b"identity") == "identity"
    assert encoding_of(b"gzip") == "gzip" and encoding_of(b" Deflate ") == "deflate"
    assert encoding_of(b"snappy") is None and encoding_of(b"br") is None
