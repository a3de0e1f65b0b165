"""uvicorn's zttp HTTP/2 protocol, made fit for gRPC's long-lived channels.

zttp caps each connection, without a setting, at 4096 streams ever opened and
256 streams reset by the peer; past either it ends the connection with GOAWAY
ENHANCE_YOUR_CALM and the calls in flight fail. A gRPC channel (tritonclient's,
KServe's) keeps one connection for its life, so this protocol retires each
connection before a cap: after :data:`STREAMS_PER_CONNECTION` streams or
:data:`RESETS_PER_CONNECTION` peer resets it sends the graceful two-step
GOAWAY that grpc's own servers send (NO_ERROR with the last stream id 2^31-1,
then a PING; once the PING's ack shows the client has seen the GOAWAY, a
second GOAWAY with the real last stream id). The client opens a new
connection for its next calls, the calls in flight finish, then the transport
closes: no call fails. The margins cover what a client may still open before
it reads the first GOAWAY (at most ``max_concurrent_streams``, 128, at once).

Also, unlike uvicorn's HTTP/2 protocol: an idle connection is retired the same
graceful way after :data:`IDLE_TIMEOUT_S` (not uvicorn's 5 s keep-alive);
server shutdown retires connections the same way and serves the calls that
arrive before the client has seen it (never an HTTP 503; a stream past the
final GOAWAY is reset REFUSED_STREAM, which gRPC clients retry); trailers are
sent whatever ``te`` says; an error can be Trailers-Only (the
``mlpack.trailers_only`` extension); and a response that ends before its
request body is reset NO_ERROR so the client stops sending.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import zttp
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.zttp_h2_impl import RequestResponseCycle, ZttpH2Protocol

from mlpack.server.connection import track_requests
from mlpack.server.logs import server_logger

__all__ = ["GrpcH2Protocol", "STREAMS_PER_CONNECTION", "RESETS_PER_CONNECTION", "IDLE_TIMEOUT_S"]

# zttp's fixed caps are 4096 streams and 256 peer resets per connection; the client may open up
# to 128 more streams (zttp's SETTINGS_MAX_CONCURRENT_STREAMS), and reset them all, after we ask it to go.
STREAMS_PER_CONNECTION = 4096 - 4 * 128
RESETS_PER_CONNECTION = 256 - 128 - 32
IDLE_TIMEOUT_S = 600
MAX_STREAM_ID = 2**31 - 1
REFUSED_STREAM = 0x7
_PING = b"mlpk-bye"
_PING_FRAME = b"\x00\x00\x08\x06\x00\x00\x00\x00\x00" + _PING  # PING, 8 bytes, stream 0


class GrpcCycle(RequestResponseCycle):
    """One stream: writes the response head, message and trailers in one transport write."""

    async def send(self, message: Any) -> None:
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        kind = message["type"]
        if not self.response_started:
            if kind != "http.response.start":
                raise RuntimeError(f"Expected ASGI message 'http.response.start', but got '{kind}'.")
            self.response_started = True
            self.trailers_expected = message.get("trailers", False)
            if message.get("trailers_only", False):
                self.stream.send_response(message["status"], list(message["headers"]), True)
                self._done()
                return
            if "mlpack.body" in message:  # the mlpack.unary extension: head, message and trailers at once
                self.stream.send_response(message["status"], list(message["headers"]))
                self.stream.send_data(message["mlpack.body"])
                self.body_complete = True
                self.stream.end_message(list(message["mlpack.trailers"]))
                self._done()
                return
            self.stream.send_response(message["status"], list(message.get("headers", ())))
            # written with the message that follows
        elif not self.body_complete:
            if kind != "http.response.body":
                raise RuntimeError(f"Expected ASGI message 'http.response.body', but got '{kind}'.")
            body = message.get("body", b"")
            if body:
                self.stream.send_data(body)
            if message.get("more_body", False):
                self.transport.write(self.conn.data_to_send())
            else:
                self.body_complete = True
                if not self.trailers_expected:
                    self.stream.end_message()
                    self._done()
        elif not self.response_complete:
            if kind != "http.response.trailers":
                raise RuntimeError(f"Expected ASGI message 'http.response.trailers', but got '{kind}'.")
            self.trailers.extend(message.get("headers", ()))
            if not message.get("more_trailers", False):
                self.stream.end_message(self.trailers or None)  # whatever `te` said: gRPC needs them
                self._done()
        else:
            raise RuntimeError(f"Unexpected ASGI message '{kind}' sent, after response already completed.")

    flush_soon: Any = None  # the connection's GrpcH2Protocol.flush_soon

    def _done(self) -> None:
        self.response_complete = True
        if self.more_body:  # answered before the request ended: tell the client to stop sending
            self.stream.reset(0)
        self.message_event.set()
        self.flush_soon()
        self.on_response(self.stream.stream_id)
        self.on_response = lambda stream_id: None


class GrpcH2Protocol(ZttpH2Protocol):
    """HTTP/2 (prior knowledge) for the gRPC port; see the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.access_log = False  # mlpack's own access log records gRPC calls
        self.opened = 0
        self.resets = 0
        self.retiring = False  # the first GOAWAY is out
        self.highest = 0  # the highest stream id the client opened
        self.last_stream_id: int | None = None  # set by the final GOAWAY
        self.flush_pending = False

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        track_requests(self.server_state)  # gRPC calls read but not yet started join micro-batches too
        super().connection_made(transport)

    def resume_reading_if_idle(self) -> None:
        # uvicorn's walks every stream of the connection (for a body over the high-water mark)
        # at each receive and each stream's end: with 32 calls in flight on a channel, 64 walks
        # per call. Reading is paused only for such a body (handle_events), so only then walk.
        if self.flow.read_paused:
            super().resume_reading_if_idle()

    # -- writing: one write per loop iteration, however many streams answered in it ----------

    def flush_soon(self) -> None:
        """Write what zttp has queued at the end of this loop iteration (one syscall for all the
        streams that finish in it: the write is most of a small call's cost)."""
        if not self.flush_pending:
            self.flush_pending = True
            self.loop.call_soon(self._flush_pending)

    def _flush_pending(self) -> None:
        self.flush_pending = False
        if not self.transport.is_closing():
            self.flush()

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        try:
            self.conn.receive_data(data)
            self.handle_events()
        except zttp.RemoteProtocolError as exc:
            self.logger.warning("Invalid HTTP/2 frame received: %s", exc)
            self.flush()
            self.transport.close()
            return
        self.flush_soon()  # SETTINGS and PING acks, WINDOW_UPDATEs, with the answers of this iteration
        if not self.cycles and self.timeout_keep_alive_task is None and not self.transport.is_closing():
            self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    # -- retiring the connection ---------------------------------------------------

    def retire(self, why: str) -> None:
        """Ask the client to move to a new connection (GOAWAY NO_ERROR 2^31-1, then PING)."""
        if self.retiring or self.transport.is_closing():
            return
        self.retiring = True
        self.conn.close(0, MAX_STREAM_ID)
        self.transport.write(self.conn.data_to_send() + _PING_FRAME)
        server_logger.info("grpc connection retired", extra={
            "reason": why, "streams": self.opened, "resets": self.resets, "client": self.client[0] if self.client else "-",
        })

    def _final_goaway(self) -> None:
        # The client acked the PING sent after the first GOAWAY, so it has read that GOAWAY: every
        # stream it will ever open here has arrived.
        self.last_stream_id = self.highest
        self.conn.close(0, self.last_stream_id)
        self.flush()
        if not self.cycles:
            self.transport.close()

    def shutdown(self) -> None:
        # Not uvicorn's way (503 to new streams, close once idle): calls may still be on the wire.
        self.retire("server shutdown")

    def timeout_keep_alive_handler(self) -> None:
        if self.retiring:  # a whole idle period and no PING ack: the client is gone
            self.transport.close()
        else:
            self.retire("idle")

    def on_stream_closed(self) -> None:
        if self.last_stream_id is not None and not self.cycles and not self.transport.is_closing():
            self.flush()  # the last answers, queued for the end of this iteration
            self.transport.close()
            return
        super().on_stream_closed()

    # -- events ------------------------------------------------------------------------

    def handle_events(self) -> None:
        for event in self.events():
            if isinstance(event, zttp.Data):
                cycle = self.cycles.get(event.stream_id)
                if cycle is None or cycle.response_complete:
                    continue
                cycle.body += event.data
                if len(cycle.body) > HIGH_WATER_LIMIT:  # pragma: no cover - zttp's windows are smaller
                    self.flow.pause_reading()
                cycle.message_event.set()
            elif isinstance(event, zttp.Request):
                self.handle_request(event)
            elif isinstance(event, zttp.EndOfMessage):
                cycle = self.cycles.get(event.stream_id)
                if cycle is None or cycle.response_complete:
                    continue
                cycle.more_body = False
                cycle.message_event.set()
            elif isinstance(event, zttp.RstStream):
                self.resets += 1
                self.handle_rst_stream(event)
                if self.resets >= RESETS_PER_CONNECTION:
                    self.retire("stream resets")
            elif isinstance(event, zttp.Ping):
                if event.ack and event.data == _PING and self.retiring and self.last_stream_id is None:
                    self._final_goaway()
            elif isinstance(event, zttp.GoAway):
                # The client is leaving: it opens no new stream; finish those in flight.
                self.shutdown_requested = True
                if not self.cycles:
                    self._close_connection()

    def handle_request(self, event: zttp.Request) -> None:
        self.opened += 1
        self.highest = max(self.highest, event.stream_id)
        if self.last_stream_id is not None and event.stream_id > self.last_stream_id:
            self.conn.stream(event.stream_id).reset(REFUSED_STREAM)  # never processed: the client retries it
            return
        if not event.target.isascii():
            self.conn.stream(event.stream_id).reset(0x1)  # PROTOCOL_ERROR, RFC 9113 8.1.1
            return
        headers = event.headers
        if isinstance(headers, zttp.HeaderBlock):
            headers = headers.to_list(lowercase_names=True)
        # else a list of this event's own: HTTP/2 field names are lowercase (zttp refuses a
        # request with an uppercase byte in one, RFC 9113 8.2.1), so no copy to lowercase them
        path = event.path.decode("ascii")
        cycle: GrpcCycle

        def gone() -> bool:
            return cycle.disconnected

        scope = {
            "type": "http",
            "asgi": {"version": self.asgi_version, "spec_version": "2.3"},
            "http_version": "2",
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
            "method": event.method.decode("ascii"),
            "root_path": "",
            "path": path,
            "raw_path": event.path,
            "query_string": event.query,
            "headers": headers,
            "state": self.app_state.copy(),
            "extensions": {"http.response.trailers": {}, "mlpack.trailers_only": {"disconnected": gone}, "mlpack.unary": {}},
        }
        cycle = GrpcCycle(
            scope=scope,  # type: ignore[arg-type]
            conn=self.conn,
            stream=self.conn.stream(event.stream_id),
            transport=self.transport,
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=False,
            default_headers=[],
            message_event=asyncio.Event(),
            on_response=self.on_response_complete,
            resume_reading=self.resume_reading_if_idle,
        )
        cycle.flush_soon = self.flush_soon
        self.cycles[event.stream_id] = cycle
        if event.end_stream:
            cycle.more_body = False
            cycle.message_event.set()
        task = self.loop.create_task(cycle.run_asgi(self.app), context=contextvars.Context())
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)
        if self.opened >= STREAMS_PER_CONNECTION:
            self.retire("streams")
