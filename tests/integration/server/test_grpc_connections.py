"""gRPC channels that live long: one grpc.aio channel (as tritonclient and kserve keep) past zttp's
per-connection caps (4096 streams, 256 peer resets), with zero failed calls; and the protocol edges
grpc's clients do not exercise (framing, encodings, content types, deadlines), over raw HTTP/2."""

from __future__ import annotations

import asyncio
import gzip
import socket
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from mlpack.server.grpc.h2 import RESETS_PER_CONNECTION, STREAMS_PER_CONNECTION
from mlpack.server.grpc.wire import Status
from tests.integration.server.serving import Served, get, serving

pytestmark = [pytest.mark.integration]

INFER = "/inference.GRPCInferenceService/ModelInfer"


@pytest.fixture(scope="module")
def iris_server(iris_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    log = tmp_path_factory.mktemp("iris-grpc-conns") / "server.log"
    with serving(iris_bundle, log, "--max-body-bytes", "65536", "--no-access-log") as served:
        yield served


def _request() -> bytes:
    from tritonclient.grpc import service_pb2 as pb

    request = pb.ModelInferRequest(model_name="iris")
    request.inputs.add(name="input", datatype="FP32", shape=[1, 4]).contents.fp32_contents.extend([5.1, 3.5, 1.4, 0.2])
    return request.SerializeToString()


def _label(answer: bytes) -> list[int]:
    from tritonclient.grpc import service_pb2 as pb

    response = pb.ModelInferResponse.FromString(answer)
    return list({o.name: o for o in response.outputs}["label"].contents.int64_contents)


def _retired(served: Served, reason: str) -> list[dict]:
    return [r for r in served.lines() if r.get("msg") == "grpc connection retired" and r.get("reason") == reason]


def _metric(served: Served, line_start: str) -> float:
    _, body = get(served.url + "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_one_channel_outlives_the_stream_cap_with_zero_failed_calls(iris_server: Served) -> None:
    from grpc import aio

    calls, callers = 12_800, 32
    assert calls > 3 * STREAMS_PER_CONNECTION
    body = _request()

    async def main() -> tuple[int, list[str]]:
        channel = aio.insecure_channel(f"127.0.0.1:{iris_server.grpc_port}")
        infer = channel.unary_unary(INFER)
        done, failures = 0, []

        async def caller(n: int) -> None:
            nonlocal done
            for _ in range(n):
                try:
                    assert _label(await infer(body, timeout=60)) == [0]
                    done += 1
                except Exception as exc:  # noqa: BLE001 - every failure is reported
                    failures.append(repr(exc)[:300])

        await asyncio.gather(*(caller(calls // callers) for _ in range(callers)))
        await channel.close()
        return done, failures

    done, failures = asyncio.run(main())
    assert failures == [] and done == calls
    rotations = _retired(iris_server, "streams")
    assert len(rotations) >= calls // STREAMS_PER_CONNECTION, rotations
    assert all(r["streams"] < 4096 for r in rotations)
    log = iris_server.logs()
    assert "enhance your calm" not in log and "Traceback" not in log


def test_hundreds_of_cancelled_calls_on_one_channel_then_calls_still_succeed(iris_server: Served) -> None:
    """Calls the server holds (their request never ends) are cancelled by the client: explicitly, once
    the server counts them in flight, and by their deadline. Each cancel is an RST_STREAM."""
    import grpc
    from grpc import aio

    rounds, callers = 21, 32
    assert rounds * callers > 600 > 2 * RESETS_PER_CONNECTION
    in_flight = "mlpack_requests_in_flight "
    cancelled = 'mlpack_requests_total{endpoint="' + INFER + '",method="GRPC",status="CANCELLED"}'

    idle = _metric(iris_server, in_flight)  # the /metrics request counts itself
    assert idle == 1

    async def main() -> tuple[list[str], list[str]]:
        channel = aio.insecure_channel(f"127.0.0.1:{iris_server.grpc_port}")
        held = channel.stream_unary(INFER)  # a unary method whose request the client never ends
        infer = channel.unary_unary(INFER)
        body = _request()
        answers: list[str] = []
        never = asyncio.Event()

        async def nothing():  # type: ignore[no-untyped-def]
            await never.wait()
            yield b""  # pragma: no cover

        outcomes: list[str] = []
        for i in range(rounds):
            deadline = i % 3 == 2
            pending = [held(nothing(), timeout=2 if deadline else 120) for _ in range(callers)]
            for _ in range(2000):  # the server holds all of them (not a sleep: polls the server's count)
                if _metric(iris_server, in_flight) >= callers + idle:
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError("the server never held the calls")
            # calls that must succeed, in flight on the same channel while the others are reset
            live = [asyncio.ensure_future(infer(body, timeout=60)) for _ in range(16)]
            if not deadline:
                for call in pending:
                    call.cancel()
            for call in pending:
                try:
                    await call
                    outcomes.append("OK")
                except asyncio.CancelledError:
                    outcomes.append("CANCELLED")
                except grpc.RpcError as exc:
                    outcomes.append(exc.code().name)
            answers.extend(str(_label(answer)) for answer in await asyncio.gather(*live))
            for _ in range(2000):  # and has let them all go before the next round
                if _metric(iris_server, in_flight) == idle:
                    break
                await asyncio.sleep(0.01)
        answers.extend([str(_label(await infer(body, timeout=30))) for _ in range(200)])
        await channel.close()
        return outcomes, answers

    outcomes, answers = asyncio.run(main())
    assert len(outcomes) == rounds * callers and set(outcomes) <= {"CANCELLED", "DEADLINE_EXCEEDED"}, set(outcomes)
    assert outcomes.count("DEADLINE_EXCEEDED") >= 7 * callers
    assert answers == ["[0]"] * (rounds * 16 + 200)
    # the server saw them go (CANCELLED), rotated on resets, and never hit zttp's cap
    assert _metric(iris_server, cancelled) >= 14 * callers
    assert len(_retired(iris_server, "stream resets")) >= 2
    log = iris_server.logs()
    assert "enhance your calm" not in log and "Traceback" not in log


# -- raw HTTP/2: what grpc's clients never send --------------------------------------------------------


class H2:
    """A minimal HTTP/2 client over zttp, for requests gRPC's clients will not make."""

    def __init__(self, port: int) -> None:
        import zttp

        self.zttp = zttp
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.conn = zttp.Connection(zttp.CLIENT, protocol=zttp.HTTP2)
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())

    def call(self, path: bytes, body: bytes, headers: list[tuple[bytes, bytes]] | None = None,
             method: bytes = b"POST") -> tuple[int, dict, bytes, dict]:
        """(HTTP status, headers, body, trailers) of one request."""
        zttp = self.zttp
        hdrs = headers if headers is not None else [(b"content-type", b"application/grpc"), (b"te", b"trailers")]
        stream = self.conn.send_request(method, path, b"2", [(b"host", b"127.0.0.1"), *hdrs])
        if body:
            stream.send_data(body)
        stream.end_message()
        self.sock.sendall(self.conn.data_to_send())
        status, head, data, trailers = 0, {}, b"", {}
        while True:
            event = self.conn.next_event()
            if event is zttp.NEED_DATA:
                self.sock.sendall(self.conn.data_to_send())
                chunk = self.sock.recv(65536)
                assert chunk, "the server closed the connection"
                self.conn.receive_data(chunk)
                continue
            if getattr(event, "stream_id", stream.stream_id) != stream.stream_id:
                continue
            if isinstance(event, zttp.Response):
                status, head = event.status_code, dict(event.headers)
                if b"grpc-status" in head:  # Trailers-Only
                    return status, head, data, head
            elif isinstance(event, zttp.Data):
                data += event.data
            elif isinstance(event, zttp.EndOfMessage):
                return status, head, data, dict(event.trailers)
            elif isinstance(event, zttp.RstStream):
                return status, head, data, trailers

    def close(self) -> None:
        self.sock.close()


def _framed(message: bytes, flag: int = 0) -> bytes:
    return bytes([flag]) + len(message).to_bytes(4, "big") + message


@pytest.fixture()
def h2(iris_server: Served) -> Iterator[H2]:
    client = H2(iris_server.grpc_port)
    yield client
    client.close()


def _code(trailers: dict) -> str:
    return Status(int(trailers[b"grpc-status"])).name


@pytest.mark.parametrize("what, body, headers, want", [
    ("no message", b"", None, "INVALID_ARGUMENT"),
    ("a truncated prefix", b"\x00\x00\x00", None, "INVALID_ARGUMENT"),
    ("a truncated message", _framed(b"x" * 10)[:-3], None, "INVALID_ARGUMENT"),
    ("two messages", _framed(b"") * 2, None, "INVALID_ARGUMENT"),
    ("an unknown flag", _framed(b"", flag=7), None, "INVALID_ARGUMENT"),
    ("compressed without grpc-encoding", _framed(b"x", flag=1), None, "INVALID_ARGUMENT"),
    ("gzip that is not", _framed(b"not gzip", flag=1),
     [(b"content-type", b"application/grpc"), (b"grpc-encoding", b"gzip")], "INVALID_ARGUMENT"),
    ("a gzip bomb", _framed(gzip.compress(b"\0" * 1_000_000), flag=1),
     [(b"content-type", b"application/grpc"), (b"grpc-encoding", b"gzip")], "RESOURCE_EXHAUSTED"),
    ("a declared length over the limit", b"\x00\x7f\xff\xff\xff" + b"x" * 100, None, "RESOURCE_EXHAUSTED"),
    ("an unknown encoding", _framed(b"x", flag=1),
     [(b"content-type", b"application/grpc"), (b"grpc-encoding", b"snappy")], "UNIMPLEMENTED"),
    ("a JSON subtype", _framed(b"{}"), [(b"content-type", b"application/grpc+json")], "UNIMPLEMENTED"),
    ("a malformed grpc-timeout", _framed(b""),
     [(b"content-type", b"application/grpc"), (b"grpc-timeout", b"soon")], "INVALID_ARGUMENT"),
])  # fmt: skip
def test_badly_framed_calls_get_a_client_error_status(h2: H2, what: str, body: bytes, headers: list | None, want: str) -> None:
    status, head, data, trailers = h2.call(INFER.encode(), body, headers)
    assert status == 200 and head[b"content-type"] == b"application/grpc", what
    assert _code(trailers) == want, (what, trailers)
    assert trailers.get(b"grpc-message"), what
    if want == "UNIMPLEMENTED" and b"grpc-encoding" in dict(headers or []):
        assert trailers[b"grpc-accept-encoding"] == b"identity,deflate,gzip"
    # the connection still serves
    status, _, data, trailers = h2.call(INFER.encode(), _framed(_request()))
    assert _code(trailers) == "OK" and _label(data[5:]) == [0]


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_requests_are_served(h2: H2, encoding: str) -> None:
    packed = gzip.compress(_request()) if encoding == "gzip" else zlib.compress(_request())
    headers = [(b"content-type", b"application/grpc+proto"), (b"grpc-encoding", encoding.encode())]
    status, _, data, trailers = h2.call(INFER.encode(), _framed(packed, flag=1), headers)
    assert _code(trailers) == "OK" and data[0] == 0 and _label(data[5:]) == [0]


def test_not_grpc_and_unknown_methods(h2: H2) -> None:
    status, _, _, _ = h2.call(INFER.encode(), _framed(b""), [(b"content-type", b"application/json")])
    assert status == 415
    status, _, _, _ = h2.call(INFER.encode(), b"", [(b"content-type", b"application/grpc")], method=b"GET")
    assert status == 405
    _, _, _, trailers = h2.call(b"/inference.GRPCInferenceService/Explode", _framed(b""))
    assert _code(trailers) == "UNIMPLEMENTED" and b"Explode" in trailers[b"grpc-message"]
    _, _, _, trailers = h2.call(b"/grpc.health.v1.Health/Check", _framed(b""))
    assert _code(trailers) == "UNIMPLEMENTED"
    # no `te: trailers` (a proxy that drops it): the status still comes, in trailers
    _, _, data, trailers = h2.call(INFER.encode(), _framed(_request()), [(b"content-type", b"application/grpc")])
    assert _code(trailers) == "OK"


def test_error_messages_are_percent_encoded(h2: H2) -> None:
    from tritonclient.grpc import service_pb2 as pb

    request = pb.ModelInferRequest(model_name="iris")
    request.inputs.add(name="input", datatype="FP32", shape=[1, 4]).contents.fp32_contents.extend([1.0])
    _, _, _, trailers = h2.call(INFER.encode(), _framed(request.SerializeToString()))
    assert _code(trailers) == "INVALID_ARGUMENT"
    message = trailers[b"grpc-message"]
    assert all(0x20 <= b < 0x7F for b in message)
    from urllib.parse import unquote

    assert "input" in unquote(message.decode())


def test_calls_that_arrive_together_share_one_model_run(iris_server: Served) -> None:
    """Eight calls in one TCP write: the server reads them in one go and, as for HTTP requests,
    the micro-batcher sees them all in the server and runs them as one batch."""
    import zttp

    runs, merged = "mlpack_batch_requests_count", "mlpack_batch_requests_sum"
    runs_before, merged_before = _metric(iris_server, runs), _metric(iris_server, merged)
    conn = zttp.Connection(zttp.CLIENT, protocol=zttp.HTTP2)
    conn.initiate_connection()
    streams = []
    for _ in range(8):
        stream = conn.send_request(b"POST", INFER.encode(), b"2", [(b"host", b"127.0.0.1"), (b"content-type", b"application/grpc"), (b"te", b"trailers")])
        stream.send_data(_framed(_request()))
        stream.end_message()
        streams.append(stream.stream_id)
    bodies: dict[int, bytes] = {}
    codes: dict[int, str] = {}
    with socket.create_connection(("127.0.0.1", iris_server.grpc_port), timeout=30) as sock:
        sock.sendall(conn.data_to_send())  # one write: preface, SETTINGS and the eight calls
        while len(codes) < 8:
            event = conn.next_event()
            if event is zttp.NEED_DATA:
                sock.sendall(conn.data_to_send())
                chunk = sock.recv(65536)
                assert chunk, "the server closed the connection"
                conn.receive_data(chunk)
            elif isinstance(event, zttp.Data):
                bodies[event.stream_id] = bodies.get(event.stream_id, b"") + event.data
            elif isinstance(event, zttp.EndOfMessage):
                codes[event.stream_id] = _code(dict(event.trailers))
    assert sorted(codes) == streams and set(codes.values()) == {"OK"}
    assert all(_label(bodies[s][5:]) == [0] for s in streams)
    assert _metric(iris_server, merged) - merged_before == 8
    assert _metric(iris_server, runs) - runs_before == 1, "the eight calls did not share a model run"


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def _literal(name: bytes, value: bytes) -> bytes:
    """An HPACK literal field without indexing, new name, no Huffman (RFC 7541 6.2.2)."""
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def test_an_uppercase_header_name_never_reaches_the_app(iris_server: Served) -> None:
    """HTTP/2 field names are lowercase (RFC 9113 8.2.1) and the server relies on it: a HEADERS
    frame with ``Content-Type`` (hand-encoded: no client library sends one) is refused at the
    protocol layer, not served, and the server goes on serving."""
    fields = (b"\x83\x86"  # :method POST, :scheme http (static table)
              + b"\x04" + bytes([len(INFER)]) + INFER.encode()  # :path, literal value
              + _literal(b"Content-Type", b"application/grpc") + _literal(b"te", b"trailers"))
    body = _framed(_request())
    with socket.create_connection(("127.0.0.1", iris_server.grpc_port), timeout=30) as sock:
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _frame(0x4, 0, 0, b"")  # preface, SETTINGS
                     + _frame(0x1, 0x4, 1, fields) + _frame(0x0, 0x1, 1, body))  # HEADERS, DATA + END_STREAM
        received = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
            kinds = _frame_kinds(received)
            if {0x1, 0x3, 0x7} & set(kinds):  # an answer's HEADERS, or RST_STREAM / GOAWAY (refused)
                break
    kinds = _frame_kinds(received)
    assert 0x1 not in kinds and 0x0 not in kinds, "the request with an uppercase field name was answered"
    status, _, data, trailers = H2(iris_server.grpc_port).call(INFER.encode(), body)
    assert status == 200 and _code(trailers) == "OK" and _label(data[5:]) == [0]
    assert "Traceback" not in iris_server.logs()


def _frame_kinds(data: bytes) -> list[int]:
    """The types of the whole frames in ``data`` (after the server's SETTINGS)."""
    kinds, pos = [], 0
    while pos + 9 <= len(data):
        length = int.from_bytes(data[pos:pos + 3], "big")
        if pos + 9 + length > len(data):
            break
        kinds.append(data[pos + 3])
        pos += 9 + length
    return kinds


def test_a_message_over_the_limit_is_refused_before_it_is_read(h2: H2) -> None:
    """The prefix declares 1 GiB: the answer comes after the first chunk, not after a gigabyte."""
    _, _, _, trailers = h2.call(INFER.encode(), b"\x00\x40\x00\x00\x00" + b"\0" * 1000)
    assert _code(trailers) == "RESOURCE_EXHAUSTED" and b"65536" in trailers[b"grpc-message"]


def test_a_grpc_timeout_that_passes_is_deadline_exceeded(iris_server: Served) -> None:
    """A call whose request never ends, with grpc-timeout 50 ms: the server answers DEADLINE_EXCEEDED."""
    import zttp

    client = H2(iris_server.grpc_port)
    try:
        stream = client.conn.send_request(b"POST", INFER.encode(), b"2", [
            (b"host", b"x"), (b"content-type", b"application/grpc"), (b"te", b"trailers"), (b"grpc-timeout", b"50m"),
        ])  # fmt: skip
        stream.send_data(b"\x00\x00\x00")  # part of a prefix, then nothing
        client.sock.sendall(client.conn.data_to_send())
        trailers: dict = {}
        while not trailers:
            event = client.conn.next_event()
            if event is zttp.NEED_DATA:
                client.conn.receive_data(client.sock.recv(65536))
            elif isinstance(event, zttp.Response):
                trailers = dict(event.headers)
        assert _code(trailers) == "DEADLINE_EXCEEDED"
    finally:
        client.close()
    assert np.isfinite(_metric(iris_server, "mlpack_requests_in_flight "))


def test_sigterm_retires_grpc_connections_and_finishes_the_call_in_flight(iris_bundle: Path, tmp_path: Path) -> None:
    """A call in flight at SIGTERM: the server sends GOAWAY NO_ERROR 2^31-1 and a PING, then, once the
    client has acked the PING, GOAWAY with the last stream id; a stream opened after that is refused
    (REFUSED_STREAM: gRPC clients retry those elsewhere); the call in flight is answered; exit 0."""
    import signal

    import zttp

    from mlpack.endpoint import wait_ready
    from tests.integration.server.serving import READY_TIMEOUT_S, start, stop

    served = start(iris_bundle, tmp_path / "server.log", "--graceful-timeout-s", "20", "--no-access-log")
    try:
        wait_ready(served, timeout=READY_TIMEOUT_S)
        client = H2(served.grpc_port)
        framed = _framed(_request())
        stream = client.conn.send_request(b"POST", INFER.encode(), b"2", [
            (b"host", b"x"), (b"content-type", b"application/grpc"), (b"te", b"trailers"),
        ])  # fmt: skip
        stream.send_data(framed[:7])
        client.sock.sendall(client.conn.data_to_send())
        for _ in range(3000):  # in flight once the server counts it (and the /metrics request itself)
            if _metric(served, "mlpack_requests_in_flight ") >= 2:
                break
        else:
            raise AssertionError("the call never reached the server")
        served.proc.send_signal(signal.SIGTERM)
        goaways: list[int] = []
        answer: dict = {}
        while len(goaways) < 2:
            event = client.conn.next_event()
            if event is zttp.NEED_DATA:
                client.sock.sendall(client.conn.data_to_send())  # zttp acks the PING
                chunk = client.sock.recv(65536)
                assert chunk, "the server closed the connection with a call in flight"
                client.conn.receive_data(chunk)
            elif isinstance(event, zttp.GoAway):
                assert event.error_code == 0
                goaways.append(event.last_stream_id)
        assert goaways == [2**31 - 1, stream.stream_id]
        assert served.proc.poll() is None, "exited with a call in flight"
        late = client.conn.send_request(b"POST", INFER.encode(), b"2", [(b"host", b"x"), (b"content-type", b"application/grpc")])
        late.send_data(framed)
        late.end_message()
        stream.send_data(framed[7:])
        stream.end_message()
        client.sock.sendall(client.conn.data_to_send())
        refused = None
        data = b""
        while not answer or refused is None:
            event = client.conn.next_event()
            if event is zttp.NEED_DATA:
                chunk = client.sock.recv(65536)
                if not chunk:
                    break
                client.conn.receive_data(chunk)
            elif isinstance(event, zttp.RstStream) and event.stream_id == late.stream_id:
                refused = event.error_code
            elif isinstance(event, zttp.Data) and event.stream_id == stream.stream_id:
                data += event.data
            elif isinstance(event, zttp.EndOfMessage) and event.stream_id == stream.stream_id:
                answer = dict(event.trailers)
        client.close()
        assert refused == 0x7
        assert _code(answer) == "OK" and _label(data[5:]) == [0]
        assert served.proc.wait(30) == 0
        assert any(r.get("reason") == "server shutdown" for r in served.lines() if r.get("msg") == "grpc connection retired")
    finally:
        stop(served)


def test_an_answer_larger_than_the_flow_control_window(iris_server: Served, iris_bundle: Path) -> None:
    """4000 rows: 80 KB of outputs, over HTTP/2's initial 64 KB window; the rest goes as the client
    grants credit (WINDOW_UPDATE), and equals onnxruntime's in-process answer."""
    import tritonclient.grpc as tg

    from mlpack.bundle import Bundle

    x = np.random.default_rng(7).normal(size=(4000, 4)).astype(np.float32)
    want = Bundle.load(iris_bundle).load_predictor(threads=1).run({"input": x})
    client = tg.InferenceServerClient(f"127.0.0.1:{iris_server.grpc_port}")
    try:
        tensor = tg.InferInput("input", [4000, 4], "FP32")
        tensor.set_data_from_numpy(x)
        for _ in range(3):
            result = client.infer("iris", [tensor], client_timeout=60)
            np.testing.assert_array_equal(result.as_numpy("label"), want["label"])
            np.testing.assert_array_equal(result.as_numpy("probabilities"), want["probabilities"])
    finally:
        client.close()
