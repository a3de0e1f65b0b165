"""The forwarder's event loop, in this process (no namespace): relaying, back-pressure, half-close, limit."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator

import pytest

from mlpack.runtime.forward import Forwarder
from mlpack.runtime.netns import bind_listeners
from mlpack.runtime.options import PortMapping


class Echo:
    """A threaded echo server on 127.0.0.1 that counts the connections it accepted."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=4096)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.accepted_event = threading.Condition()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.accepted_event:
                self.accepted += 1
                self.accepted_event.notify_all()
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)

    def wait_accepted(self, n: int) -> None:
        with self.accepted_event:
            assert self.accepted_event.wait_for(lambda: self.accepted >= n, timeout=30)


@pytest.fixture
def echo() -> Iterator[Echo]:
    e = Echo()
    yield e
    e.sock.close()


def _listeners(*ports: PortMapping) -> list[tuple[PortMapping, socket.socket]]:
    """bind_listeners' sockets as the monitor gets them: full sockets made of their descriptors."""
    return [(m, socket.socket(fileno=s.detach())) for m, s in bind_listeners(ports)]


def _forwarder(echo: Echo, **kw: int) -> tuple[Forwarder, int]:
    """A forwarder from a free host port to the echo server."""
    listeners = _listeners(PortMapping(0, echo.port, "127.0.0.1"))
    fwd = Forwarder(listeners, None, **kw)
    fwd.start()
    return fwd, listeners[0][1].getsockname()[1]


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def test_a_large_transfer_both_ways_and_the_half_close_pass_through(echo: Echo) -> None:
    fwd, port = _forwarder(echo)
    payload = os.urandom(8 << 20)  # more than the relay buffers: back-pressure must hold it
    with socket.create_connection(("127.0.0.1", port), timeout=30) as c:
        sender = threading.Thread(target=lambda: (c.sendall(payload), c.shutdown(socket.SHUT_WR)))
        sender.start()
        got = bytearray()
        while data := c.recv(1 << 20):
            got += data
        sender.join()
    assert bytes(got) == payload  # everything came back, and the EOF after it
    fwd.close()


def test_thousands_of_idle_connections_cost_no_threads(echo: Echo) -> None:
    fwd, port = _forwarder(echo)
    before = _threads()
    clients = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(1000)]
    echo.wait_accepted(1000)
    # The echo server's own threads are 1000 more; the forwarder added none.
    assert _threads() - before <= 1000 + 1
    assert fwd.relays == 1000
    clients[0].sendall(b"ping")
    assert clients[0].recv(4) == b"ping"
    for c in clients:
        c.close()
    fwd.close()


def test_connections_beyond_the_limit_wait_in_the_backlog(echo: Echo) -> None:
    fwd, port = _forwarder(echo, max_connections=3)
    first = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(3)]
    echo.wait_accepted(3)
    extra = socket.create_connection(("127.0.0.1", port), timeout=30)  # the kernel queues it
    extra.sendall(b"late")
    for c in first:
        c.sendall(b"x")
        assert c.recv(1) == b"x"  # the loop is alive and has seen everything before...
    assert echo.accepted == 3  # ...but did not relay the fourth
    first[0].close()
    echo.wait_accepted(4)  # a slot freed: the waiting client gets through, its data with it
    assert extra.recv(4) == b"late"
    for c in [*first[1:], extra]:
        c.close()
    fwd.close()


def test_nothing_listening_inside_closes_the_client() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    listeners = _listeners(PortMapping(0, free, "127.0.0.1"))
    fwd = Forwarder(listeners, None)
    fwd.start()
    port = listeners[0][1].getsockname()[1]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as c:
        assert c.recv(1) == b""
    assert fwd.relays == 0
    fwd.close()
