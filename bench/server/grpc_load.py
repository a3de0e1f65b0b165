"""Bounded closed-loop load generators in Python, for gRPC (grpc.aio) and HTTP/1.1.

``conns`` callers each send the next request when the previous answer arrived,
for ``duration`` seconds. wrk cannot speak gRPC; comparing mlpack's gRPC with
its HTTP through wrk would compare the clients, so the HTTP twin here (asyncio
streams, keep-alive) gives the same kind of client to both protocols."""

from __future__ import annotations

import asyncio
import statistics
import time


async def _closed_loop(conns: int, duration: float, make_caller) -> tuple[list[float], int, float]:  # type: ignore[no-untyped-def]
    latencies: list[float] = []
    errors = 0
    stop = time.monotonic() + duration

    async def loop(i: int) -> None:
        nonlocal errors
        call = await make_caller(i)
        while time.monotonic() < stop:
            start = time.perf_counter()
            try:
                await call()
            except Exception:  # noqa: BLE001 - counted, reported as non-OK
                errors += 1
                continue
            latencies.append(time.perf_counter() - start)

    started = time.monotonic()
    await asyncio.gather(*(loop(i) for i in range(conns)))
    return latencies, errors, time.monotonic() - started


async def _grpc(target: str, method: str, body: bytes, conns: int, duration: float, channels: int) -> dict:
    from grpc import aio

    chans = [aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) for _ in range(channels)]
    calls = [c.unary_unary(method) for c in chans]

    async def make_caller(i: int):  # type: ignore[no-untyped-def]
        call = calls[i % len(calls)]
        return lambda: call(body, timeout=5)

    latencies, errors, elapsed = await _closed_loop(conns, duration, make_caller)
    for c in chans:
        await c.close()
    return _summary(latencies, errors, elapsed)


async def _http(host: str, port: int, path: str, body: bytes, conns: int, duration: float) -> dict:
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    writers = []

    async def make_caller(i: int):  # type: ignore[no-untyped-def]
        reader, writer = await asyncio.open_connection(host, port)
        writers.append(writer)

        async def call() -> None:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(head[:40])
            length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            await reader.readexactly(length)

        return call

    latencies, errors, elapsed = await _closed_loop(conns, duration, make_caller)
    for w in writers:
        w.close()
    return _summary(latencies, errors, elapsed)


def _summary(latencies: list[float], errors: int, elapsed: float) -> dict:
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else float("nan")  # noqa: E731
    return {
        "rps": len(latencies) / elapsed,
        "requests": len(latencies),
        "p50_ms": pick(0.50),
        "p99_ms": pick(0.99),
        "non2xx": errors,
        "mean_ms": statistics.fmean(latencies) * 1000 if latencies else float("nan"),
    }


def _run(coro) -> dict:  # type: ignore[no-untyped-def]
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def grpc_load(target: str, method: str, body: bytes, conns: int, duration: float, channels: int = 4) -> dict:
    """Closed-loop gRPC unary calls; returns rps, requests, p50_ms, p99_ms, non2xx (failed calls)."""
    return _run(_grpc(target, method, body, conns, duration, min(channels, conns)))


def http_load(host: str, port: int, path: str, body: bytes, conns: int, duration: float) -> dict:
    """Closed-loop HTTP/1.1 keep-alive POSTs (one connection per caller); same result keys."""
    return _run(_http(host, port, path, body, conns, duration))
