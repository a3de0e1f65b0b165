"""gRPC over HTTP/2 on the wire (grpc/doc/PROTOCOL-HTTP2.md): statuses, framing, headers.

No grpcio here: the server speaks the protocol itself. A unary request body is
exactly one length-prefixed message (1 byte compressed flag, 4 bytes big-endian
length, the bytes). Where grpc's own servers answer INTERNAL for a body the
client framed wrongly (no message, two messages, a truncated prefix, an unknown
flag, a compressed flag without ``grpc-encoding``, a payload that does not
decompress), mlpack answers INVALID_ARGUMENT: the fault is the client's, and
the protocol keeps INTERNAL for the server's own failures. A message over the
body limit, compressed or once decompressed, is RESOURCE_EXHAUSTED (as grpc's).
"""

from __future__ import annotations

import re
from enum import IntEnum

__all__ = [
    "Status", "RpcError", "ACCEPT_ENCODING", "frame", "unframe", "percent_encode", "timeout_seconds",
    "encoding_of", "STATUS_OF_HTTP",
]  # fmt: skip


class Status(IntEnum):
    """The gRPC status codes (grpc/doc/statuscodes.md)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


# A ServeError's HTTP status -> the gRPC status the protocol names for it.
STATUS_OF_HTTP = {
    400: Status.INVALID_ARGUMENT,
    404: Status.NOT_FOUND,
    413: Status.RESOURCE_EXHAUSTED,
    415: Status.INVALID_ARGUMENT,
    422: Status.INVALID_ARGUMENT,
    503: Status.UNAVAILABLE,
}


class RpcError(Exception):
    """A call's end with a non-OK status; ``message`` goes to the client as ``grpc-message``."""

    def __init__(self, code: Status, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


# Request encodings the server decodes (grpc-accept-encoding on an UNIMPLEMENTED answer).
ACCEPT_ENCODING = b"identity,deflate,gzip"
_CODINGS = ("gzip", "deflate")
_TIMEOUT = re.compile(rb"^([0-9]{1,8})([HMSmun])$")
_UNIT_S = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}
# grpc-message: printable ASCII except '%' goes as is, the rest as %XX of its UTF-8 bytes.
_PLAIN = frozenset(range(0x20, 0x7F)) - {ord("%")}


def frame(message: bytes) -> bytes:
    """One uncompressed length-prefixed message."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def encoding_of(value: bytes | None) -> str | None:
    """The ``grpc-encoding`` a request names: "identity", "gzip", "deflate", or None for another."""
    name = (value or b"identity").decode("latin-1").strip().lower()
    return name if name == "identity" or name in _CODINGS else None


def declared_length(prefix: bytes, limit: int) -> int:
    """The message length a 5-byte prefix declares; RESOURCE_EXHAUSTED over ``limit``."""
    if prefix[0] not in (0, 1):
        raise RpcError(Status.INVALID_ARGUMENT, f"the message's compressed flag is {prefix[0]}, not 0 or 1")
    length = int.from_bytes(prefix[1:5], "big")
    if length > limit:
        raise RpcError(Status.RESOURCE_EXHAUSTED, f"the request message is {length} bytes, over the limit of {limit} bytes")
    return length


def unframe(body: bytes, encoding: str, limit: int) -> bytes:
    """The one message of a unary request body, decompressed; RpcError for a badly framed body."""
    if len(body) < 5:
        what = "no message" if not body else f"a truncated message prefix ({len(body)} of 5 bytes)"
        raise RpcError(Status.INVALID_ARGUMENT, f"a unary request must carry one message; the body has {what}")
    length = declared_length(body[:5], limit)
    if len(body) != 5 + length:
        what = "is truncated" if len(body) < 5 + length else "has bytes after it (a unary request carries one message)"
        raise RpcError(Status.INVALID_ARGUMENT, f"the request message of {length} bytes {what}")
    if body[0] == 0:
        return body[5:]
    if encoding == "identity":
        raise RpcError(Status.INVALID_ARGUMENT, "the message is flagged compressed but the request has no grpc-encoding")
    from mlpack.errors import ServeError  # noqa: PLC0415 - only compressed messages need these
    from mlpack.server.routes import decoded_body  # noqa: PLC0415

    try:  # as REST decodes a Content-Encoding: the limit applies to the decompressed size
        return decoded_body(body[5:], encoding, limit)
    except ServeError as exc:
        code = STATUS_OF_HTTP.get(int(getattr(exc, "status", 422) or 422), Status.INVALID_ARGUMENT)
        raise RpcError(code, f"the message: {exc.message}") from None


def timeout_seconds(value: bytes) -> float:
    """``grpc-timeout`` (1-8 digits and a unit, H M S m u n) in seconds."""
    match = _TIMEOUT.match(value.strip())
    if match is None:
        raise RpcError(Status.INVALID_ARGUMENT, f"malformed grpc-timeout {value[:32]!r}")
    return int(match.group(1)) * _UNIT_S[match.group(2)]


def percent_encode(message: str) -> bytes:
    """``grpc-message`` encoding of ``message``."""
    data = message.encode("utf-8", "replace")
    if all(b in _PLAIN for b in data):
        return data
    return b"".join(bytes((b,)) if b in _PLAIN else b"%%%02X" % b for b in data)
