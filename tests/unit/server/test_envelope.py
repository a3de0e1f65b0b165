"""The request envelope on the inference routes it answers itself (raw ASGI), driven in-process.

Each test calls the app built by ``create_app`` over a real bundle with
ASGI messages shaped as uvicorn's, including bodies that stall, clients that
leave, and cancellations from outside.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from mlpack.server import ServerConfig, create_app


class Call:
    """One request: ``chunks`` are sent as the body; then the client stalls, leaves, or waits for the answer."""

    def __init__(self, path: str, chunks: list[bytes], *, length: int | None = None, after: str = "wait",
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.path, self.chunks, self.after = path, list(chunks), after
        size = sum(map(len, chunks)) if length is None else length
        self.headers = [(b"host", b"x"), (b"content-type", b"application/json")] + (headers or [])
        if length != -1:
            self.headers.append((b"content-length", str(size).encode()))
        self.sent: list[dict] = []
        self.answered = asyncio.Event()

    async def receive(self) -> dict:
        if self.chunks:
            chunk = self.chunks.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(self.chunks) or self.after != "wait"}
        if self.after == "leave":
            return {"type": "http.disconnect"}
        await self.answered.wait()  # "stall": never, "wait": until the response is out
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}  # pragma: no cover

    async def send(self, message: dict) -> None:
        self.sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            self.answered.set()

    def scope(self) -> dict:
        return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
                "path": self.path, "raw_path": self.path.encode(), "query_string": b"", "root_path": "",
                "headers": self.headers, "client": ("127.0.0.1", 1234), "server": ("127.0.0.1", 8080), "state": {}}

    def answer(self) -> tuple[int, dict, bytes]:
        start = next(m for m in self.sent if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")
        return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body


async def _running(app: Any) -> AsyncIterator[Any]:
    async with app.router.lifespan_context(app):
        while not app.state.loaded.is_set():  # bounded by the model's load
            await asyncio.sleep(0.01)
        assert app.state.mlpack.runner is not None, app.state.mlpack.error
        yield app


def _run(bundle: Path, body: Any, **config: Any) -> Any:
    async def main() -> Any:
        app = create_app(bundle, ServerConfig(bundle=str(bundle), access_log=False, grpc_port=0, **config))
        async for running in _running(app):
            return await body(running)

    return asyncio.run(main())


def _count(app: Any, status: int, endpoint: str = "/predict") -> int:
    return app.state.mlpack.metrics.requests.get((endpoint, "POST", str(status)), 0)


ROW = b'{"inputs": [[5.1, 3.5, 1.4, 0.2]]}'


def test_a_stalled_body_on_an_inference_route_is_408_and_the_next_request_is_served(iris_bundle: Path) -> None:
    async def body(app: Any) -> None:
        stalled = Call("/predict", [b'{"inputs": '], length=len(ROW), after="stall")
        await app(stalled.scope(), stalled.receive, stalled.send)  # returns once the deadline answered
        status, headers, text = stalled.answer()
        assert status == 408 and headers["connection"] == "close"
        assert json.loads(text)["request_id"] == headers["x-request-id"] and "stalled" in json.loads(text)["error"]
        ok = Call("/predict", [ROW[:10], ROW[10:]])  # in two chunks, under the same deadline machinery
        await app(ok.scope(), ok.receive, ok.send)
        assert ok.answer()[0] == 200 and json.loads(ok.answer()[2])["outputs"]["label"] == [0]
        assert (_count(app, 408), _count(app, 200)) == (1, 1)

    _run(iris_bundle, body, body_timeout_s=0.2)


def test_a_client_leaving_mid_body_is_499_and_gets_nothing(iris_bundle: Path) -> None:
    async def body(app: Any) -> None:
        gone = Call("/v2/models/iris/infer", [b'{"inputs": [{"na'], length=200, after="leave")
        await app(gone.scope(), gone.receive, gone.send)
        assert gone.sent == []
        assert _count(app, 499, "/v2/models/{model_name}/infer") == 1

    _run(iris_bundle, body)


def test_a_chunked_body_over_the_limit_is_413_on_an_inference_route(iris_bundle: Path) -> None:
    async def body(app: Any) -> None:
        big = Call("/predict", [b"[" + b"1," * 700, b"1," * 700, b"1]"], length=-1, after="wait",
                   headers=[(b"transfer-encoding", b"chunked")])
        await app(big.scope(), big.receive, big.send)
        assert big.answer()[0] == 413 and b"larger than the limit of 2048 bytes" in big.answer()[2]
        declared = Call("/predict", [ROW], length=5000)
        await app(declared.scope(), declared.receive, declared.send)
        assert declared.answer()[0] == 413
        assert _count(app, 413) == 2

    _run(iris_bundle, body, max_body_bytes=2048)


def test_a_request_cancelled_from_outside_is_not_taken_for_a_stalled_body(iris_bundle: Path) -> None:
    async def body(app: Any) -> None:
        stalled = Call("/predict", [b'{"inputs": '], length=len(ROW), after="stall")
        task = asyncio.ensure_future(app(stalled.scope(), stalled.receive, stalled.send))
        for _ in range(1000):  # bounded: until the request holds its body budget, i.e. waits for its body
            if app.state.mlpack.metrics.in_flight:
                break
            await asyncio.sleep(0)
        task.cancel()  # a server shutting down
        with pytest.raises(asyncio.CancelledError):
            await task
        assert stalled.sent == [] and _count(app, 408) == 0

    _run(iris_bundle, body, body_timeout_s=30)


@pytest.mark.parametrize("path", ["/predict", "/v2/models/iris/infer", "/v2/models/iris/versions/1/infer"])
def test_inference_routes_are_labelled_by_template_and_errors_keep_their_body(iris_bundle: Path, path: str) -> None:
    async def body(app: Any) -> tuple[int, dict, bytes]:
        bad = Call(path, [b'{"inputs": "x"'], headers=[(b"x-request-id", b"abc-1")])
        await app(bad.scope(), bad.receive, bad.send)
        return bad.answer()

    status, headers, text = _run(iris_bundle, body)
    assert status == 422 and headers["x-request-id"] == "abc-1" and headers["content-type"] == "application/json"
    doc = json.loads(text)
    assert doc["request_id"] == "abc-1" and "not valid JSON" in doc["error"] and doc["hint"]
    assert int(headers["content-length"]) == len(text)


def test_a_send_that_fails_midway_is_not_answered_twice(iris_bundle: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def body(app: Any) -> list[dict]:
        call = Call("/predict", [ROW])

        async def broken(message: dict) -> None:
            call.sent.append(message)
            if message["type"] == "http.response.body":
                raise OSError("connection reset while writing")

        await app(call.scope(), call.receive, broken)
        return call.sent

    sent = _run(iris_bundle, body)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]  # no 500 after a started 200
    assert any(r.getMessage() == "unhandled error" for r in caplog.records)
