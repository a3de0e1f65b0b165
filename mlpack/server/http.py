"""The request envelope: request id, body limit, metrics, access log, last-resort 500.

A pure ASGI middleware (not Starlette's BaseHTTPMiddleware, which costs a
task and a queue per request). Every response carries ``X-Request-ID``; the
same id is in the access log line and in any error body, so a client's
report can be matched to the server's log.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any, Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from mlpack.server.codec import dumps
from mlpack.server.logs import AccessLog, server_logger
from mlpack.server.metrics import Metrics

__all__ = ["RequestEnvelope", "error_response", "request_id", "BodyTooLarge", "JSON"]

JSON = "application/json"
_SAFE_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,64}$")


class BodyTooLarge(Exception):
    """Raised by the receive wrapper when a chunked body passes the limit."""


def request_id(scope: dict) -> str:
    """The id of the request being handled (set by :class:`RequestEnvelope`)."""
    return scope.get("mlpack.request_id", "-")


def error_response(status: int, message: str, rid: str, *, hint: str | None = None, headers: dict | None = None) -> Response:
    """``{"error": message, "request_id": ..., "hint": ...}``; V2 clients read ``error``."""
    body: dict[str, Any] = {"error": message, "request_id": rid}
    if hint:
        body["hint"] = hint
    return Response(dumps(body), status_code=status, media_type=JSON, headers=headers)


class RequestEnvelope:
    """ASGI middleware around every HTTP request of the server."""

    def __init__(
        self,
        app: Callable,
        *,
        metrics: Metrics,
        max_body_bytes: int,
        access_log: AccessLog | None,
        routes: Callable[[], list],
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body_bytes
        self.access_log = access_log
        self._routes = routes
        self._labels: dict[Any, str] | None = None
        # (method, exact path) -> (endpoint, path params): the inference routes
        # are served from here without FastAPI's router and middleware stack,
        # which cost a fifth of a small request's CPU time.
        self.fast: dict[tuple[str, str], tuple[Callable, dict]] = {}

    def _endpoint(self, scope: dict) -> str:
        """The route template that served ``scope`` (bounded label values for metrics)."""
        if self._labels is None:
            self._labels = {getattr(r, "endpoint", None): getattr(r, "path", "") for r in self._routes()}
        return self._labels.get(scope.get("endpoint"), "unmatched")

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        rid = None
        length = None
        for key, value in scope["headers"]:
            if key == b"x-request-id" and _SAFE_ID.match(value):
                rid = value.decode()
            elif key == b"content-length":
                length = value
        if rid is None:
            rid = os.urandom(8).hex()
        scope["mlpack.request_id"] = rid
        rid_header = (b"x-request-id", rid.encode())
        status = 0

        async def send_with_id(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), rid_header]
            await send(message)

        metrics = self.metrics
        metrics.in_flight += 1
        try:
            if length is not None and (not length.isdigit() or int(length) > self.max_body):
                await self._too_large(scope, send_with_id, rid)
            else:
                receive_ = receive if length is not None else self._limited(receive)
                fast = self.fast.get((scope["method"], scope["path"]))
                if fast is None:
                    await self.app(scope, receive_, send_with_id)
                else:
                    endpoint, params = fast
                    scope["endpoint"] = endpoint
                    scope["path_params"] = params
                    response = await endpoint(Request(scope, receive_))
                    await response(scope, receive_, send_with_id)
        except BodyTooLarge:
            if not status:
                await self._too_large(scope, send_with_id, rid)
        except Exception:  # noqa: BLE001 - the client gets an id, the log gets the traceback
            server_logger.exception("unhandled error", extra={"request_id": rid, "path": scope.get("path")})
            if not status:
                await error_response(500, "internal server error", rid)(scope, receive, send_with_id)
        finally:
            metrics.in_flight -= 1
            seconds = time.perf_counter() - start
            metrics.request_done(self._endpoint(scope), scope["method"], status or 500, seconds)
            if self.access_log is not None:
                client = scope.get("client")
                self.access_log.record(
                    rid, scope["method"], scope["path"], status or 500, seconds, client[0] if client else "-"
                )

    async def _too_large(self, scope: dict, send: Callable, rid: str) -> None:
        response = error_response(
            413,
            f"request body is larger than the limit of {self.max_body} bytes",
            rid,
            hint="send fewer rows per request or raise MLPACK_MAX_BODY_BYTES",
        )
        await response(scope, _no_body, send)

    def _limited(self, receive: Callable[[], Awaitable[dict]]) -> Callable[[], Awaitable[dict]]:
        """A receive that stops a chunked body (no Content-Length) at the limit."""
        seen = 0
        limit = self.max_body

        async def limited() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge()
            return message

        return limited


async def _no_body() -> dict:
    return {"type": "http.request", "body": b"", "more_body": False}
