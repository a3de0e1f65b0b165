"""``mlpack-serve``: the image's entry point (also ``python -m mlpack.server``).

Flags mirror :class:`ServerConfig` fields; unset flags fall back to
``MLPACK_*`` variables, then to the defaults. Workers and onnxruntime threads
are sized from the cgroup CPU quota. SIGTERM stops accepting connections and
lets in-flight requests finish within ``--graceful-timeout-s``.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import threading
from dataclasses import fields
from typing import Sequence

from mlpack.errors import MlpackError
from mlpack.server.cgroup import cpu_budget, size_pools
from mlpack.server.config import ServerConfig, field_kind
from mlpack.server.logs import server_logger, setup_logging, uvicorn_log_config

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    """The ``mlpack-serve`` argument parser, one flag per config field."""
    p = argparse.ArgumentParser(prog="mlpack-serve", description="Serve an mlpack bundle over HTTP (REST + KServe V2) and gRPC (KServe V2).")
    for f in fields(ServerConfig):
        flag = "--" + f.name.replace("_", "-")
        kind = field_kind(f)
        help_text = f"{f.metadata.get('help', '')} [env MLPACK_{f.name.upper()}]"
        if kind is bool:
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            p.add_argument(flag, dest=f.name, type=kind, default=None, help=help_text)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags, size the pools, and run uvicorn until SIGTERM/SIGINT."""
    args = parser().parse_args(argv)
    try:
        config = ServerConfig.from_env(os.environ, **vars(args))
    except MlpackError as exc:
        print(f"mlpack-serve: {exc}", file=sys.stderr)
        return 2
    setup_logging(config.log_level)
    budget = cpu_budget()
    workers, threads = size_pools(budget.cpus, workers=config.workers, threads=config.threads)
    config = config.replace(workers=workers, threads=threads)
    server_logger.info(
        "starting",
        extra={
            "bundle": config.bundle,
            "host": config.host,
            "port": config.port,
            "grpc_port": config.grpc_port,
            "workers": workers,
            "threads": threads,
            "cpu_quota": budget.quota,
            "cpu_affinity": budget.affinity,
            "batching": config.batching,
        },
    )
    import uvicorn  # noqa: PLC0415 - only the entry point needs it

    from mlpack.server.connection import HeaderDeadlineProtocol  # noqa: PLC0415 - imports uvicorn

    common = dict(
        host=config.host,
        port=config.port,
        log_config=uvicorn_log_config(config.log_level),
        access_log=False,
        server_header=False,
        http=HeaderDeadlineProtocol,
        lifespan="on",
        timeout_graceful_shutdown=max(1, math.ceil(config.graceful_timeout_s)),
    )
    if workers > 1:
        # Worker processes rebuild the config from the environment.
        os.environ.update(config.to_env())
        uvicorn.run("mlpack.server.grpc:app_from_env", factory=True, workers=workers, **common)
        return 0

    from mlpack.server.app import create_app  # noqa: PLC0415
    from mlpack.server.grpc import attach  # noqa: PLC0415

    app = attach(create_app(config=config), config)
    server = _graceful_server(uvicorn.Config(app, **common))
    failed = threading.Event()

    def exit_if_load_fails() -> None:
        # A container whose model cannot load should stop (and be restarted or
        # reported) rather than answer 503 forever.
        app.state.loaded.wait()
        if app.state.mlpack.error:
            failed.set()
            server.should_exit = True

    threading.Thread(target=exit_if_load_fails, name="mlpack-load-watch", daemon=True).start()
    server.run()  # a failed startup (the gRPC port taken, say) exits with uvicorn's status 3
    return 1 if failed.is_set() else 0


def _graceful_server(config: object) -> object:
    """A uvicorn Server whose SIGTERM shutdown, once complete, exits with status 0."""
    import contextlib

    import uvicorn

    class GracefulServer(uvicorn.Server):
        async def shutdown(self, sockets=None):  # type: ignore[no-untyped-def,override]
            # gRPC clients are told to go (GOAWAY) as HTTP stops accepting, not once HTTP has drained.
            state = getattr(getattr(self.config, "app", None), "state", None)
            grpc_server = getattr(state, "grpc", None) if state is not None else None
            if grpc_server is not None:
                grpc_server.begin_stop()
            await super().shutdown(sockets)

        @contextlib.contextmanager
        def capture_signals(self):  # type: ignore[override]
            with super().capture_signals():
                yield
                # uvicorn re-raises the captured signal after shutting down, so
                # the process would die of SIGTERM (status 143) although every
                # request was answered: a finished graceful stop is a clean exit.
                captured = getattr(self, "_captured_signals", None)
                if isinstance(captured, list):
                    captured[:] = [s for s in captured if s != signal.SIGTERM]

    return GracefulServer(config)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
