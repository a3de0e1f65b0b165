"""uvicorn's HTTP protocol with a deadline for request headers.

uvicorn times out idle keep-alive connections but not a connection that
sends part of its request line or headers and then stalls (slowloris), nor a
new connection that sends nothing: each held a socket and a protocol object
forever. Here every connection must complete a request's headers within
``header_timeout_s`` of opening, and of its previous response; otherwise it
is closed. The body's own deadline is in :mod:`mlpack.server.http`.

It also sends each response's head and body with one write (see
:class:`_OneWrite`): a small answer costs one send(2) and one TCP segment,
not two.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Fast
except ImportError:  # pragma: no cover - httptools is part of uvicorn[standard]
    _Fast = H11Protocol  # type: ignore[misc,assignment]

__all__ = ["HeaderDeadlineProtocol", "set_header_timeout", "requests_in_server", "track_requests"]

_TIMEOUT = {"seconds": 10.0}
# uvicorn's state of each server in this process whose requests are counted (HTTP through
# HeaderDeadlineProtocol, gRPC through track_requests): its ``tasks`` hold one task per
# request whose headers were read and whose answer is not done.
_SERVERS: list[Any] = []


def requests_in_server() -> int:
    """Requests uvicorn has read the headers of and not finished answering, in this process.

    Unlike the middleware's in-flight count, this includes requests whose
    tasks have not had their first turn yet: the requests read in the same
    turn of the loop, which could share a micro-batch; gRPC calls too, once the
    gRPC server's protocol called :func:`track_requests`. 0 where no uvicorn
    server is counted (in-process test clients).
    """
    n = 0
    for state in _SERVERS:
        n += len(state.tasks)
    return n


def track_requests(server_state: Any) -> None:
    """Count the requests of this uvicorn server (its ``tasks``) in :func:`requests_in_server`;
    the gRPC server's protocol calls it so gRPC calls share micro-batches as HTTP requests do."""
    if not any(state is server_state for state in _SERVERS):
        _SERVERS.append(server_state)


def set_header_timeout(seconds: float) -> None:
    """The header deadline of every connection accepted from now on (per worker process)."""
    _TIMEOUT["seconds"] = seconds


class HeaderDeadlineProtocol(_Fast):  # type: ignore[misc,valid-type]
    """httptools (else h11) protocol whose connections close when headers do not come in time.

    One timer per connection, not one per request: a response only notes the
    time it completed (``_since``), and the timer, when it fires, either
    closes a connection that has waited for headers since longer than the
    deadline or sets itself again for when the current wait would run out.
    """

    _deadline: asyncio.TimerHandle | None = None
    _since = 0.0  # when the connection began waiting for a request's headers

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        track_requests(self.server_state)
        super().connection_made(_OneWrite(transport, self.loop))
        self._since = self.loop.time()
        self._deadline = self.loop.call_at(self._since + _TIMEOUT["seconds"], self._expire)

    def on_response_complete(self) -> None:
        self.transport.flush()
        super().on_response_complete()
        self._since = self.loop.time()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        super().connection_lost(exc)

    def _expire(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        timeout = _TIMEOUT["seconds"]
        cycle = self.cycle
        now = self.loop.time()
        if cycle is not None and not cycle.response_complete:
            # A request's headers came and it is being answered: its response restarts the wait.
            due = now + timeout
        else:
            due = self._since + timeout
            if now >= due:  # no request's headers since the last response (or since connecting)
                self.transport.close()
                return
        self._deadline = self.loop.call_at(due, self._expire)


_JOIN_BELOW = 64 * 1024


class _OneWrite:
    """A transport that sends a response's head and body with one write.

    uvicorn writes the status line and headers, then the body, each with its
    own ``transport.write``: two send(2) calls and two TCP segments per small
    response. The head is held back here until the next write (the body) or,
    for a response that streams, until the loop's next turn.
    """

    __slots__ = ("_transport", "_loop", "_held", "_flush")

    def __init__(self, transport: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None
        self._flush: asyncio.Handle | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is None:
            self._held = data
            self._flush = self._loop.call_soon(self.flush)
            return
        self._held = None
        self._flush.cancel()  # type: ignore[union-attr]
        if len(data) <= _JOIN_BELOW:
            self._transport.write(held + data)
        else:  # a large body is not copied to be joined
            self._transport.writelines((held, data))

    def flush(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            self._flush.cancel()  # type: ignore[union-attr]
            if not self._transport.is_closing():  # the client left meanwhile: nobody to send it to
                self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
