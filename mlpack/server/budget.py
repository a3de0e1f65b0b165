"""The server's memory guard: a budget of request-body bytes in flight, shared by all requests.

A request body costs several times its size once decoded (JSON numbers become
Python objects, then arrays), so sixteen bodies just under the body limit can
exceed a container's memory limit together although each is allowed alone.
Every request reserves its body size (its Content-Length, or the body limit
when chunked) before a byte of it is read; a request that does not fit waits
for others to finish, and after ``wait_s`` gets 503 with Retry-After instead
of the kernel's OOM kill. Unread bodies stay in the socket buffers, which
uvicorn's flow control bounds.
"""

from __future__ import annotations

import asyncio

__all__ = ["ByteBudget", "budget_for"]

# A decoded request takes up to ~8x its body (JSON lists of floats); the
# model, the runtime and the response need the rest of the limit.
EXPANSION = 8
SHARE = 0.5
UNLIMITED_DEFAULT = 256 * 1024 * 1024


def budget_for(memory_limit: int | None, max_body: int, workers: int = 1) -> int:
    """Bytes of request bodies one worker may hold at once, derived from the cgroup memory limit."""
    if memory_limit is None:
        total = UNLIMITED_DEFAULT
    else:
        total = int(memory_limit * SHARE / EXPANSION)
    # Never below one largest body: a single request must always be able to run.
    return max(max_body, total // max(1, workers))


class ByteBudget:
    """A counting semaphore over bytes, fair (first come, first served) and bounded in waiting time."""

    def __init__(self, capacity: int, wait_s: float) -> None:
        self.capacity = capacity
        self.wait_s = wait_s
        self.used = 0
        self.rejected = 0
        self._waiters: list[tuple[int, asyncio.Future]] = []

    def _fits(self, n: int) -> bool:
        return self.used + n <= self.capacity

    async def acquire(self, n: int) -> int | None:
        """Reserve ``n`` bytes (capped at the capacity); the amount to release, or None after ``wait_s``."""
        n = min(n, self.capacity)
        if not self._waiters and self._fits(n):
            self.used += n
            return n
        fut = asyncio.get_running_loop().create_future()
        entry = (n, fut)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(asyncio.shield(fut), self.wait_s)
        except asyncio.TimeoutError:
            if fut.done() and not fut.cancelled():  # granted in the same instant: keep it
                return n
            fut.cancel()
            self._waiters.remove(entry)
            self.rejected += 1
            self._wake()
            return None
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release(n)
            else:
                fut.cancel()
                self._waiters.remove(entry)
            raise
        return n

    def release(self, n: int) -> None:
        self.used -= n
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self._fits(self._waiters[0][0]):
            n, fut = self._waiters.pop(0)
            self.used += n
            fut.set_result(None)
