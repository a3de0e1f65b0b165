"""Adaptive micro-batching: concurrent requests share one model run.

Requests are queued; one drain task takes everything queued (up to
``max_rows`` rows), runs it as one batch on the model thread and splits the
outputs back. While a batch runs, new requests queue up, so batches grow with
load and a lone request never waits. ``max_wait`` only applies while other
requests are known to be on their way (in flight but not yet queued): then the
drain task gives the loop a few turns to let them join. Off by default
(``max_batch_wait_ms=0``): in closed-loop load tests the requests that would
join are still with their clients, so waiting only added latency.

Batching only happens when there is concurrency: a request that is alone in
the server (``in_flight`` is one: the server counts the requests it has read,
including those whose tasks have not started yet) runs at once, without the
queue's task and future, on the loop (``inline`` models) or the model thread,
since no other request could join its batch. As soon as others are in the
server, requests queue, and the drain task, which runs after every request
the loop has ready, takes them all as one batch.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import Executor
from typing import Callable

import numpy as np

__all__ = ["MicroBatcher"]

Feeds = dict[str, np.ndarray]
RunFn = Callable[[Feeds], dict[str, np.ndarray]]


class _Item:
    __slots__ = ("feeds", "rows", "key", "future")

    def __init__(self, feeds: Feeds, rows: int, key: tuple, future: asyncio.Future) -> None:
        self.feeds, self.rows, self.key, self.future = feeds, rows, key, future


class MicroBatcher:
    """Merge concurrent requests along axis 0 into one ``run`` call on ``executor``.

    ``pending`` returns how many requests are in flight but not yet queued (the
    middleware's in-flight count minus what the batcher holds); ``on_run``
    receives (seconds, rows, requests) for metrics.
    """

    def __init__(
        self,
        run: RunFn,
        executor: Executor,
        *,
        max_rows: int,
        max_wait_s: float,
        in_flight: Callable[[], int],
        on_run: Callable[[float, int, int], None],
        inline: bool = False,
    ) -> None:
        self._run = run
        # Models that run in microseconds run on the loop itself: a thread hop
        # costs more than the run, and batches still form from the requests
        # parsed while the drain task waited for its turn.
        self.inline = inline
        self._executor = executor
        self._max_rows = max_rows
        self._max_wait = max_wait_s
        self._in_flight = in_flight
        self._on_run = on_run
        self._queue: deque[_Item] = deque()
        self._task: asyncio.Task | None = None

    async def submit(self, feeds: Feeds) -> dict[str, np.ndarray]:
        """Run ``feeds`` (rows along axis 0) as part of a batch; returns its own outputs."""
        first = next(iter(feeds.values()))
        rows = int(first.shape[0])
        if self._task is None and self._in_flight() <= 1:
            # Nobody else is in the server, so nobody could join a batch: run at
            # once (inline, or straight to the model thread) without the queue's
            # task and future. Micro-batching costs a lone client nothing.
            if self.inline:
                start = time.perf_counter()
                outputs = self._run(feeds)
                self._on_run(time.perf_counter() - start, rows, 1)
                return outputs
            return await self._alone(feeds, rows)
        key = tuple([(name, arr.shape[1:], arr.dtype) for name, arr in feeds.items()])  # what may share a batch
        future = asyncio.get_running_loop().create_future()
        self._queue.append(_Item(feeds, rows, key, future))
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _alone(self, feeds: Feeds, rows: int) -> dict[str, np.ndarray]:
        seconds, outputs = await asyncio.get_running_loop().run_in_executor(self._executor, _timed, self._run, feeds)
        self._on_run(seconds, rows, 1)
        return outputs

    def _take(self, batch: list[_Item], rows: int) -> int:
        """Move queued items compatible with ``batch`` into it, up to ``max_rows`` rows."""
        queue = self._queue
        key = batch[0].key
        while queue and queue[0].key == key and rows + queue[0].rows <= self._max_rows:
            item = queue.popleft()
            batch.append(item)
            rows += item.rows
        return rows

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                first = self._queue.popleft()
                batch = [first]
                rows = self._take(batch, first.rows)
                if self._max_wait > 0 and rows < self._max_rows:
                    deadline = time.perf_counter() + self._max_wait
                    # Others in flight (not queued, not ours) are on their way: give
                    # the loop turns (each reads every socket that is ready) until
                    # they join or the wait is over. Timers would be too coarse:
                    # uvloop's have millisecond resolution.
                    while self._in_flight() - len(batch) - len(self._queue) > 0 and time.perf_counter() < deadline:
                        await asyncio.sleep(0)
                        rows = self._take(batch, rows)
                        if rows >= self._max_rows:
                            break
                await self._run_batch(loop, batch, rows)
        finally:
            self._task = None
            if self._queue:  # raced with a submit after the loop ended
                self._task = loop.create_task(self._drain())

    async def _run_batch(self, loop: asyncio.AbstractEventLoop, batch: list[_Item], rows: int) -> None:
        if len(batch) == 1:
            feeds = batch[0].feeds
        else:
            feeds = {name: np.concatenate([item.feeds[name] for item in batch]) for name in batch[0].feeds}
        try:
            if self.inline:
                seconds, outputs = _timed(self._run, feeds)
            else:
                seconds, outputs = await loop.run_in_executor(self._executor, _timed, self._run, feeds)
        except BaseException as exc:  # noqa: BLE001 - delivered to the waiting requests
            if len(batch) == 1 or isinstance(exc, asyncio.CancelledError):
                _fail(batch, exc)
                return
            # One bad request must not fail its neighbours: run each alone.
            for item in batch:
                await self._run_batch(loop, [item], item.rows)
            return
        self._on_run(seconds, rows, len(batch))
        if len(batch) == 1:
            if not batch[0].future.done():
                batch[0].future.set_result(outputs)
            return
        if not all(isinstance(v, np.ndarray) and v.ndim and v.shape[0] == rows for v in outputs.values()):
            # Outputs not aligned with input rows (a model that aggregates): no batching for it.
            for item in batch:
                await self._run_batch(loop, [item], item.rows)
            return
        offset = 0
        for item in batch:
            end = offset + item.rows
            if not item.future.done():  # the client may have gone away
                item.future.set_result({name: value[offset:end] for name, value in outputs.items()})
            offset = end


def _timed(run: RunFn, feeds: Feeds) -> tuple[float, dict[str, np.ndarray]]:
    start = time.perf_counter()
    outputs = run(feeds)
    return time.perf_counter() - start, outputs


def _fail(batch: list[_Item], exc: BaseException) -> None:
    for item in batch:
        if not item.future.done():
            item.future.set_exception(exc)
