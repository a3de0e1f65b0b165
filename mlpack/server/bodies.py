"""Request bodies: read whole, under a deadline between chunks and a size limit.

A body that pauses longer than the deadline raises :class:`BodyTimeout`
(the envelope answers 408); a chunked body (no Content-Length) that passes
the limit raises :class:`BodyTooLarge` (413); a client that leaves raises
Starlette's ``ClientDisconnect`` (499). The deadlines of all requests share
one timer (:class:`Deadlines`): ``asyncio.wait_for`` would cost a task per
read.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

from starlette.requests import ClientDisconnect

__all__ = ["BodyReader", "BodyTimeout", "BodyTooLarge", "Deadlines", "read_empty"]


class BodyTooLarge(Exception):
    """Raised by the receive wrapper when a chunked body passes the limit."""


class BodyTimeout(Exception):
    """Raised by the receive wrapper when the client pauses too long inside a body."""


class Deadlines:
    """Body read deadlines of all requests on one timer (``asyncio.wait_for`` costs a task per read).

    A request registers its task before awaiting a chunk and unregisters after
    it; the timer, armed only while someone waits, cancels the tasks whose
    deadline passed and remembers them, so the reader turns that cancellation
    into :class:`BodyTimeout`.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._waiting: dict[asyncio.Task, float] = {}
        self._expired: set[asyncio.Task] = set()
        self._timer: asyncio.TimerHandle | None = None

    async def receive(self, receive: Callable[[], Awaitable[dict]]) -> dict:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        waiting = self._waiting
        waiting[task] = deadline = loop.time() + self.seconds  # type: ignore[index]
        if self._timer is None:
            self._timer = loop.call_at(deadline, self._check)
        try:
            return await receive()
        except asyncio.CancelledError:
            if task in self._expired:
                self._expired.discard(task)
                task.uncancel()  # type: ignore[union-attr]
                raise BodyTimeout() from None
            raise
        finally:
            waiting.pop(task, None)  # type: ignore[arg-type]
            self._expired.discard(task)  # type: ignore[arg-type]

    def _check(self) -> None:
        self._timer = None
        if not self._waiting:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        for task, deadline in list(self._waiting.items()):
            if deadline <= now:
                del self._waiting[task]
                self._expired.add(task)
                task.cancel()
        if self._waiting:
            self._timer = loop.call_at(min(self._waiting.values()), self._check)


class BodyReader:
    """Reads request bodies for the envelope: whole (:meth:`read`), dropped
    (:meth:`discard`) or through a guarded ``receive`` for an app (:meth:`guarded`)."""

    def __init__(self, max_body: int, timeout_s: float) -> None:
        self.max_body = max_body
        self.deadlines = Deadlines(timeout_s)

    async def read(self, receive: Callable[[], Awaitable[dict]], *, limited: bool) -> bytes:
        """The whole body, under the body deadline and (chunked) the size limit; ClientDisconnect if the client left."""
        deadlines = self.deadlines
        message = await deadlines.receive(receive)
        if message["type"] != "http.request":
            raise ClientDisconnect()
        body = message.get("body", b"")
        if limited and len(body) > self.max_body:
            raise BodyTooLarge()
        if not message.get("more_body", False):
            return body
        chunks = [body]
        seen = len(body)
        while True:
            message = await deadlines.receive(receive)
            if message["type"] != "http.request":
                raise ClientDisconnect()
            chunk = message.get("body", b"")
            seen += len(chunk)
            if limited and seen > self.max_body:
                raise BodyTooLarge()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def discard(self, receive: Callable[[], Awaitable[dict]], *, limited: bool) -> None:
        """Read the body to its end and drop it, chunk by chunk, under the same deadline and limit."""
        seen = 0
        while True:
            message = await self.deadlines.receive(receive)
            if message["type"] != "http.request":
                return
            seen += len(message.get("body", b""))
            if limited and seen > self.max_body:
                raise BodyTooLarge()
            if not message.get("more_body", False):
                return

    def guarded(self, receive: Callable[[], Awaitable[dict]], *, limited: bool) -> Callable[[], Awaitable[dict]]:
        """A receive under the body deadline (until the body is complete) and, chunked, the size limit."""
        done = False
        seen = 0
        limit = self.max_body
        deadlines = self.deadlines

        async def guarded() -> dict:
            nonlocal done, seen
            if done:  # after the body, receive only waits for a disconnect: no deadline
                return await receive()
            message = await deadlines.receive(receive)
            if message["type"] != "http.request" or not message.get("more_body", False):
                done = True
            if limited and message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge()
            return message

        return guarded


async def read_empty(receive: Callable[[], Awaitable[dict]]) -> bytes:
    """The (empty) body of a request without Content-Length or chunked encoding."""
    message = await receive()
    if message["type"] != "http.request":
        raise ClientDisconnect()
    return message.get("body", b"")
