"""The methods of ``inference.GRPCInferenceService``: request message in, response message out.

The methods read the same :class:`~mlpack.server.routes.ServerState` as the
REST routes: one model, one micro-batcher, one set of metrics. Errors are gRPC
statuses (:class:`~mlpack.server.grpc.wire.RpcError`): INVALID_ARGUMENT for a
request the model cannot take (a message that does not parse included, where
grpc's servers say INTERNAL), NOT_FOUND for another model or version,
UNAVAILABLE while the model loads, RESOURCE_EXHAUSTED for a message over the
body limit. Only a model that fails on a valid request answers INTERNAL, as
REST answers 500. :mod:`mlpack.server.grpc.asgi` carries them over HTTP/2.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from google.protobuf import json_format
from google.protobuf.message import DecodeError

from mlpack.errors import ServeError
from mlpack.server.grpc.codec import decode_request, encode_response
from mlpack.server.grpc.messages import SERVICE, method_types
from mlpack.server.grpc.wire import STATUS_OF_HTTP, RpcError, Status
from mlpack.server.http import RequestIds
from mlpack.server.protocol import (
    MODEL_VERSION,
    model_config,
    model_metadata,
    model_statistics,
    repository_index,
    server_metadata,
)

__all__ = ["Method", "methods"]

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def _runner(state: Any) -> Any:
    runner = state.runner
    if runner is None:
        if state.error:
            raise RpcError(Status.UNAVAILABLE, f"model failed to load: {state.error}")
        raise RpcError(Status.UNAVAILABLE, "model is still loading")
    return runner


def _model(state: Any, name: str, version: str) -> Any:
    runner = _runner(state)
    if name != runner.name:
        raise RpcError(Status.NOT_FOUND, f"unknown model {name!r}; this server serves {runner.name!r}")
    if version not in ("", MODEL_VERSION):
        raise RpcError(Status.NOT_FOUND, f"unknown version {version!r} of model {name!r}; it has version {MODEL_VERSION!r}")
    return runner


@dataclass(frozen=True)
class Method:
    """One method: its path (``/inference.GRPCInferenceService/Name``), request class, and
    ``call(request, request_id) -> the serialized response message``; ``counted``: an inference, whose
    request id comes from the message and whose calls in flight drive the micro-batcher."""

    name: str
    path: str
    request_class: Any
    call: Callable[[Any, str], Awaitable[bytes]]
    counted: bool
    new_id: Callable[[], str]  # a request id for an inference that brings none (the HTTP server's kind)

    def parse(self, message: bytes) -> Any:
        """The request message; INVALID_ARGUMENT when ``message`` does not parse."""
        try:
            return self.request_class.FromString(message)
        except DecodeError:
            raise RpcError(Status.INVALID_ARGUMENT, f"the request is not a valid {self.request_class.DESCRIPTOR.name}") from None

    def request_id(self, request: Any) -> str:
        if not self.counted:
            return "-"
        given = request.id
        return given if given and _SAFE_ID.match(given) else self.new_id()


def methods(state: Any, infer: Callable[[Any, dict, str], Awaitable[Any]]) -> dict[str, Method]:
    """The service's methods by path; ``infer(runner, feeds, request_id)`` runs the model as REST does."""
    types = method_types()
    new_id = RequestIds()

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
            return encode_response(types["ModelInfer"][1], outputs, decoded, model_name=runner.name)  # serialized
        except ServeError as exc:
            status = int(getattr(exc, "status", 500) or 500)
            message = exc.message + (f" (hint: {exc.hint})" if exc.hint else "")
            raise RpcError(STATUS_OF_HTTP.get(status, Status.INTERNAL), message) from None

    def serialized(fn: Callable[[Any, str], Awaitable[Any]]) -> Callable[[Any, str], Awaitable[bytes]]:
        async def call(request: Any, rid: str) -> bytes:
            return (await fn(request, rid)).SerializeToString()

        return call

    functions = {
        "ServerLive": serialized(server_live),
        "ServerReady": serialized(server_ready),
        "ModelReady": serialized(model_ready),
        "ServerMetadata": serialized(server_meta),
        "ModelMetadata": serialized(model_meta),
        "ModelInfer": model_infer,
        "ModelConfig": serialized(config),
        "ModelStatistics": serialized(statistics),
        "RepositoryIndex": serialized(index),
    }
    return {
        f"/{SERVICE}/{name}": Method(
            name, f"/{SERVICE}/{name}", types[name][0], fn, counted=name == "ModelInfer", new_id=new_id
        )
        for name, fn in functions.items()
    }
