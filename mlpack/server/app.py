"""The app factory: compose the routes, the request envelope and the model loader.

The model loads in a background thread when the app starts (ASGI lifespan),
so liveness answers at once while readiness and inference answer 503 until
the bundle is verified and the session is warm.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

from starlette.applications import Starlette

from mlpack.server.budget import ByteBudget, budget_for
from mlpack.server.cgroup import cpu_budget, memory_limit, size_pools
from mlpack.server.config import ServerConfig
from mlpack.server.http import RequestEnvelope
from mlpack.server.logs import AccessLog, server_logger
from mlpack.server.model import load_runner
from mlpack.server.openapi import openapi_document
from mlpack.server.connection import requests_in_server, set_header_timeout
from mlpack.server.docs import docs_routes
from mlpack.server.routes import ServerState, build_routes

__all__ = ["create_app", "app_from_env"]


def create_app(bundle: str | Path | Any | None = None, config: ServerConfig | None = None) -> Starlette:
    """An ASGI app serving ``bundle`` (a directory, or a loaded Bundle).

    Nothing is loaded until the app's lifespan starts (uvicorn, or entering
    ``TestClient(app)``); ``app.state.mlpack`` is the :class:`ServerState`.
    """
    config = config or ServerConfig()
    source: Any = bundle if bundle is not None else config.bundle
    state = ServerState(config=config)
    ready = threading.Event()
    access_log = AccessLog() if config.access_log else None

    def in_server() -> int:
        # Requests in the middleware, or read by uvicorn and not yet there (their
        # tasks wait for the loop): the batcher's "is anyone else here".
        return max(state.metrics.in_flight, requests_in_server())

    def load() -> None:
        start = time.perf_counter()
        try:
            budget = cpu_budget()
            _, threads = size_pools(budget.cpus, workers=1, threads=config.threads)
            runner = load_runner(source, config=config, metrics=state.metrics, threads=threads, in_flight=in_server)
        except Exception as exc:  # noqa: BLE001 - reported through readiness and the log
            state.error = f"{type(exc).__name__}: {exc}"
            server_logger.error("model failed to load", exc_info=exc, extra={"bundle": str(source)})
        else:
            route_inference(runner.name)
            state.runner = runner
            state.metrics.ready = 1
            state.metrics.load_seconds = time.perf_counter() - start
            server_logger.info(
                "model ready",
                extra={
                    "model": runner.name,
                    "flavor": runner.flavor,
                    "threads": runner.threads,
                    "cpu_quota": budget.quota,
                    "batching": runner.batcher is not None,
                    "inline": runner.inline,
                    "load_s": round(state.metrics.load_seconds, 3),
                    "pid": os.getpid(),
                },
            )
        finally:
            ready.set()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        ready.clear()
        threading.Thread(target=load, name="mlpack-load", daemon=True).start()
        try:
            yield
        finally:
            state.draining = True
            state.metrics.ready = 0
            if access_log is not None:
                access_log.flush()
            loop = asyncio.get_running_loop()
            # A startup that failed (or a stop) while the model loads: let the loader finish
            # (bounded) rather than exit with its thread inside onnxruntime, which aborts
            # the process ("terminate called without an active exception") instead of exiting.
            await loop.run_in_executor(None, ready.wait, config.graceful_timeout_s)
            if state.runner is not None:
                await loop.run_in_executor(None, state.runner.close)

    # Starlette, not FastAPI: nothing here needs pydantic; /docs and /openapi.json come from docs.py.
    app = _ServerApp(lifespan=lifespan)
    routes = build_routes(state)
    inflight = config.max_inflight_bytes or budget_for(memory_limit(), config.max_body_bytes, config.workers or 1)
    set_header_timeout(config.header_timeout_s)
    # Ours first: a request to /predict should not be matched against /docs first.
    app.router.routes[:0] = routes
    envelope = RequestEnvelope(
        app.router,  # replaced by the inner app when Starlette builds the middleware stack
        metrics=state.metrics,
        max_body_bytes=config.max_body_bytes,
        access_log=access_log,
        routes=lambda: app.router.routes,
        budget=ByteBudget(inflight, config.body_wait_s),
        body_timeout_s=config.body_timeout_s,
    )
    # The inference routes skip Starlette: the envelope calls their handlers (``.reply``) itself.
    endpoints = {(m, r.path): r.endpoint for r in routes for m in (r.methods or ())}
    predict, infer, infer_v = "/predict", "/v2/models/{model_name}/infer", "/v2/models/{model_name}/versions/{model_version}/infer"
    envelope.fast[("POST", predict)] = (endpoints[("POST", predict)].reply, {}, predict)

    def route_inference(name: str) -> None:
        envelope.fast[("POST", f"/v2/models/{name}/infer")] = (endpoints[("POST", infer)].reply, {"model_name": name}, infer)
        envelope.fast[("POST", f"/v2/models/{name}/versions/1/infer")] = (
            endpoints[("POST", infer_v)].reply, {"model_name": name, "model_version": "1"}, infer_v
        )

    app.add_middleware(_bind, envelope=envelope)  # type: ignore[arg-type]
    app.envelope = envelope

    schema: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        runner = state.runner
        if runner is None:  # not loaded yet: the document without a model schema
            return openapi_document(name=config.model_name or "model", inputs=[], outputs=[], sample=None)
        if not schema:
            schema.update(openapi_document(
                name=runner.name, inputs=runner.inputs, outputs=runner.outputs, sample=runner.sample, table=runner.table
            ))
        return schema

    app.router.routes.extend(docs_routes(openapi))
    app.openapi = openapi  # type: ignore[attr-defined]
    app.state.mlpack = state
    app.state.loaded = ready
    return app


class _ServerApp(Starlette):
    """Starlette whose HTTP requests enter the request envelope directly.

    Starlette's outermost ServerErrorMiddleware would wrap every request's
    ``send`` in one more closure for a last-resort 500 that the envelope
    already answers (with the request id), so HTTP skips it once the
    middleware stack is built; lifespan and the rest go through Starlette.
    """

    envelope: RequestEnvelope

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.middleware_stack is not None:
            scope["app"] = self
            await self.envelope(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _bind(app: Any, *, envelope: RequestEnvelope) -> RequestEnvelope:
    """Middleware factory: Starlette calls it with the inner app when it builds the stack."""
    envelope.app = app
    return envelope


def app_from_env() -> Starlette:
    """Factory for uvicorn worker processes: the config comes from ``MLPACK_*`` variables."""
    return create_app(config=ServerConfig.from_env(os.environ))
