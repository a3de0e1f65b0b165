"""Finding 7: the model server under hostile requests, as a real uvicorn process on 127.0.0.1.

Shapes that overflowed numpy, bodies that together exceed memory, clients
that hang up or stall: each is answered with a 4xx (or a 503 that says when
to retry), never a 500, and /metrics and the log say what happened.
"""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.integration.server.serving import Served, get, post, serving



def _metrics(served: Served) -> dict[str, int]:
    """status -> number of requests, from /metrics."""
    text = get(served.url + "/metrics")[1].decode()
    out: dict[str, int] = {}
    for status, n in re.findall(r'^mlpack_requests_total\{[^}]*status="(\d+)"[^}]*\} (\d+)', text, re.M):
        out[status] = out.get(status, 0) + int(float(n))
    return out


def _raw(served: Served, head: bytes, body: bytes = b"", *, timeout: float = 30) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", served.port), timeout=timeout)
    s.sendall(head + body)
    return s


def _answer(s: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            data = s.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
        if b"\r\n\r\n" in b"".join(chunks) and b"connection: close" not in b"".join(chunks).lower():
            head, _, rest = b"".join(chunks).partition(b"\r\n\r\n")
            m = re.search(rb"content-length: (\d+)", head, re.I)
            if m and len(rest) >= int(m.group(1)):
                break
    s.close()
    return b"".join(chunks)


@pytest.fixture(scope="module")
def strict_server(iris_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    log = tmp_path_factory.mktemp("strict-server") / "server.log"
    with serving(iris_bundle, log, "--header-timeout-s", "0.5", "--body-timeout-s", "0.5",
                 "--max-body-bytes", "65536", "--max-inflight-bytes", "131072", "--body-wait-s", "0.5") as served:
        yield served


@pytest.mark.parametrize("shape,data", [
    ([2 ** 63, 4], []),
    ([2 ** 62, 4], []),
    ([2 ** 62 + 1, 4], [1.0, 2.0, 3.0, 4.0]),
    ([1] * 70, [1.0]),
    ([2 ** 31, 2 ** 31, 2 ** 31], []),
    ([-1, 4], [1.0, 2.0, 3.0, 4.0]),
    ([0, 4], []),
])
def test_hostile_v2_shapes_are_422_before_any_allocation(strict_server: Served, shape: list, data: list) -> None:
    before = _metrics(strict_server)
    body = json.dumps({"inputs": [{"name": "input", "shape": shape, "datatype": "FP32", "data": data}]}).encode()
    status, answer, _ = post(strict_server.url + "/v2/models/iris/infer", body)
    if shape == [0, 4]:  # a legal empty batch: answered, or refused as empty, never a 500
        assert status in (200, 422), answer
    else:
        assert status == 422 and json.loads(answer)["error"], answer
    after = _metrics(strict_server)
    assert not any(code.startswith("5") and after[code] != before.get(code, 0) for code in after), after


def test_a_client_that_hangs_up_mid_body_is_499_not_500(strict_server: Served) -> None:
    before = _metrics(strict_server)
    s = _raw(strict_server, b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                            b"content-length: 4000\r\n\r\n", b'{"inputs": [[1, 2')
    s.close()
    deadline = time.monotonic() + 30  # a bound, not a wait: the loop ends when the server counts it
    while True:
        after = _metrics(strict_server)
        if after.get("499", 0) > before.get("499", 0) or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert after.get("499", 0) == before.get("499", 0) + 1
    assert after.get("500", 0) == before.get("500", 0)
    assert "Traceback" not in strict_server.log.read_text()


def test_stalled_headers_and_idle_connections_are_closed(strict_server: Served) -> None:
    idle = _raw(strict_server, b"")
    partial = _raw(strict_server, b"POST /predict HTTP/1.1\r\nhost: x\r\n")
    # The server closes both (header deadline 0.5 s); the 30 s socket timeout only bounds the test.
    assert _answer(idle) == b""
    assert _answer(partial) == b""


def test_a_stalled_body_gets_408(strict_server: Served) -> None:
    s = _raw(strict_server, b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                            b"content-length: 400\r\n\r\n", b'{"inputs": ')
    answer = _answer(s)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"stalled" in answer


@pytest.fixture
def budget_server(iris_bundle: Path, tmp_path: Path) -> Iterator[Served]:
    with serving(iris_bundle, tmp_path / "server.log", "--max-body-bytes", "65536", "--max-inflight-bytes", "131072",
                 "--body-wait-s", "0.5", "--body-timeout-s", "60") as served:
        yield served


def _in_flight(served: Served) -> int:
    text = get(served.url + "/metrics")[1].decode()
    return int(float(re.search(r"^mlpack_requests_in_flight (\S+)", text, re.M).group(1)))


def test_bodies_over_the_inflight_budget_wait_then_get_503_and_the_budget_comes_back(budget_server: Served) -> None:
    # Two requests that announce 60 KiB each hold the whole 128 KiB budget while their bodies trickle.
    row = b"[5.1, 3.5, 1.4, 0.2]"
    body = b'{"inputs": [' + b", ".join([row] * 2900) + b"]}"
    assert 60_000 < len(body) < 65536
    head = (b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n" % len(body))
    holders = [_raw(budget_server, head, body[:100]) for _ in range(2)]
    # Both are admitted as soon as the server sees them (the budget is free): wait for that event,
    # seen as 3 requests in flight (the two and this /metrics request).
    deadline = time.monotonic() + 30
    while _in_flight(budget_server) != 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _in_flight(budget_server) == 3
    third = _raw(budget_server, head, body)
    answer = _answer(third)
    assert answer.startswith(b"HTTP/1.1 503"), answer
    assert b"retry-after: 1" in answer.lower()
    for s in holders:
        s.sendall(body[100:])
    results = [_answer(s) for s in holders]
    assert all(r.startswith(b"HTTP/1.1 200") for r in results), results
    status, _, _ = post(budget_server.url + "/predict", body, timeout=30)
    assert status == 200  # the budget was given back
    assert _metrics(budget_server).get("500", 0) == 0
