"""uvicorn's HTTP protocol with a deadline for request headers.

uvicorn times out idle keep-alive connections but not a connection that
sends part of its request line or headers and then stalls (slowloris), nor a
new connection that sends nothing: each held a socket and a protocol object
forever. Here every connection must complete a request's headers within
``header_timeout_s`` of opening, and of its previous response; otherwise it
is closed. The body's own deadline is in :mod:`mlpack.server.http`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Fast
except ImportError:  # pragma: no cover - httptools is part of uvicorn[standard]
    _Fast = H11Protocol  # type: ignore[misc,assignment]

__all__ = ["HeaderDeadlineProtocol", "set_header_timeout"]

_TIMEOUT = {"seconds": 10.0}


def set_header_timeout(seconds: float) -> None:
    """The header deadline of every connection accepted from now on (per worker process)."""
    _TIMEOUT["seconds"] = seconds


class HeaderDeadlineProtocol(_Fast):  # type: ignore[misc,valid-type]
    """httptools (else h11) protocol whose connections close when headers do not come in time."""

    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(_TIMEOUT["seconds"], self._expire, self.cycle)

    def _expire(self, cycle: Any) -> None:
        # A new request's headers replace self.cycle; the same cycle means none came.
        if self.cycle is cycle and not self.transport.is_closing():
            self.transport.close()
