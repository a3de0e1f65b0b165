"""The endpoints: ``/predict``, the Open Inference Protocol (KServe V2), ``/metrics``.

Plain Starlette routes over raw requests: the body goes orjson -> numpy ->
model -> orjson without pydantic models in between (validation happens in
:mod:`mlpack.server.tensors`, the schema is published by
:mod:`mlpack.server.openapi`). The two inference endpoints are written as
:data:`~mlpack.server.http.FastHandler` replies (body in, status, body and
headers out), which the request envelope calls directly for the hot paths;
their Starlette endpoints (``.reply`` holds the handler) serve the rest.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route

from mlpack.errors import ServeError
from mlpack.server.codec import decode_predict, decode_v2, dumps, encode_predict, encode_v2, loads
from mlpack.server.config import ServerConfig
from mlpack.server.http import JSON, JSON_HEADERS, FastHandler, Reply, error_reply, error_response, request_id
from mlpack.server.logs import server_logger
from mlpack.server.metrics import Metrics, exposition
from mlpack.server.model import ModelRunner
from mlpack.server.protocol import (
    MODEL_VERSION,
    model_config,
    model_metadata,
    model_statistics,
    repository_index,
    server_metadata,
)
from mlpack.server.tensors import invalid

__all__ = ["ServerState", "build_routes", "run_model", "decoded_body", "reply_response"]

# Content-Encoding -> zlib wbits (deflate is the zlib format, RFC 9110; raw deflate is tried too).
_WBITS = {"gzip": 31, "x-gzip": 31, "deflate": 15}


@dataclass
class ServerState:
    """What the routes share: config, metrics, and the model once loaded."""

    config: ServerConfig
    metrics: Metrics = field(default_factory=Metrics)
    runner: ModelRunner | None = None
    error: str | None = None  # why loading failed, for readiness answers
    draining: bool = False


def _not_ready_reply(state: ServerState, rid: str) -> Reply:
    if state.error:
        return error_reply(503, f"model failed to load: {state.error}", rid, hint="see the server log; fix the bundle")
    return error_reply(503, "model is still loading", rid, headers={"Retry-After": "1"})


def _not_ready(state: ServerState, rid: str) -> Response:
    return reply_response(_not_ready_reply(state, rid))


def reply_response(reply: Reply) -> Response:
    """A :data:`~mlpack.server.http.Reply` as a Starlette response."""
    status, body, headers = reply
    response = Response(body, status_code=status)  # no media type: content-type comes from ``headers``
    response.raw_headers += headers
    return response


def _fast_endpoint(handler: FastHandler) -> Any:
    """The Starlette endpoint of a fast handler (``.reply`` is the handler, for the envelope's table)."""

    async def endpoint(request: Request) -> Response:
        body = await request.body()
        return reply_response(await handler(request.scope, body, request.headers.get("content-encoding"), request.path_params))

    endpoint.reply = handler  # type: ignore[attr-defined]
    endpoint.__name__ = handler.__name__
    return endpoint


async def run_model(state: ServerState, runner: ModelRunner, feeds: dict, rid: str) -> Any:
    """Run the model; unexpected failures become ServeError(500) after logging."""
    try:
        return await runner.infer(feeds)
    except ServeError as exc:
        if getattr(exc, "status", None) == 422:  # our own validation (hooks included)
            raise
        if getattr(exc, "hook", None):  # the hook's own words to the client, its traceback to the log
            server_logger.error(f"{exc.message}\n{exc.traceback}", extra={"request_id": rid, "error": exc.message})
            raise
        # The predictor wraps onnxruntime failures; on a request that passed
        # validation they are the server's problem, not the client's.
        server_logger.error("model run failed", extra={"request_id": rid, "error": exc.message})
        raise ServeError("the model failed on this request", status=500) from None
    except Exception as exc:  # noqa: BLE001 - never a traceback to the client
        server_logger.error(
            "model run failed", exc_info=exc, extra={"request_id": rid, "error": f"{type(exc).__name__}: {exc}"}
        )
        raise ServeError("the model failed on this request", status=500) from None


def decoded_body(body: bytes, coding: str | None, limit: int) -> bytes:
    """``body`` without its Content-Encoding; the size limit applies to the decoded bytes."""
    if coding is None:
        return body
    coding = coding.strip().lower()
    if coding in ("", "identity"):
        return body
    wbits = _WBITS.get(coding)
    if wbits is None:
        raise ServeError(f"unsupported Content-Encoding {coding!r}", status=415, hint="send gzip, deflate or identity")
    for bits in (wbits, -15) if coding == "deflate" else (wbits,):
        inflater = zlib.decompressobj(bits)
        try:
            out = inflater.decompress(body, limit + 1)
            break
        except zlib.error as exc:
            error = exc
    else:
        raise invalid(f"the {coding} request body does not decompress: {error}") from None
    if len(out) > limit:
        raise ServeError(
            f"request body is larger than the limit of {limit} bytes once decompressed",
            status=413,
            hint="send fewer rows per request or raise MLPACK_MAX_BODY_BYTES",
        )
    if not inflater.eof or inflater.unused_data:
        raise invalid(f"the {coding} request body is truncated or has trailing data")
    return out


def _ready_flag(body: bytes) -> bool:
    doc = loads(body)
    if not isinstance(doc, dict):
        raise invalid('the repository index request must be a JSON object such as {"ready": true}')
    ready = doc.get("ready", False)
    if type(ready) is not bool:
        raise invalid('"ready" must be true or false')
    return ready


def _serve_error(exc: ServeError, rid: str) -> Reply:
    status = int(getattr(exc, "status", 500) or 500)
    return error_reply(status, exc.message, rid, hint=exc.hint)


_OCTET_STREAM = b"application/octet-stream"


def _header(scope: dict, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def build_routes(state: ServerState) -> list[Route]:
    """The server's routes, closed over ``state``; ``.endpoint`` of each is the handler."""

    limit = state.config.max_body_bytes

    async def predict(scope: dict, body: bytes, coding: str | None, params: dict) -> Reply:
        rid = scope["mlpack.request_id"]
        runner = state.runner
        if runner is None:
            return _not_ready_reply(state, rid)
        try:
            decoded = decode_predict(decoded_body(body, coding, limit), runner.inputs, runner.outputs, runner.table)
            outputs = await run_model(state, runner, decoded.feeds, rid)
            return 200, encode_predict(outputs, decoded.outputs), JSON_HEADERS
        except ServeError as exc:
            return _serve_error(exc, rid)

    async def v2_infer(scope: dict, body: bytes, coding: str | None, params: dict) -> Reply:
        rid = scope["mlpack.request_id"]
        runner = state.runner
        if runner is None:
            return _not_ready_reply(state, rid)
        missing = _wrong_model_reply(params, runner, rid)
        if missing is not None:
            return missing
        try:
            decoded = decode_v2(
                decoded_body(body, coding, limit),
                _header(scope, b"inference-header-content-length"),
                runner.inputs,
                runner.outputs,
                runner.table,
            )
            outputs = await run_model(state, runner, decoded.feeds, rid)
            payload, header_len = encode_v2(outputs, decoded, model_name=runner.name, model_version=MODEL_VERSION)
        except ServeError as exc:
            return _serve_error(exc, rid)
        if header_len is None:
            return 200, payload, JSON_HEADERS
        return 200, payload, [(b"content-type", _OCTET_STREAM), (b"inference-header-content-length", b"%d" % header_len)]

    async def live(request: Request) -> Response:
        return Response(b'{"live":true}', media_type=JSON)

    async def ready(request: Request) -> Response:
        if state.runner is None or state.draining:
            if state.draining:
                return error_response(503, "server is shutting down", request_id(request.scope))
            return _not_ready(state, request_id(request.scope))
        return Response(b'{"ready":true}', media_type=JSON)

    async def server_meta(request: Request) -> Response:
        return Response(dumps(server_metadata()), media_type=JSON)

    def model_document(build: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            runner = state.runner
            if runner is None:
                return _not_ready(state, request_id(request.scope))
            missing = _wrong_model(request, runner, request_id(request.scope))
            if missing is not None:
                return missing
            return Response(dumps(build(runner)), media_type=JSON)

        return endpoint

    model_meta = model_document(model_metadata)
    config = model_document(model_config)
    model_stats = model_document(lambda runner: model_statistics(runner, state.metrics))
    model_ready = model_document(lambda runner: {"name": runner.name, "ready": True})

    async def all_stats(request: Request) -> Response:
        runner = state.runner
        if runner is None:
            return _not_ready(state, request_id(request.scope))
        return Response(dumps(model_statistics(runner, state.metrics)), media_type=JSON)

    async def index(request: Request) -> Response:
        runner = state.runner
        name = runner.name if runner is not None else (state.config.model_name or "model")
        entries = repository_index(name, ready=runner is not None, reason=state.error or "")
        try:
            body = await request.body()
            ready_only = bool(body) and _ready_flag(body)
        except ServeError as exc:
            return reply_response(_serve_error(exc, request_id(request.scope)))
        if ready_only:
            entries = [e for e in entries if e["state"] == "READY"]
        return Response(dumps(entries), media_type=JSON)

    async def unknown(request: Request) -> Response:
        rid = request_id(request.scope)
        allowed = sorted({m for r in known if r.matches(request.scope)[0] is not Match.NONE for m in r.methods or ()})
        if allowed:
            return error_response(
                405, f"{request.method} is not allowed on {request.url.path}", rid, headers={"Allow": ", ".join(allowed)}
            )
        return error_response(404, f"no route {request.url.path} in this server's Open Inference Protocol", rid)

    async def metrics(request: Request) -> Response:
        body, content_type = exposition(state.metrics, request.headers.get("accept", ""))
        return Response(body, media_type=content_type)

    v = "/v2/models/{model_name}"
    vv = v + "/versions/{model_version}"
    known = [
        Route("/predict", _fast_endpoint(predict), methods=["POST"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route("/v2", server_meta, methods=["GET"]),
        Route("/v2/models/stats", all_stats, methods=["GET"]),
        Route("/v2/repository/index", index, methods=["POST"]),
        Route(v, model_meta, methods=["GET"]),
        Route(vv, model_meta, methods=["GET"]),
        Route(v + "/ready", model_ready, methods=["GET"]),
        Route(vv + "/ready", model_ready, methods=["GET"]),
        Route(v + "/infer", _fast_endpoint(v2_infer), methods=["POST"]),
        Route(vv + "/infer", _fast_endpoint(v2_infer), methods=["POST"]),
        Route(v + "/config", config, methods=["GET"]),
        Route(vv + "/config", config, methods=["GET"]),
        Route(v + "/stats", model_stats, methods=["GET"]),
        Route(vv + "/stats", model_stats, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    # Anything else under /v2 answers the protocol's {"error": ...} (404, or 405 for a
    # known route and another method), not Starlette's {"detail": ...}.
    anything = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
    return known + [Route("/v2/{rest:path}", unknown, methods=anything), Route("/v2/", unknown, methods=anything)]


def _wrong_model_reply(params: dict, runner: ModelRunner, rid: str) -> Reply | None:
    name = params.get("model_name")
    if name != runner.name:
        return error_reply(404, f"unknown model {name!r}; this server serves {runner.name!r}", rid)
    version = params.get("model_version")
    if version is not None and version != MODEL_VERSION:
        return error_reply(404, f"unknown version {version!r} of model {name!r}; it has version {MODEL_VERSION!r}", rid)
    return None


def _wrong_model(request: Request, runner: ModelRunner, rid: str) -> Response | None:
    reply = _wrong_model_reply(request.path_params, runner, rid)
    return None if reply is None else reply_response(reply)
