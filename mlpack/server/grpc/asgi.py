"""gRPC's unary calls as an ASGI app over HTTP/2 (grpc/doc/PROTOCOL-HTTP2.md).

``POST /inference.GRPCInferenceService/<Method>`` with ``content-type:
application/grpc`` (or ``application/grpc+proto``) and one length-prefixed
message; the answer is HTTP 200, ``content-type: application/grpc``, one
message, then trailers ``grpc-status`` and ``grpc-message`` (percent-encoded).
An error is answered Trailers-Only (one HEADERS frame) where the server offers
the ``mlpack.trailers_only`` extension (:mod:`mlpack.server.grpc.h2` does),
else as headers and trailers without a message. Where the server offers the
``mlpack.unary`` extension (h2 does), a whole successful answer goes in one
``http.response.start`` message carrying ``mlpack.body`` and
``mlpack.trailers``: one ASGI send, not three, on a call's hot path.

Rules, each as grpc's servers do unless said: a request that is not a POST is
HTTP 405; another content type HTTP 415; another content subtype (``+json``)
UNIMPLEMENTED; an unknown method or service UNIMPLEMENTED; ``grpc-encoding``
identity, gzip or deflate, another UNIMPLEMENTED with ``grpc-accept-encoding``;
``grpc-timeout`` bounds reading, validating and running (DEADLINE_EXCEEDED);
a message over ``max_body_bytes`` (declared, received, or decompressed) is
RESOURCE_EXHAUSTED as soon as its prefix says so, without reading the rest;
badly framed bodies are INVALID_ARGUMENT (see :mod:`~mlpack.server.grpc.wire`);
more than ``max_concurrent`` calls at once RESOURCE_EXHAUSTED. A client that
cancels (RST_STREAM) ends its call as CANCELLED in the metrics and access log.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable

from mlpack.server.grpc.service import Method, methods
from mlpack.server.grpc.wire import (
    ACCEPT_ENCODING,
    RpcError,
    Status,
    declared_length,
    encoding_of,
    frame,
    percent_encode,
    timeout_seconds,
    unframe,
)
from mlpack.server.logs import AccessLog, server_logger

__all__ = ["GrpcApp", "MAX_CONCURRENT_RPCS"]

# More concurrent calls than this are refused with RESOURCE_EXHAUSTED, not queued.
MAX_CONCURRENT_RPCS = 1024
TRAILERS_ONLY = "mlpack.trailers_only"
UNARY = "mlpack.unary"
_RID = "mlpack.request_id"  # the scope key of a call's request id, once its message is read

_GRPC = (b"content-type", b"application/grpc")
_OK_TRAILERS = [(b"grpc-status", b"0")]
_START_OK = {"type": "http.response.start", "status": 200, "headers": [_GRPC], "trailers": True}
_NAME = {code: code.name for code in Status}  # an IntEnum's .name is a property lookup per call


class _Cancelled(Exception):
    """The client reset the stream (or the connection went) before the request was read."""


class GrpcApp:
    """The ASGI app serving ``state``'s model over gRPC; ``infer(runner, feeds, rid)`` runs it."""

    def __init__(self, state: Any, infer: Callable[[Any, dict, str], Awaitable[Any]], access_log: AccessLog | None,
                 *, max_concurrent: int = MAX_CONCURRENT_RPCS) -> None:
        self.state = state
        self.methods: dict[str, Method] = methods(state, infer)
        self.access_log = access_log
        self.limit = state.config.max_body_bytes
        self.max_concurrent = max_concurrent
        self.in_flight = 0

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]], send: Callable[[dict], Awaitable[None]]) -> None:
        if scope["type"] != "http":  # no lifespan: the HTTP app's lifespan owns the model
            return
        headers = scope["headers"]
        if scope["method"] != "POST":
            await _plain(send, 405, b"gRPC calls are POST requests", [(b"allow", b"POST")])
            return
        content_type = encoding = timeout = None
        for name, value in headers:
            if name == b"content-type":
                content_type = value
            elif name == b"grpc-encoding":
                encoding = value
            elif name == b"grpc-timeout":
                timeout = value
        if content_type is None or not content_type.startswith(b"application/grpc"):
            await _plain(send, 415, b"gRPC requests have content-type application/grpc", [])
            return
        start = time.perf_counter()
        method = self.methods.get(scope["path"])
        code, response = Status.OK, b""
        counted = method is not None and method.counted
        self.in_flight += 1
        if counted:
            self.state.metrics.in_flight += 1
        try:
            try:
                if timeout is None:
                    response = await self._call(method, content_type, encoding, receive, scope)
                else:
                    async with asyncio.timeout(timeout_seconds(timeout)):
                        response = await self._call(method, content_type, encoding, receive, scope)
            except TimeoutError:
                raise RpcError(Status.DEADLINE_EXCEEDED, "the call's grpc-timeout passed") from None
        except RpcError as exc:
            code = exc.code
            await _error(send, scope, exc)
        except _Cancelled:
            code = Status.CANCELLED
        except Exception as exc:  # noqa: BLE001 - never a traceback to the client
            code = Status.INTERNAL
            server_logger.error("unhandled error", exc_info=exc, extra={"request_id": scope.get(_RID, "-"), "path": scope["path"]})
            await _error(send, scope, RpcError(code, "internal server error"))
        else:
            if UNARY in scope.get("extensions", ()):
                await send({"type": "http.response.start", "status": 200, "headers": [_GRPC], "trailers": True,
                            "mlpack.body": frame(response), "mlpack.trailers": _OK_TRAILERS})
            else:
                await send(_START_OK)
                await send({"type": "http.response.body", "body": frame(response), "more_body": False})
                await send({"type": "http.response.trailers", "headers": _OK_TRAILERS, "more_trailers": False})
        finally:
            self.in_flight -= 1
            if counted:
                self.state.metrics.in_flight -= 1
            if code is Status.OK and _gone(scope):
                code = Status.CANCELLED
            seconds = time.perf_counter() - start
            endpoint = method.path if method is not None else "unmatched"
            self.state.metrics.request_done(endpoint, "GRPC", _NAME[code], seconds)
            if self.access_log is not None:
                client = scope.get("client")
                self.access_log.record(scope.get(_RID, "-"), "GRPC", scope["path"], code.value, seconds, client[0] if client else "-")

    async def _call(self, method: Method | None, content_type: bytes, encoding: bytes | None,
                    receive: Callable[[], Awaitable[dict]], scope: dict) -> bytes:
        """The serialized response of one call (its request id put in the scope); RpcError for any other end."""
        if method is None:
            service, _, name = scope["path"].lstrip("/").partition("/")
            if service == "inference.GRPCInferenceService":
                raise RpcError(Status.UNIMPLEMENTED, f"unknown method {name!r} of service {service}")
            raise RpcError(Status.UNIMPLEMENTED, f"unknown service {service!r}; this server serves inference.GRPCInferenceService")
        subtype = content_type[len(b"application/grpc"):]
        if subtype not in (b"", b"+proto") and not subtype.startswith((b";", b"+proto;")):
            raise RpcError(Status.UNIMPLEMENTED, f"content-type {content_type.decode('latin-1')!r}: only protobuf messages are served (application/grpc+proto)")
        coding = "identity" if encoding is None else encoding_of(encoding)
        if coding is None:
            raise RpcError(Status.UNIMPLEMENTED, f"grpc-encoding {encoding.decode('latin-1')[:32]!r} is not supported")  # type: ignore[union-attr]
        if self.in_flight > self.max_concurrent:
            raise RpcError(Status.RESOURCE_EXHAUSTED, f"the server is serving {self.max_concurrent} calls; retry later")
        request = method.parse(unframe(await self._body(receive), coding, self.limit))
        rid = scope[_RID] = method.request_id(request)
        return await method.call(request, rid)

    async def _body(self, receive: Callable[[], Awaitable[dict]]) -> bytes:
        """The request body, refused (RESOURCE_EXHAUSTED) as soon as it is known to pass the limit."""
        message = await receive()
        if message["type"] != "http.request":
            raise _Cancelled
        body = message.get("body", b"")
        if not message.get("more_body", False):
            return body  # unframe checks it
        chunks = [body]
        size = len(body)
        need = -1  # 5 + the declared length, once the prefix is in
        while True:
            if need < 0 and size >= 5:
                need = 5 + declared_length(b"".join(chunks)[:5], self.limit)
            if need >= 0 and size > need:  # so never more than the limit is held
                raise RpcError(Status.INVALID_ARGUMENT, "the request body has bytes after its message (a unary request carries one message)")
            message = await receive()
            if message["type"] != "http.request":
                raise _Cancelled
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _gone(scope: dict) -> bool:
    extension = scope.get("extensions", {}).get(TRAILERS_ONLY)
    return extension is not None and extension["disconnected"]()


async def _plain(send: Callable[[dict], Awaitable[None]], status: int, text: bytes, headers: list) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), *headers]})
    await send({"type": "http.response.body", "body": text, "more_body": False})


async def _error(send: Callable[[dict], Awaitable[None]], scope: dict, exc: RpcError) -> None:
    status = [(b"grpc-status", b"%d" % exc.code), (b"grpc-message", percent_encode(exc.message))]
    if exc.code is Status.UNIMPLEMENTED and exc.message.startswith("grpc-encoding"):
        status.append((b"grpc-accept-encoding", ACCEPT_ENCODING))
    if TRAILERS_ONLY in scope.get("extensions", {}):
        await send({"type": "http.response.start", "status": 200, "headers": [_GRPC, *status], "trailers_only": True})
        return
    await send({"type": "http.response.start", "status": 200, "headers": [_GRPC], "trailers": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})
    await send({"type": "http.response.trailers", "headers": status, "more_trailers": False})
