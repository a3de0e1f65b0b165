"""The micro-batcher on a real event loop and a real model thread."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from mlpack.server.batcher import MicroBatcher


class Model:
    """Doubles its input; records batch sizes.

    No sleep is needed for requests to pile up: asyncio.gather starts every
    submit (each queues its request) before the drain task, made by the first
    submit, gets its first turn, so batches form on any machine.
    """

    def __init__(self, *, fail_on: float | None = None, aggregate: bool = False) -> None:
        self.calls: list[int] = []
        self.fail_on = fail_on
        self.aggregate = aggregate

    def __call__(self, feeds: dict) -> dict:
        x = feeds["x"]
        self.calls.append(x.shape[0])
        if self.fail_on is not None and (x == self.fail_on).any():
            raise RuntimeError("bad value")
        if self.aggregate:
            return {"y": x.sum(axis=0, keepdims=True)}
        return {"y": x * 2}


def _run(model: Model, n: int, *, max_rows: int = 8, rows: int = 1, wait: float = 0.0) -> tuple[list, list]:
    runs: list[tuple] = []

    async def main() -> list:
        with ThreadPoolExecutor(1) as pool:
            # All n requests are in the server at once, as the middleware would count them.
            batcher = MicroBatcher(
                model, pool, max_rows=max_rows, max_wait_s=wait, in_flight=lambda: n, on_run=lambda *a: runs.append(a)
            )
            feeds = [{"x": np.full((rows, 2), float(i), np.float32)} for i in range(n)]
            return await asyncio.gather(*(batcher.submit(f) for f in feeds), return_exceptions=True)

    return asyncio.run(main()), runs


def test_concurrent_requests_share_runs_and_get_their_own_rows() -> None:
    model = Model()
    results, runs = _run(model, 20)
    for i, out in enumerate(results):
        np.testing.assert_array_equal(out["y"], np.full((1, 2), 2.0 * i, np.float32))
    assert sum(model.calls) == 20
    assert len(model.calls) < 20, model.calls  # merged while the first run was slow
    assert max(model.calls) <= 8
    assert sum(r[1] for r in runs) == 20 and sum(r[2] for r in runs) == 20


def test_max_rows_counts_rows_not_requests() -> None:
    model = Model()
    results, _ = _run(model, 6, max_rows=8, rows=3)
    assert all(c <= 8 for c in model.calls)
    assert [r["y"].shape for r in results] == [(3, 2)] * 6


def test_one_bad_request_does_not_fail_its_batch_neighbours() -> None:
    model = Model(fail_on=5.0)
    results, _ = _run(model, 12)
    failed = [i for i, r in enumerate(results) if isinstance(r, BaseException)]
    assert failed == [5]
    assert isinstance(results[5], RuntimeError)
    np.testing.assert_array_equal(results[4]["y"], np.full((1, 2), 8.0, np.float32))


def test_outputs_not_aligned_with_rows_fall_back_to_single_runs() -> None:
    model = Model(aggregate=True)
    results, _ = _run(model, 6, rows=2)
    for i, out in enumerate(results):
        np.testing.assert_array_equal(out["y"], np.full((1, 2), 2.0 * i, np.float32))


def test_wait_is_bounded_when_others_are_announced_but_never_come() -> None:
    async def main() -> float:
        with ThreadPoolExecutor(1) as pool:
            batcher = MicroBatcher(
                lambda f: {"y": f["x"]}, pool, max_rows=8, max_wait_s=0.02, in_flight=lambda: 5, on_run=lambda *a: None
            )
            start = time.perf_counter()
            await batcher.submit({"x": np.zeros((1, 2), np.float32)})
            return time.perf_counter() - start

    elapsed = asyncio.run(main())
    assert elapsed >= 0.015  # it waited for the announced requests, up to the deadline...
    assert elapsed < 10  # ...and no longer (a bound, not a speed: 0.02 s on any machine that runs at all)


@pytest.mark.parametrize("wait", [0.0, 30.0])
def test_a_lone_request_never_waits(wait: float) -> None:
    async def main() -> float:
        with ThreadPoolExecutor(1) as pool:
            batcher = MicroBatcher(
                lambda f: {"y": f["x"]}, pool, max_rows=8, max_wait_s=wait, in_flight=lambda: 1, on_run=lambda *a: None
            )
            await batcher.submit({"x": np.zeros((1, 2), np.float32)})  # warm the thread
            start = time.perf_counter()
            await batcher.submit({"x": np.zeros((1, 2), np.float32)})
            return time.perf_counter() - start

    assert asyncio.run(main()) < 10  # waiting would take 30 s


@pytest.mark.parametrize("inline", [False, True])
def test_a_request_alone_in_the_server_skips_the_queue(inline: bool) -> None:
    """In-flight count 1: no drain task and no future, the run happens at once
    (on the model thread, or on the loop for an inline model)."""
    seen: list[tuple] = []

    async def main() -> None:
        loop_thread = threading.current_thread()
        with ThreadPoolExecutor(1, thread_name_prefix="model") as pool:
            batcher: MicroBatcher

            def model(feeds: dict) -> dict:
                seen.append((threading.current_thread() is loop_thread, batcher._task, len(batcher._queue)))
                return {"y": feeds["x"] * 2}

            batcher = MicroBatcher(model, pool, max_rows=8, max_wait_s=0.0, in_flight=lambda: 1,
                                   on_run=lambda *a: seen.append(a), inline=inline)
            for _ in range(10):
                out = await batcher.submit({"x": np.ones((1, 2), np.float32)})
                np.testing.assert_array_equal(out["y"], np.full((1, 2), 2.0, np.float32))

    asyncio.run(main())
    runs = [s for s in seen if len(s) == 3 and isinstance(s[0], bool)]
    assert runs == [(inline, None, 0)] * (10)
    assert [s for s in seen if isinstance(s[0], float)] and all(s[1:] == (1, 1) for s in seen if isinstance(s[0], float))


def test_concurrent_requests_still_batch_when_the_model_is_inline() -> None:
    model = Model()
    runs: list[tuple] = []

    async def main() -> list:
        with ThreadPoolExecutor(1) as pool:
            batcher = MicroBatcher(model, pool, max_rows=8, max_wait_s=0.0, in_flight=lambda: 6,
                                   on_run=lambda *a: runs.append(a), inline=True)
            feeds = [{"x": np.full((1, 2), float(i), np.float32)} for i in range(6)]
            return await asyncio.gather(*(batcher.submit(f) for f in feeds))

    results = asyncio.run(main())
    assert [r["y"][0, 0] for r in results] == [2.0 * i for i in range(6)]
    assert model.calls == [6] and runs[0][1:] == (6, 6)
