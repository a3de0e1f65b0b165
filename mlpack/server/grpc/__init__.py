"""The Open Inference Protocol over gRPC, served beside the HTTP server in the same process.

:func:`attach` wraps an app's lifespan so that the gRPC server starts on the
same event loop once the app has started (model loading under way) and stops
before the model is closed. ``config.grpc_port`` 0 serves no gRPC.
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from mlpack.errors import ServeError
from mlpack.server.config import ServerConfig

__all__ = ["attach", "start", "app_from_env", "MAX_CONCURRENT_RPCS"]

# More concurrent calls than this are refused with RESOURCE_EXHAUSTED, not queued.
MAX_CONCURRENT_RPCS = 1024


def address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def start(state: Any, config: ServerConfig, *, shared_port: bool = False) -> Any:
    """Start the gRPC server on the running loop; returns it (``await server.stop(grace)``)."""
    from grpc import aio  # noqa: PLC0415 - only a server with gRPC on needs grpcio

    from mlpack.server.grpc.service import handlers  # noqa: PLC0415
    from mlpack.server.logs import AccessLog  # noqa: PLC0415
    from mlpack.server.routes import run_model  # noqa: PLC0415

    server = aio.server(
        options=[
            ("grpc.max_receive_message_length", config.max_body_bytes),
            ("grpc.max_send_message_length", -1),
            # Worker processes share the port; a lone server must fail on a taken port instead.
            ("grpc.so_reuseport", 1 if shared_port else 0),
        ],
        maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS,
    )
    access_log = AccessLog() if config.access_log else None
    server.add_generic_rpc_handlers(
        (handlers(state, lambda runner, feeds, rid: run_model(state, runner, feeds, rid), access_log),)
    )
    where = address(config.host, config.grpc_port)
    try:
        server.add_insecure_port(where)
    except RuntimeError:
        raise ServeError(
            f"cannot listen for gRPC on {where}",
            hint="another process may hold the port: choose --grpc-port, or 0 to serve no gRPC",
        ) from None
    await server.start()
    server.access_log = access_log
    return server


def attach(app: Any, config: ServerConfig, *, shared_port: bool = False) -> Any:
    """Serve gRPC while ``app`` (from :func:`mlpack.server.create_app`) runs; returns ``app``."""
    if not config.grpc_port:
        return app
    try:
        import grpc  # noqa: F401, PLC0415
        import google.protobuf  # noqa: F401, PLC0415
    except ImportError as exc:
        # An image built from a bundle captured before gRPC was served has no grpcio:
        # it keeps serving HTTP.
        from mlpack.server.logs import server_logger  # noqa: PLC0415

        server_logger.warning("no gRPC: grpcio is not installed", extra={"error": str(exc)})
        return app
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(the_app: Any) -> AsyncIterator[Any]:
        async with inner(the_app) as value:
            server = await start(app.state.mlpack, config, shared_port=shared_port)
            from mlpack.server.logs import server_logger  # noqa: PLC0415

            server_logger.info("grpc listening", extra={"address": address(config.host, config.grpc_port), "pid": os.getpid()})
            app.state.grpc = server
            try:
                yield value
            finally:
                await server.stop(config.graceful_timeout_s)
                if server.access_log is not None:
                    server.access_log.flush()

    app.router.lifespan_context = lifespan
    return app


def app_from_env() -> Any:
    """uvicorn's factory for worker processes: the app with gRPC on a shared port."""
    from mlpack.server.app import app_from_env as http_app  # noqa: PLC0415

    app = http_app()
    return attach(app, app.state.mlpack.config, shared_port=True)
