"""The endpoints: ``/predict``, the Open Inference Protocol (KServe V2), ``/metrics``.

Plain Starlette routes over raw requests: the body goes orjson -> numpy ->
model -> orjson without pydantic models in between (validation happens in
:mod:`mlpack.server.tensors`, the schema is published by
:mod:`mlpack.server.openapi`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlpack import __version__
from mlpack.errors import ServeError
from mlpack.server.codec import decode_predict, decode_v2, dumps, encode_predict, encode_v2
from mlpack.server.config import ServerConfig
from mlpack.server.http import JSON, error_response, request_id
from mlpack.server.logs import server_logger
from mlpack.server.metrics import CONTENT_TYPE, Metrics
from mlpack.server.model import ModelRunner

__all__ = ["ServerState", "build_routes"]

MODEL_VERSION = "1"


@dataclass
class ServerState:
    """What the routes share: config, metrics, and the model once loaded."""

    config: ServerConfig
    metrics: Metrics = field(default_factory=Metrics)
    runner: ModelRunner | None = None
    error: str | None = None  # why loading failed, for readiness answers
    draining: bool = False


def _not_ready(state: ServerState, rid: str) -> Response:
    if state.error:
        return error_response(503, f"model failed to load: {state.error}", rid, hint="see the server log; fix the bundle")
    return error_response(503, "model is still loading", rid, headers={"Retry-After": "1"})


async def _infer(state: ServerState, runner: ModelRunner, feeds: dict, rid: str) -> Any:
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


def _serve_error(exc: ServeError, rid: str) -> Response:
    status = int(getattr(exc, "status", 500) or 500)
    return error_response(status, exc.message, rid, hint=exc.hint)


def build_routes(state: ServerState) -> list[Route]:
    """The server's routes, closed over ``state``; ``.endpoint`` of each is the handler."""

    async def predict(request: Request) -> Response:
        rid = request_id(request.scope)
        runner = state.runner
        if runner is None:
            return _not_ready(state, rid)
        try:
            decoded = decode_predict(await request.body(), runner.inputs, runner.outputs)
            outputs = await _infer(state, runner, decoded.feeds, rid)
            return Response(encode_predict(outputs, decoded.outputs), media_type=JSON)
        except ServeError as exc:
            return _serve_error(exc, rid)

    async def v2_infer(request: Request) -> Response:
        rid = request_id(request.scope)
        runner = state.runner
        if runner is None:
            return _not_ready(state, rid)
        missing = _wrong_model(request, runner, rid)
        if missing is not None:
            return missing
        try:
            decoded = decode_v2(
                await request.body(),
                request.headers.get("inference-header-content-length"),
                runner.inputs,
                runner.outputs,
            )
            outputs = await _infer(state, runner, decoded.feeds, rid)
            body, header_len = encode_v2(outputs, decoded, model_name=runner.name, model_version=MODEL_VERSION)
        except ServeError as exc:
            return _serve_error(exc, rid)
        if header_len is None:
            return Response(body, media_type=JSON)
        return Response(
            body, media_type="application/octet-stream", headers={"Inference-Header-Content-Length": str(header_len)}
        )

    async def live(request: Request) -> Response:
        return Response(b'{"live":true}', media_type=JSON)

    async def ready(request: Request) -> Response:
        if state.runner is None or state.draining:
            if state.draining:
                return error_response(503, "server is shutting down", request_id(request.scope))
            return _not_ready(state, request_id(request.scope))
        return Response(b'{"ready":true}', media_type=JSON)

    async def server_metadata(request: Request) -> Response:
        return Response(dumps({"name": "mlpack", "version": __version__, "extensions": ["binary_tensor_data"]}), media_type=JSON)

    async def model_metadata(request: Request) -> Response:
        runner = state.runner
        if runner is None:
            return _not_ready(state, request_id(request.scope))
        missing = _wrong_model(request, runner, request_id(request.scope))
        if missing is not None:
            return missing
        doc = {
            "name": runner.name,
            "versions": [MODEL_VERSION],
            "platform": "onnxruntime_onnx" if runner.flavor == "onnx" else f"mlpack_{runner.flavor}",
            "inputs": [{"name": s.name, "datatype": s.datatype, "shape": s.v2_shape()} for s in runner.inputs],
            "outputs": [{"name": s.name, "datatype": s.datatype, "shape": s.v2_shape()} for s in runner.outputs],
        }
        return Response(dumps(doc), media_type=JSON)

    async def model_ready(request: Request) -> Response:
        runner = state.runner
        if runner is None:
            return _not_ready(state, request_id(request.scope))
        missing = _wrong_model(request, runner, request_id(request.scope))
        if missing is not None:
            return missing
        return Response(dumps({"name": runner.name, "ready": True}), media_type=JSON)

    async def metrics(request: Request) -> Response:
        return Response(state.metrics.expose(), media_type=CONTENT_TYPE)

    v = "/v2/models/{model_name}"
    vv = v + "/versions/{model_version}"
    return [
        Route("/predict", predict, methods=["POST"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route("/v2", server_metadata, methods=["GET"]),
        Route(v, model_metadata, methods=["GET"]),
        Route(vv, model_metadata, methods=["GET"]),
        Route(v + "/ready", model_ready, methods=["GET"]),
        Route(vv + "/ready", model_ready, methods=["GET"]),
        Route(v + "/infer", v2_infer, methods=["POST"]),
        Route(vv + "/infer", v2_infer, methods=["POST"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]


def _wrong_model(request: Request, runner: ModelRunner, rid: str) -> Response | None:
    params = request.path_params
    name = params.get("model_name")
    if name != runner.name:
        return error_response(404, f"unknown model {name!r}; this server serves {runner.name!r}", rid)
    version = params.get("model_version")
    if version is not None and version != MODEL_VERSION:
        return error_response(404, f"unknown version {version!r} of model {name!r}; it has version {MODEL_VERSION!r}", rid)
    return None
