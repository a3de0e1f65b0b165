"""The request envelope: request id, body limit and budget, read deadline, metrics, access log, last-resort 500.

A pure ASGI middleware (not Starlette's BaseHTTPMiddleware, which costs a
task and a queue per request). Every response carries ``X-Request-ID``; the
same id is in the access log line and in any error body, so a client's
report can be matched to the server's log.

Bodies are bounded three ways: each by ``max_body_bytes`` (413), all of them
together by the :class:`~mlpack.server.budget.ByteBudget` (wait, then 503),
and in time by ``body_timeout_s`` between two chunks (408). A client that
hangs up mid-request is counted with status 499 (nginx's "client closed
request"), not as a server error, and logged without a traceback.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from typing import Any, Awaitable, Callable

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from mlpack.server.budget import ByteBudget
from mlpack.server.codec import dumps
from mlpack.server.logs import AccessLog, server_logger
from mlpack.server.metrics import Metrics

__all__ = ["RequestEnvelope", "error_response", "request_id", "BodyTooLarge", "BodyTimeout", "JSON", "CLIENT_CLOSED"]

JSON = "application/json"
CLIENT_CLOSED = 499
_SAFE_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,64}$")


class BodyTooLarge(Exception):
    """Raised by the receive wrapper when a chunked body passes the limit."""


class BodyTimeout(Exception):
    """Raised by the receive wrapper when the client pauses too long inside a body."""


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
        budget: ByteBudget | None = None,
        body_timeout_s: float = 30.0,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body_bytes
        self.budget = budget or ByteBudget(max_body_bytes * 16, 10.0)
        self.body_timeout = body_timeout_s
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
        chunked = False
        for key, value in scope["headers"]:
            if key == b"x-request-id" and _SAFE_ID.match(value):
                rid = value.decode()
            elif key == b"content-length":
                length = value
            elif key == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
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
        held = 0
        try:
            if length is not None and (not length.isdigit() or int(length) > self.max_body):
                await self._too_large(scope, send_with_id, rid)
                return
            # What the body may cost: its length, or the whole limit when chunked.
            need = int(length) if length is not None else (self.max_body if chunked else 0)
            if need:
                granted = await self.budget.acquire(need)
                if granted is None:
                    # Read the refused body and drop it chunk by chunk (it costs no memory): a
                    # server that answers and closes with a body unread makes the client's
                    # kernel see a reset instead of the 503.
                    await _discard(self._timed(receive if length is not None else self._limited(receive)))
                    await self._busy(scope, send_with_id, rid)
                    return
                held = granted
            receive_ = self._timed(receive if length is not None else self._limited(receive)) if need else receive
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
        except BodyTimeout:
            if not status:
                await error_response(
                    408, f"the request body stalled for more than {self.body_timeout:g} s", rid,
                    hint="send the body without pauses", headers={"connection": "close"},
                )(scope, _no_body, send_with_id)
        except ClientDisconnect:
            # The client left; nothing can be answered and nothing failed here.
            status = status or CLIENT_CLOSED
            server_logger.info("client disconnected", extra={"request_id": rid, "path": scope.get("path")})
        except Exception:  # noqa: BLE001 - the client gets an id, the log gets the traceback
            server_logger.exception("unhandled error", extra={"request_id": rid, "path": scope.get("path")})
            if not status:
                await error_response(500, "internal server error", rid)(scope, receive, send_with_id)
        finally:
            if held:
                self.budget.release(held)
            metrics.in_flight -= 1
            seconds = time.perf_counter() - start
            metrics.request_done(self._endpoint(scope), scope["method"], status or 500, seconds)
            if self.access_log is not None:
                client = scope.get("client")
                self.access_log.record(
                    rid, scope["method"], scope["path"], status or 500, seconds, client[0] if client else "-"
                )

    async def _busy(self, scope: dict, send: Callable, rid: str) -> None:
        response = error_response(
            503,
            f"the server is holding as many request bytes as its memory allows ({self.budget.capacity} bytes); "
            f"this request waited {self.budget.wait_s:g} s",
            rid,
            hint="retry after a moment, send smaller requests, or give the container more memory",
            headers={"retry-after": "1"},
        )
        await response(scope, _no_body, send)

    def _timed(self, receive: Callable[[], Awaitable[dict]]) -> Callable[[], Awaitable[dict]]:
        """A receive that gives up when the body pauses longer than the body timeout."""
        done = False
        timeout = self.body_timeout

        async def timed() -> dict:
            nonlocal done
            if done:  # after the body, receive only waits for a disconnect: no deadline
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), timeout)
            except asyncio.TimeoutError:
                raise BodyTimeout() from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                done = True
            return message

        return timed

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


async def _discard(receive: Callable[[], Awaitable[dict]]) -> None:
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


async def _no_body() -> dict:
    return {"type": "http.request", "body": b"", "more_body": False}
