"""The request envelope: request id, body limit and budget, read deadline, metrics, access log, last-resort 500.

A pure ASGI middleware (not Starlette's BaseHTTPMiddleware, which costs a
task and a queue per request). Every response carries ``X-Request-ID``; the
same id is in the access log line and in any error body, so a client's
report can be matched to the server's log.

Bodies are bounded three ways: each by ``max_body_bytes`` (413), all of them
together by the :class:`~mlpack.server.budget.ByteBudget` (wait, then 503),
and in time by ``body_timeout_s`` between two chunks (408; the reading is
:mod:`mlpack.server.bodies`). A client that hangs up mid-request is counted
with status 499 (nginx's "client closed request"), not as a server error, and
logged without a traceback.

The inference routes (``fast``: method and exact path -> :data:`FastHandler`)
are answered here with raw ASGI messages: the envelope reads the body itself
and the handler returns ``(status, body, headers)``, with no Starlette
request, response or router on the way (together they cost more than the
model run of a small model). Every other route goes through the app.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from typing import Any, Awaitable, Callable

from starlette.requests import ClientDisconnect
from starlette.responses import Response

from mlpack.server.bodies import BodyReader, BodyTimeout, BodyTooLarge, read_empty
from mlpack.server.budget import ByteBudget
from mlpack.server.codec import dumps
from mlpack.server.logs import AccessLog, server_logger
from mlpack.server.metrics import Metrics

__all__ = [
    "RequestEnvelope",
    "error_response",
    "error_reply",
    "request_id",
    "BodyTooLarge",
    "BodyTimeout",
    "JSON",
    "JSON_HEADERS",
    "CLIENT_CLOSED",
    "Reply",
    "FastHandler",
    "RequestIds",
]

JSON = "application/json"
JSON_HEADERS: list[tuple[bytes, bytes]] = [(b"content-type", b"application/json")]
CLIENT_CLOSED = 499
_SAFE_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,64}$")

# (status, body, headers): headers are raw ASGI pairs, content-type first; the
# envelope adds content-length and x-request-id.
Reply = tuple[int, bytes, list[tuple[bytes, bytes]]]
# handler(scope, body, content_encoding, path_params) -> Reply
FastHandler = Callable[[dict, bytes, "str | None", dict], Awaitable[Reply]]


def request_id(scope: dict) -> str:
    """The id of the request being handled (set by :class:`RequestEnvelope`)."""
    return scope.get("mlpack.request_id", "-")


class RequestIds:
    """Request ids for requests that bring none: a random per-process prefix and a counter.

    16 hex digits like a random id, unique within the process and, through the
    prefix, across worker processes and restarts; a counter costs a fifth of
    ``os.urandom`` per request. Ids label log lines, they are not secrets.
    """

    def __init__(self) -> None:
        prefix = os.urandom(4).hex()
        # Starting in [2**28, 2**31): eight hex digits for the next two billion requests at least.
        counter = itertools.count(0x10000000 + int.from_bytes(os.urandom(4), "big") % 0x70000000)
        self.next: Callable[[], str] = lambda: prefix + hex(next(counter))[2:]

    def __call__(self) -> str:
        return self.next()


def _error_body(message: str, rid: str, hint: str | None) -> bytes:
    body: dict[str, Any] = {"error": message, "request_id": rid}
    if hint:
        body["hint"] = hint
    return dumps(body)


def error_reply(status: int, message: str, rid: str, *, hint: str | None = None, headers: dict | None = None) -> Reply:
    """``{"error": message, "request_id": ..., "hint": ...}`` as a :data:`Reply`."""
    raw = [(b"content-type", b"application/json")]
    if headers:
        raw += [(k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in headers.items()]
    return status, _error_body(message, rid, hint), raw


def error_response(status: int, message: str, rid: str, *, hint: str | None = None, headers: dict | None = None) -> Response:
    """``{"error": message, "request_id": ..., "hint": ...}``; V2 clients read ``error``."""
    return Response(_error_body(message, rid, hint), status_code=status, media_type=JSON, headers=headers)


class _Status:
    """The status a slow-path response started with (filled in by the send wrapper)."""

    __slots__ = ("code", "send", "rid_header")

    def __init__(self, send: Callable, rid_header: tuple[bytes, bytes]) -> None:
        self.code = 0
        self.send = send
        self.rid_header = rid_header

    async def __call__(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            self.code = message["status"]
            message["headers"] = [*message.get("headers", ()), self.rid_header]
        await self.send(message)


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
        self._bodies = BodyReader(max_body_bytes, body_timeout_s)
        self._next_id = RequestIds().next
        # (method, exact path) -> (handler, path params, endpoint label): the
        # inference routes, answered without Starlette (see the module docstring).
        self.fast: dict[tuple[str, str], tuple[FastHandler, dict, str]] = {}

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
        coding = None
        for key, value in scope["headers"]:
            if key == b"content-length":
                length = value
            elif key == b"x-request-id" and _SAFE_ID.match(value):
                rid = value.decode()
            elif key == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif key == b"content-encoding" and coding is None:
                coding = value.decode("latin-1")
        if rid is None:
            rid = self._next_id()
        scope["mlpack.request_id"] = rid
        rid_header = (b"x-request-id", rid.encode())
        method = scope["method"]
        fast = self.fast.get((method, scope["path"]))
        slow: _Status | None = None
        status = 0
        metrics = self.metrics
        metrics.in_flight += 1
        held = 0
        try:
            # What the body may cost: its length, or the whole limit when chunked.
            if length is None:
                need = self.max_body if chunked else 0
            elif not length.isdigit() or (need := int(length)) > self.max_body:
                status = await self._reply(send, rid_header, self._too_large(rid))
                return
            if need:
                granted = await self.budget.acquire(need)
                if granted is None:
                    # Read the refused body and drop it chunk by chunk (it costs no memory): a
                    # server that answers and closes with a body unread makes the client's
                    # kernel see a reset instead of the 503.
                    await self._bodies.discard(receive, limited=length is None)
                    status = await self._reply(send, rid_header, self._busy(rid))
                    return
                held = granted
            if fast is None:
                slow = _Status(send, rid_header)
                receive_ = self._bodies.guarded(receive, limited=length is None) if need else receive
                await self.app(scope, receive_, slow)
                status = slow.code
            else:
                handler, params, _ = fast
                body = await self._bodies.read(receive, limited=length is None) if need else await read_empty(receive)
                reply = await handler(scope, body, coding, params)
                status = reply[0]  # set before sending: a failed send must not be answered twice
                await self._reply(send, rid_header, reply)
        except BodyTooLarge:
            if not (slow and slow.code):
                status = await self._reply(send, rid_header, self._too_large(rid))
        except BodyTimeout:
            if not (slow and slow.code):
                status = await self._reply(send, rid_header, error_reply(
                    408, f"the request body stalled for more than {self.body_timeout:g} s", rid,
                    hint="send the body without pauses", headers={"connection": "close"},
                ))
        except ClientDisconnect:
            # The client left; nothing can be answered and nothing failed here.
            status = (slow and slow.code) or CLIENT_CLOSED
            server_logger.info("client disconnected", extra={"request_id": rid, "path": scope.get("path")})
        except Exception:  # noqa: BLE001 - the client gets an id, the log gets the traceback
            server_logger.exception("unhandled error", extra={"request_id": rid, "path": scope.get("path")})
            if slow is not None and slow.code:
                status = slow.code
            elif not status:
                status = await self._reply(send, rid_header, error_reply(500, "internal server error", rid))
        finally:
            if held:
                self.budget.release(held)
            metrics.in_flight -= 1
            seconds = time.perf_counter() - start
            if not status:
                status = (slow and slow.code) or 500
            metrics.request_done(fast[2] if fast is not None else self._endpoint(scope), method, status, seconds)
            if self.access_log is not None:
                client = scope.get("client")
                self.access_log.record(rid, method, scope["path"], status, seconds, client[0] if client else "-")

    @staticmethod
    async def _reply(send: Callable, rid_header: tuple[bytes, bytes], reply: Reply) -> int:
        status, body, headers = reply
        await send({
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", b"%d" % len(body)), rid_header],
        })
        await send({"type": "http.response.body", "body": body})
        return status

    def _busy(self, rid: str) -> Reply:
        return error_reply(
            503,
            f"the server is holding as many request bytes as its memory allows ({self.budget.capacity} bytes); "
            f"this request waited {self.budget.wait_s:g} s",
            rid,
            hint="retry after a moment, send smaller requests, or give the container more memory",
            headers={"retry-after": "1"},
        )

    def _too_large(self, rid: str) -> Reply:
        return error_reply(
            413,
            f"request body is larger than the limit of {self.max_body} bytes",
            rid,
            hint="send fewer rows per request or raise MLPACK_MAX_BODY_BYTES",
        )
