"""``inference.GRPCInferenceService`` over grpcio's asyncio server, on the HTTP server's loop.

The handlers read the same :class:`~mlpack.server.routes.ServerState` as the
REST routes: one model, one micro-batcher, one set of metrics, one access log
format. Errors are gRPC statuses: INVALID_ARGUMENT for a request the model
cannot take, NOT_FOUND for another model or version, UNAVAILABLE while the
model loads, RESOURCE_EXHAUSTED (grpcio's own) for a message over the body
limit. Only a model that fails on a valid request answers INTERNAL, as REST
answers 500.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any, Awaitable, Callable

import grpc
from google.protobuf import json_format
from google.protobuf.message import DecodeError

from mlpack.errors import ServeError
from mlpack.server.grpc.codec import decode_request, encode_response
from mlpack.server.grpc.messages import SERVICE, method_types
from mlpack.server.logs import AccessLog, server_logger
from mlpack.server.protocol import (
    MODEL_VERSION,
    model_config,
    model_metadata,
    model_statistics,
    repository_index,
    server_metadata,
)

__all__ = ["handlers", "STATUS_OF_HTTP"]

# A ServeError's HTTP status -> the gRPC status the protocol names for it.
STATUS_OF_HTTP = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    503: grpc.StatusCode.UNAVAILABLE,
}
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _runner(state: Any) -> Any:
    runner = state.runner
    if runner is None:
        if state.error:
            raise _Abort(grpc.StatusCode.UNAVAILABLE, f"model failed to load: {state.error}")
        raise _Abort(grpc.StatusCode.UNAVAILABLE, "model is still loading")
    return runner


def _model(state: Any, name: str, version: str) -> Any:
    runner = _runner(state)
    if name != runner.name:
        raise _Abort(grpc.StatusCode.NOT_FOUND, f"unknown model {name!r}; this server serves {runner.name!r}")
    if version not in ("", MODEL_VERSION):
        raise _Abort(grpc.StatusCode.NOT_FOUND, f"unknown version {version!r} of model {name!r}; it has version {MODEL_VERSION!r}")
    return runner


def handlers(state: Any, infer: Callable[[Any, dict, str], Awaitable[Any]], access_log: AccessLog | None) -> grpc.GenericRpcHandler:
    """The service's generic handler; ``infer(runner, feeds, request_id)`` runs the model as REST does."""
    types = method_types()

    def parsed(method: str, doc: Any) -> Any:
        return json_format.ParseDict(doc, types[method][1](), ignore_unknown_fields=True)

    async def server_live(request: Any, rid: str) -> Any:
        return types["ServerLive"][1](live=True)

    async def server_ready(request: Any, rid: str) -> Any:
        return types["ServerReady"][1](ready=state.runner is not None and not state.draining)

    async def model_ready(request: Any, rid: str) -> Any:
        _model(state, request.name, request.version)
        return types["ModelReady"][1](ready=not state.draining)

    async def server_meta(request: Any, rid: str) -> Any:
        return parsed("ServerMetadata", server_metadata())

    async def model_meta(request: Any, rid: str) -> Any:
        doc = model_metadata(_model(state, request.name, request.version))
        doc.pop("parameters", None)  # the gRPC message has no parameters field
        return parsed("ModelMetadata", doc)

    async def config(request: Any, rid: str) -> Any:
        return parsed("ModelConfig", {"config": model_config(_model(state, request.name, request.version))})

    async def statistics(request: Any, rid: str) -> Any:
        runner = _runner(state)
        if request.name:
            _model(state, request.name, request.version)
        return parsed("ModelStatistics", model_statistics(runner, state.metrics))

    async def index(request: Any, rid: str) -> Any:
        runner = state.runner
        name = runner.name if runner is not None else (state.config.model_name or "model")
        entries = repository_index(name, ready=runner is not None, reason=state.error or "")
        if request.ready:
            entries = [e for e in entries if e["state"] == "READY"]
        return parsed("RepositoryIndex", {"models": entries})

    async def model_infer(request: Any, rid: str) -> Any:
        runner = _model(state, request.model_name, request.model_version)
        try:
            decoded = decode_request(request, runner.inputs, runner.outputs, runner.table)
            outputs = await infer(runner, decoded.feeds, rid)
            return encode_response(types["ModelInfer"][1], outputs, decoded, model_name=runner.name)
        except ServeError as exc:
            status = int(getattr(exc, "status", 500) or 500)
            message = exc.message + (f" (hint: {exc.hint})" if exc.hint else "")
            raise _Abort(STATUS_OF_HTTP.get(status, grpc.StatusCode.INTERNAL), message) from None

    def wrap(method: str, fn: Callable[[Any, str], Awaitable[Any]], request_class: Any) -> Callable[[bytes, Any], Awaitable[Any]]:
        path = f"/{SERVICE}/{method}"
        counted = method == "ModelInfer"  # in-flight count drives the micro-batcher, as on REST

        async def handler(message: bytes, context: Any) -> Any:
            start = time.perf_counter()
            code = grpc.StatusCode.OK
            metrics = state.metrics
            rid = "-"
            if counted:
                metrics.in_flight += 1
            try:
                try:
                    request = request_class.FromString(message)
                except DecodeError:
                    raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"the request is not a valid {request_class.DESCRIPTOR.name}") from None
                if counted:
                    rid = request.id if _SAFE_ID.match(request.id) else os.urandom(8).hex()
                return await fn(request, rid)
            except _Abort as exc:
                code = exc.code
                await context.abort(exc.code, exc.message)
            except Exception as exc:  # noqa: BLE001 - never a traceback to the client
                code = grpc.StatusCode.INTERNAL
                server_logger.error("unhandled error", exc_info=exc, extra={"request_id": rid, "path": path})
                await context.abort(code, "internal server error")
            finally:
                if counted:
                    metrics.in_flight -= 1
                seconds = time.perf_counter() - start
                metrics.request_done(path, "GRPC", code.name, seconds)  # type: ignore[arg-type]
                if access_log is not None:
                    access_log.record(rid, "GRPC", path, code.value[0], seconds, _peer(context))

        return handler

    functions = {
        "ServerLive": server_live,
        "ServerReady": server_ready,
        "ModelReady": model_ready,
        "ServerMetadata": server_meta,
        "ModelMetadata": model_meta,
        "ModelInfer": model_infer,
        "ModelConfig": config,
        "ModelStatistics": statistics,
        "RepositoryIndex": index,
    }
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            # The request is parsed in the handler: grpcio answers a message that does
            # not parse with INTERNAL, where the protocol wants INVALID_ARGUMENT.
            name: grpc.unary_unary_rpc_method_handler(
                wrap(name, fn, types[name][0]), response_serializer=types[name][1].SerializeToString
            )
            for name, fn in functions.items()
        },
    )


def _peer(context: Any) -> str:
    peer = context.peer() or "-"
    # "ipv4:127.0.0.1:5555" -> "127.0.0.1"
    kind, _, rest = peer.partition(":")
    return rest.rsplit(":", 1)[0].strip("[]") if kind in ("ipv4", "ipv6") else peer
