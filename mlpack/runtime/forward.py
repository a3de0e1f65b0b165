"""The port forwarder: one event loop per container for every published port and connection.

It accepts on listeners bound in the host's namespace and connects, from a
thread that joined the container's network namespace with setns(2), to
127.0.0.1:port inside. All of a container's connections are relayed by that
one thread with non-blocking sockets and epoll, so a client that opens
thousands of idle connections costs a few hundred bytes of buffers each in
the monitor process (which sits outside the container's pids and memory
limits), not two threads and their stacks each. At ``max_connections`` open
relays the listeners are taken out of the loop until one closes: further
clients wait in the kernel's accept backlog instead of costing anything.

Each direction buffers at most ``_HIGH`` bytes; beyond that the loop stops
reading the sending side until the receiver drains (back-pressure). A
half-close is passed on (shutdown(SHUT_WR)) once everything before it has
been written.
"""

from __future__ import annotations

import errno
import os
import resource
import selectors
import socket
import threading
from collections.abc import Sequence

from mlpack.runtime.netns import enter_netns
from mlpack.runtime.options import PortMapping

__all__ = ["Forwarder", "MAX_CONNECTIONS"]

MAX_CONNECTIONS = 1024
_CHUNK = 256 << 10
_HIGH = 1 << 20


class _Side:
    """One socket of a relay: what waits to be written to it, and what it is watched for."""

    __slots__ = ("sock", "peer", "out", "read_eof", "shut_wr", "connecting", "events")

    def __init__(self, sock: socket.socket, connecting: bool = False) -> None:
        self.sock = sock
        self.peer: _Side = self
        self.out = bytearray()
        self.read_eof = False  # this socket sent EOF: nothing more to read from it
        self.shut_wr = False  # we passed the peer's EOF on to this socket
        self.connecting = connecting
        self.events = 0  # what the selector watches it for (0: not registered)


class Forwarder:
    """Accepts on host listeners and relays to 127.0.0.1:port inside ``netns`` (None = here)."""

    def __init__(self, listeners: Sequence[tuple[PortMapping, socket.socket]], netns: str | None, *,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        self.listeners = list(listeners)
        self.netns = netns
        # Each relay holds two descriptors; stay inside this process's limit.
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        room = max(1, (soft - 64) // 2) if soft != resource.RLIM_INFINITY else max_connections
        self.max_connections = max(1, min(max_connections, room))
        self.relays = 0
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        self._closing = False
        self._accepting = False
        self._sides: set[_Side] = set()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True, name="forwarder")
        self._thread.start()

    def close(self) -> None:
        """Stop accepting and relaying; closes the listeners and every relayed connection."""
        self._closing = True
        os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
        for _, sock in self.listeners:
            sock.close()

    # -- the loop --------------------------------------------------------------------
    def _run(self) -> None:
        if self.netns:
            enter_netns(self.netns)  # this thread's sockets are made inside from now on
        for _, sock in self.listeners:
            sock.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._accept(True)
        try:
            while not self._closing:
                for key, mask in self._sel.select():
                    if key.data is None:
                        continue  # the wake-up pipe: _closing is set
                    if isinstance(key.data, PortMapping):
                        self._on_accept(key.fileobj, key.data)  # type: ignore[arg-type]
                    elif key.data in self._sides:  # not dropped earlier in this round
                        self._on_event(key.data, mask)
        finally:
            for side in self._sides:
                side.sock.close()
            self._sel.close()
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _accept(self, on: bool) -> None:
        if on == self._accepting:
            return
        self._accepting = on
        for mapping, sock in self.listeners:
            if on:
                self._sel.register(sock, selectors.EVENT_READ, mapping)
            else:
                self._sel.unregister(sock)

    def _on_accept(self, listener: socket.socket, mapping: PortMapping) -> None:
        try:
            client, _ = listener.accept()
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM) and self.relays:
                self._accept(False)  # out of descriptors: resume when a relay closes, never spin
            return  # else nothing was there after all, or it was aborted before we got to it
        upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        for sock in (client, upstream):
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        code = upstream.connect_ex(("127.0.0.1", mapping.container_port))
        if code not in (0, errno.EINPROGRESS):
            client.close()  # nothing listens inside yet: the client sees the connection close
            upstream.close()
            return
        a, b = _Side(client), _Side(upstream, connecting=code != 0)
        a.peer, b.peer = b, a
        self._sides.update((a, b))
        self.relays += 1
        if self.relays >= self.max_connections:
            self._accept(False)
        if b.connecting:
            self._watch(b, selectors.EVENT_WRITE)  # the client is read once the connection is made
        else:
            self._update(a)
            self._update(b)

    def _on_event(self, side: _Side, mask: int) -> None:
        try:
            if side.connecting:
                err = side.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    raise ConnectionRefusedError(err, os.strerror(err))
                side.connecting = False
            else:
                if mask & selectors.EVENT_READ:
                    self._read(side)
                if mask & selectors.EVENT_WRITE:
                    self._write(side)
        except OSError:
            self._drop(side)
            return
        if side.read_eof and side.peer.read_eof and not side.out and not side.peer.out:
            self._drop(side)
            return
        self._update(side)
        self._update(side.peer)

    def _read(self, side: _Side) -> None:
        try:
            data = side.sock.recv(_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        if data:
            side.peer.out += data
        else:
            side.read_eof = True
        self._write(side.peer)

    def _write(self, side: _Side) -> None:
        if side.out:
            try:
                sent = side.sock.send(side.out)
            except (BlockingIOError, InterruptedError):
                sent = 0
            del side.out[:sent]
        if not side.out and side.peer.read_eof and not side.shut_wr:
            side.shut_wr = True
            try:
                side.sock.shutdown(socket.SHUT_WR)  # pass the half-close on
            except OSError:
                pass

    def _update(self, side: _Side) -> None:
        """Read while the peer's buffer has room and the socket is open; write while data waits."""
        events = 0
        if not side.read_eof and len(side.peer.out) < _HIGH:
            events |= selectors.EVENT_READ
        if side.out:
            events |= selectors.EVENT_WRITE
        self._watch(side, events)

    def _watch(self, side: _Side, events: int) -> None:
        if events == side.events:
            return
        if not side.events:
            self._sel.register(side.sock, events, side)
        elif not events:
            self._sel.unregister(side.sock)
        else:
            self._sel.modify(side.sock, events, side)
        side.events = events

    def _drop(self, side: _Side) -> None:
        self.relays -= 1  # first: whoever sees the close sees the count already down
        for s in (side, side.peer):
            self._watch(s, 0)
            s.sock.close()
            self._sides.discard(s)
        if self.relays < self.max_connections and not self._closing:
            self._accept(True)
