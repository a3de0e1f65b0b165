"""Where mlpack's server spends CPU per request, without sockets: the ASGI app driven in-process.

    python bench/server/profile_inprocess.py [--requests 5000] [--route predict|v2] [--profile]

Builds the app exactly as ``mlpack-serve`` does (defaults, access log on, into
/dev/null), runs its lifespan, then sends ``--requests`` requests through the
ASGI callable with the same scope, receive and send shapes uvicorn's httptools
protocol uses. Prints microseconds per request (the app's own share: no HTTP
parsing, no socket) and, with ``--profile``, cProfile's top functions by
total time. For relative attribution only: wrk in bench_server.py gives the
real per-request CPU including uvicorn.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

_TREE = "--tree"
if _TREE in sys.argv:  # which checkout's mlpack to measure (before/after comparisons)
    sys.path.insert(0, str(Path(sys.argv[sys.argv.index(_TREE) + 1]).resolve()))
else:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def _iris(work: Path) -> Path:
    """The bench's iris bundle (made by bench_server.py's capture_models on first use)."""
    iris = work / "iris"
    if not (iris / "mlpack.yaml").exists():
        sys.path.insert(1, str(Path(__file__).resolve().parent))
        from bench_server import capture_models

        capture_models(work, (8,))
    return iris


async def drive(app, path: str, body: bytes, n: int, headers: list, concurrency: int = 1) -> float:  # type: ignore[no-untyped-def]
    scope_base = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "server": ("127.0.0.1", 8080), "client": ("127.0.0.1", 40000), "scheme": "http", "method": "POST",
        "root_path": "", "path": path, "raw_path": path.encode(), "query_string": b"",
        "headers": headers, "state": {},
        "extensions": {"http.response.trailers": {}, "mlpack.trailers_only": {"disconnected": lambda: False}, "mlpack.unary": {}},
    }
    status = []

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    message = {"type": "http.request", "body": body, "more_body": False}

    def run_one():  # type: ignore[no-untyped-def]
        sent = False

        async def receive() -> dict:
            nonlocal sent
            if sent:
                await asyncio.Event().wait()
            sent = True
            return message

        return app(dict(scope_base), receive, send)  # a coroutine: run_one() is awaited or made a task

    # The driver plays uvicorn: its request tasks are what uvicorn's server state would hold
    # (mlpack.server.connection.requests_in_server counts them, and the batcher asks it).
    from mlpack.server import connection

    class _State:
        tasks: set = set()

    connection._SERVERS.append(_State)

    async def run(count: int) -> None:
        if concurrency == 1:
            for _ in range(count):
                await run_one()
            return
        loop = asyncio.get_running_loop()
        for _ in range(count // concurrency):  # waves of concurrent requests, as a loaded server sees them
            wave = [loop.create_task(run_one()) for _ in range(concurrency)]
            _State.tasks.update(wave)
            for task in wave:
                task.add_done_callback(_State.tasks.discard)
            await asyncio.gather(*wave)

    await run(200)  # warm up
    status.clear()
    n -= n % concurrency
    start = time.perf_counter()
    await run(n)
    seconds = time.perf_counter() - start
    assert status == [200] * n, sorted(set(status))
    return seconds


def _grpc_body() -> bytes:
    """One framed ModelInferRequest for iris (raw_input_contents), as bench_server.py sends it."""
    sys.path.insert(1, str(Path(__file__).resolve().parent))
    from bench_server import grpc_request

    from mlpack.server.grpc.wire import frame

    return frame(grpc_request([5.1, 3.5, 1.4, 0.2]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--route", choices=("predict", "v2", "grpc"), default="predict",
                    help="grpc: ModelInfer through the gRPC ASGI app (mlpack.server.grpc.asgi)")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--concurrency", type=int, default=1, help="requests started together (1: one after another)")
    ap.add_argument("--no-batching", action="store_true", help="the server's --no-batching")
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds without --profile (the best is reported)")
    ap.add_argument("--top", type=int, default=35)
    ap.add_argument("--dump", help="with --profile: also write the pstats file here")
    ap.add_argument("--tree", help="measure the mlpack of this checkout (default: this one)")
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "mlpack-bench"))
    args = ap.parse_args(argv)
    import uvloop

    from mlpack.server.app import create_app
    from mlpack.server.config import ServerConfig

    bundle = _iris(Path(args.work))
    app = create_app(bundle, ServerConfig(grpc_port=0, batching=not args.no_batching))
    if args.route == "predict":
        path, body = "/predict", json.dumps({"inputs": [[5.1, 3.5, 1.4, 0.2]]}).encode()
    elif args.route == "v2":
        path = "/v2/models/iris/infer"
        body = json.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}).encode()
    else:
        path, body = "/inference.GRPCInferenceService/ModelInfer", _grpc_body()
    if args.route == "grpc":
        headers = [(b"content-type", b"application/grpc"), (b"te", b"trailers")]
    else:
        headers = [(b"host", b"127.0.0.1:8080"), (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]

    async def go() -> None:
        async with app.router.lifespan_context(app):
            while not app.state.loaded.is_set():
                await asyncio.sleep(0.01)
            assert app.state.mlpack.runner is not None, app.state.mlpack.error
            if args.profile:
                prof = cProfile.Profile()
                prof.enable()
            target = app
            if args.route == "grpc":
                from mlpack.server.grpc.asgi import GrpcApp
                from mlpack.server.logs import AccessLog
                from mlpack.server.routes import run_model

                state = app.state.mlpack
                target = GrpcApp(state, lambda runner, feeds, rid: run_model(state, runner, feeds, rid), AccessLog())
            times = [await drive(target, path, body, args.requests, headers, args.concurrency)
                     for _ in range(1 if args.profile else args.rounds)]
            if args.profile:
                prof.disable()
            best = min(times) / args.requests * 1e6
            import mlpack

            print(f"{args.route} x{args.concurrency}{' unbatched' if args.no_batching else ''} ({Path(mlpack.__file__).parents[1]}): {best:.1f} us per request in-process (best of {len(times)} x {args.requests} requests)", file=report)
            if args.profile:
                out = io.StringIO()
                pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(args.top)
                if args.dump:
                    prof.dump_stats(args.dump)
                print(out.getvalue(), file=report)

    # The access log writes to stdout: send it to /dev/null, the report to stderr.
    report = sys.stderr
    with open(os.devnull, "w") as devnull:
        sys.stdout, real = devnull, sys.stdout
        try:
            uvloop.run(go())
        finally:
            sys.stdout = real
    return 0


if __name__ == "__main__":
    sys.exit(main())
