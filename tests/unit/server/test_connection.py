"""The HTTP protocol's one-write transport, over a real socket pair and a real event loop."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from mlpack.server.connection import _OneWrite


class Counting:
    """The real transport, with its write calls counted (it still writes everything)."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.calls: list[int] = []

    def write(self, data: bytes) -> None:
        self.calls.append(len(data))
        self.transport.write(data)

    def writelines(self, parts: Any) -> None:
        parts = list(parts)
        self.calls.append(sum(len(p) for p in parts))
        self.transport.writelines(parts)

    def close(self) -> None:
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()


async def _pair() -> tuple[Counting, socket.socket]:
    ours, theirs = socket.socketpair()
    transport, _ = await asyncio.get_running_loop().create_connection(asyncio.Protocol, sock=ours)
    theirs.setblocking(False)
    return Counting(transport), theirs


async def _read(sock: socket.socket, n: int) -> bytes:
    loop = asyncio.get_running_loop()
    out = b""
    while len(out) < n:
        chunk = await loop.sock_recv(sock, n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def test_head_and_body_go_out_in_one_write() -> None:
    async def main() -> tuple[list[int], bytes]:
        real, peer = await _pair()
        one = _OneWrite(real, asyncio.get_running_loop())
        one.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        one.write(b"{}")
        got = await _read(peer, 40)
        one.close()
        peer.close()
        return real.calls, got

    calls, got = asyncio.run(main())
    assert calls == [40] and got == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"


def test_a_head_alone_goes_out_on_the_next_turn_and_close_flushes() -> None:
    async def main() -> tuple[list[int], list[int], bytes, list[int], bytes]:
        real, peer = await _pair()
        one = _OneWrite(real, asyncio.get_running_loop())
        one.write(b"head")
        before = list(real.calls)  # held back...
        await asyncio.sleep(0)  # ...until the loop turns
        after_turn = list(real.calls)
        first = await _read(peer, 4)
        one.write(b"tail")  # a streamed chunk, then the connection closes at once
        one.close()
        rest = await _read(peer, 10)
        peer.close()
        return before, after_turn, first, real.calls, rest

    before, after_turn, first, calls, rest = asyncio.run(main())
    assert before == [] and after_turn == [4] and first == b"head"
    assert calls == [4, 4] and rest == b"tail"


def test_a_large_body_is_written_whole_and_in_order() -> None:
    body = bytes(range(256)) * 1024  # 256 KiB

    async def main() -> tuple[list[int], bytes]:
        real, peer = await _pair()
        one = _OneWrite(real, asyncio.get_running_loop())
        one.write(b"HEAD")
        one.write(body)
        got = await _read(peer, 4 + len(body))
        one.close()
        peer.close()
        return real.calls, got

    calls, got = asyncio.run(main())
    assert calls == [4 + len(body)] and got == b"HEAD" + body


async def _ok(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def _served(coro_fn: Any, app: Any = _ok) -> Any:
    """Run ``coro_fn(port)`` against a real uvicorn on 127.0.0.1 with the header deadline at 0.3 s."""
    import uvicorn

    from mlpack.server.connection import HeaderDeadlineProtocol, set_header_timeout

    async def main() -> Any:
        set_header_timeout(0.3)
        try:
            server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, http=HeaderDeadlineProtocol,
                                                   lifespan="off", log_level="error", timeout_keep_alive=60))
            task = asyncio.create_task(server.serve())
            while not server.started:  # bounded by the test run: the server either starts or the task fails
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
            port = server.servers[0].sockets[0].getsockname()[1]
            try:
                return await coro_fn(port)
            finally:
                server.should_exit = True
                await task
        finally:
            set_header_timeout(10.0)

    return asyncio.run(main())


async def _until_closed(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.read(), 30)  # 30 s only bounds the test


def test_keep_alive_requests_are_answered_in_one_segment_and_a_slowloris_is_closed_after_the_deadline() -> None:
    async def client(port: int) -> tuple[list[bytes], float, bytes]:
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        answers = []
        for _ in range(3):  # several requests: the deadline restarts after each response
            writer.write(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            answers.append(await reader.readuntil(b"ok"))
        start = loop.time()
        writer.write(b"GET / HTTP/1.1\r\n")
        for _ in range(100):  # a header byte every 0.05 s: data keeps coming, headers never end
            if reader.at_eof() or writer.is_closing():
                break
            writer.write(b"x")
            try:
                await asyncio.wait_for(reader.read(1), 0.05)
                break  # EOF (b"") or an answer: either way the server acted
            except asyncio.TimeoutError:
                continue
        rest = await _until_closed(reader)
        closed_after = loop.time() - start
        writer.close()
        return answers, closed_after, rest

    answers, closed_after, rest = _served(client)
    assert all(a.startswith(b"HTTP/1.1 200 OK") and a.endswith(b"\r\n\r\nok") for a in answers)
    assert rest == b""
    assert closed_after >= 0.3  # not before the deadline; the loop above bounds how long after


def test_requests_in_server_counts_what_uvicorn_holds() -> None:
    """The first request waits inside the app until the second one is there: both are counted."""
    from mlpack.server.connection import requests_in_server

    seen: list[int] = []
    second_in = asyncio.Event()

    async def app(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        seen.append(requests_in_server())
        if scope["path"] == "/first":
            await second_in.wait()
        else:
            second_in.set()
        await _ok(scope, receive, send)

    async def client(port: int) -> list[bytes]:
        first = await asyncio.open_connection("127.0.0.1", port)
        first[1].write(b"GET /first HTTP/1.1\r\nhost: x\r\n\r\n")
        for _ in range(1000):  # bounded: until the first request is inside the app
            if seen:
                break
            await asyncio.sleep(0.005)
        second = await asyncio.open_connection("127.0.0.1", port)
        second[1].write(b"GET /second HTTP/1.1\r\nhost: x\r\n\r\n")
        answers = [await asyncio.wait_for(r.readuntil(b"ok"), 30) for r, _ in (first, second)]
        for _, w in (first, second):
            w.close()
        return answers

    answers = _served(client, app)
    assert all(a.startswith(b"HTTP/1.1 200") for a in answers)
    assert seen == [1, 2]
    assert requests_in_server() == 0  # the server is gone, and so are its requests


def test_a_held_head_for_a_client_that_left_is_dropped_quietly() -> None:
    async def main() -> list[int]:
        real, peer = await _pair()
        one = _OneWrite(real, asyncio.get_running_loop())
        one.write(b"head")
        real.transport.abort()  # the connection is gone before the loop's next turn
        peer.close()
        await asyncio.sleep(0)  # the scheduled flush runs and finds nobody
        await asyncio.sleep(0)
        return real.calls

    assert asyncio.run(main()) == []
