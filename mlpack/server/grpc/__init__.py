"""The Open Inference Protocol over gRPC, served beside the HTTP server in the same process.

:func:`attach` wraps an app's lifespan so that, once the app has started (model
loading under way), a second uvicorn server serves gRPC on ``config.grpc_port``
on the same event loop: HTTP/2 with prior knowledge (h2c) through zttp
(:mod:`~mlpack.server.grpc.h2`), the calls answered by the ASGI app of
:mod:`~mlpack.server.grpc.asgi`, sharing the HTTP app's model, micro-batcher,
validation and metrics. It stops, letting calls in flight finish, before the
model is closed. ``config.grpc_port`` 0 serves no gRPC. grpcio is not needed
to serve (only protobuf, for the messages); clients use what they like.
"""

from __future__ import annotations

import os
import socket
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from mlpack.errors import ServeError
from mlpack.server.config import ServerConfig

__all__ = ["attach", "start", "app_from_env", "GrpcServer"]


def address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listen_socket(host: str, port: int, *, shared_port: bool) -> socket.socket:
    """A bound TCP socket for the gRPC port; SO_REUSEPORT when worker processes share it."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if shared_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServeError(
            f"cannot listen for gRPC on {address(host, port)}: {exc.strerror or exc}",
            hint="another process may hold the port: choose --grpc-port, or 0 to serve no gRPC",
        ) from None
    return sock


class GrpcServer:
    """The running gRPC server: a uvicorn server on the caller's loop, over one listening socket."""

    def __init__(self, server: Any, sock: socket.socket, access_log: Any) -> None:
        self.server, self.sock, self.access_log = server, sock, access_log

    @property
    def connections(self) -> int:
        return len(self.server.server_state.connections)

    def begin_stop(self) -> None:
        """Stop accepting and retire every connection now (the calls in flight go on); :meth:`stop` waits."""
        for listener in getattr(self.server, "servers", ()):
            listener.close()
        for connection in list(self.server.server_state.connections):
            connection.shutdown()

    async def stop(self) -> None:
        """Stop accepting, retire every connection gracefully, wait for calls in flight (bounded)."""
        await self.server.shutdown(sockets=[self.sock])
        for connection in list(self.server.server_state.connections):  # past the grace: a client that never left
            connection.transport.close()
        if self.access_log is not None:
            self.access_log.flush()


async def start(state: Any, config: ServerConfig, *, shared_port: bool = False,
                sock: socket.socket | None = None) -> GrpcServer:
    """Start serving gRPC on the running loop (on ``sock``, bound by :func:`listen_socket`, or a
    socket bound now); ``await server.stop()`` ends it."""
    import uvicorn  # noqa: PLC0415 - the server's own dependency, loaded when serving

    from mlpack.server.grpc.asgi import GrpcApp  # noqa: PLC0415
    from mlpack.server.grpc.h2 import IDLE_TIMEOUT_S, GrpcH2Protocol  # noqa: PLC0415
    from mlpack.server.logs import AccessLog  # noqa: PLC0415
    from mlpack.server.routes import run_model  # noqa: PLC0415

    if sock is None:
        sock = listen_socket(config.host, config.grpc_port, shared_port=shared_port)
    access_log = AccessLog() if config.access_log else None
    app = GrpcApp(state, lambda runner, feeds, rid: run_model(state, runner, feeds, rid), access_log)
    server = uvicorn.Server(uvicorn.Config(
        app, http=GrpcH2Protocol, lifespan="off", interface="asgi3", log_config=None, access_log=False,
        proxy_headers=False, server_header=False, date_header=False, timeout_keep_alive=IDLE_TIMEOUT_S,
        timeout_graceful_shutdown=max(1, int(config.graceful_timeout_s + 0.999)),
    ))  # fmt: skip
    server.config.load()
    server.lifespan = server.config.lifespan_class(server.config)
    try:
        await server.startup(sockets=[sock])
    except BaseException:
        sock.close()
        raise
    return GrpcServer(server, sock, access_log)


def attach(app: Any, config: ServerConfig, *, shared_port: bool = False) -> Any:
    """Serve gRPC while ``app`` (from :func:`mlpack.server.create_app`) runs; returns ``app``."""
    if not config.grpc_port:
        return app
    try:
        import google.protobuf  # noqa: F401, PLC0415

        from mlpack.server.grpc import h2  # noqa: F401, PLC0415 - zttp, and a uvicorn that has its HTTP/2
    except ImportError as exc:
        # An image rendered from a bundle whose lock predates this server (grpcio, no zttp, an
        # older uvicorn) keeps serving HTTP.
        from mlpack.server.logs import server_logger  # noqa: PLC0415

        server_logger.warning(
            "no gRPC: this environment lacks zttp, uvicorn>=0.55 or protobuf (a bundle captured with an older mlpack:"
            " capture it again to serve gRPC)", extra={"error": str(exc)},
        )
        return app
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(the_app: Any) -> AsyncIterator[Any]:
        # The port first: a taken port stops the server before the model starts loading.
        sock = listen_socket(config.host, config.grpc_port, shared_port=shared_port)
        try:
            async with inner(the_app) as value:
                server = await start(app.state.mlpack, config, shared_port=shared_port, sock=sock)
                from mlpack.server.logs import server_logger  # noqa: PLC0415

                server_logger.info("grpc listening", extra={"address": address(config.host, config.grpc_port), "pid": os.getpid()})
                app.state.grpc = server
                try:
                    yield value
                finally:
                    await server.stop()
        finally:
            sock.close()  # again after stop() closed it: harmless

    app.router.lifespan_context = lifespan
    return app


def app_from_env() -> Any:
    """uvicorn's factory for worker processes: the app with gRPC on a shared port."""
    from mlpack.server.app import app_from_env as http_app  # noqa: PLC0415

    app = http_app()
    return attach(app, app.state.mlpack.config, shared_port=True)
