"""Structured JSON logs: one object per line on stdout, uvicorn's loggers included.

Server events go through the standard logging module (JsonFormatter). The
access log, one line per request (method, path, status, latency, request
id), has its own writer (:class:`AccessLog`): through logging it cost about
60 µs per request, a third of the whole request, so lines are formatted from
one template (strings quoted by orjson, once for fields that repeat) and
written in batches a few times a second, and at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any, TextIO

import orjson

__all__ = ["AccessLog", "JsonFormatter", "setup_logging", "uvicorn_log_config", "server_logger"]

server_logger = logging.getLogger("mlpack.server")

# uvicorn adds "color_message" (ANSI escapes) to its records: not for JSON logs.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName", "color_message"}


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", ...extra fields}`` as one JSON line."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


def setup_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """Send mlpack's and uvicorn's logs to ``stream`` (stdout) as JSON lines."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    for name in ("mlpack", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
    # mlpack writes its own access log with the request id; uvicorn's would double it.
    logging.getLogger("uvicorn.access").disabled = True


def uvicorn_log_config(level: str = "info") -> dict[str, Any]:
    """A logging dictConfig for uvicorn (also applied in worker processes)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "mlpack.server.logs.JsonFormatter"}},
        "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}},
        "loggers": {
            "mlpack": {"handlers": ["stdout"], "level": level.upper(), "propagate": False},
            "uvicorn": {"handlers": ["stdout"], "level": level.upper(), "propagate": False},
            "uvicorn.error": {"handlers": ["stdout"], "level": level.upper(), "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
        },
    }


# One access line (keys in JsonFormatter's order, "ms" with 3 decimals): the time stamp, the
# request id, the quoted fields up to "ms", the milliseconds, the client and the end.
_LINE = b'{"ts":"%s","level":"info","logger":"mlpack.access","msg":"request","request_id":%s%s%.3f%s'
_PARTS_KEPT = 1024


class AccessLog:
    """Buffered JSON access log lines, same shape as :class:`JsonFormatter`'s.

    Lines are appended to a buffer and written when it passes ``max_bytes``
    or ``interval`` seconds after the first unwritten line (a timer on the
    running loop), and at :meth:`flush` (shutdown). ``stream`` defaults to
    stdout; it is looked up at write time, so test capture works.
    """

    def __init__(self, stream: Any = None, *, interval: float = 0.2, max_bytes: int = 64 * 1024) -> None:
        self._stream = stream
        self._buf = bytearray()
        self._interval = interval
        self._max = max_bytes
        self._timer: asyncio.TimerHandle | None = None
        self._second = -1
        self._ms = -1
        self._stamp = b""
        self._ts_bytes = b""
        self._parts: dict[tuple, tuple[bytes, bytes]] = {}

    def _ts(self, now: float) -> bytes:
        ms = int(now * 1000)
        if ms != self._ms:  # one stamp per millisecond, strftime once per second
            self._ms = ms
            second = ms // 1000
            if second != self._second:
                self._second = second
                self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)).encode()
            self._ts_bytes = b"%s.%03dZ" % (self._stamp, ms % 1000)
        return self._ts_bytes

    def _fields(self, method: str, path: str, status: int, client: str) -> tuple[bytes, bytes]:
        """The line's parts around "ms" for these fields, quoted once (requests repeat them)."""
        if len(self._parts) >= _PARTS_KEPT:  # paths and clients come from outside: bounded
            self._parts.clear()
        parts = self._parts[(method, path, status, client)] = (
            b',"method":%s,"path":%s,"status":%s,"ms":' % (orjson.dumps(method), orjson.dumps(path), orjson.dumps(status)),
            b',"client":%s}\n' % orjson.dumps(client),
        )
        return parts

    def record(self, request_id: str, method: str, path: str, status: int, seconds: float, client: str) -> None:
        """Queue one line for a finished request."""
        parts = self._parts.get((method, path, status, client)) or self._fields(method, path, status, client)
        self._buf += _LINE % (self._ts(time.time()), orjson.dumps(request_id), parts[0], seconds * 1000, parts[1])
        if len(self._buf) >= self._max:
            self.flush()
        elif self._timer is None:
            try:
                self._timer = asyncio.get_running_loop().call_later(self._interval, self.flush)
            except RuntimeError:  # no loop (plain call): write now
                self.flush()

    def flush(self) -> None:
        """Write every queued line now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._buf:
            return
        data, self._buf = bytes(self._buf), bytearray()
        stream = self._stream or sys.stdout
        binary = getattr(stream, "buffer", None)
        try:
            if binary is not None:
                stream.flush()  # keep order with text already written
                binary.write(data)
                binary.flush()
            else:
                try:
                    stream.write(data)
                except TypeError:
                    stream.write(data.decode())
                stream.flush()
        except (OSError, ValueError):  # closed stdout: drop the lines, keep serving
            pass
