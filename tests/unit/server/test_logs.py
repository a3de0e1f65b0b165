"""Structured logs: the buffered access log and the JSON formatter."""

from __future__ import annotations

import asyncio
import io
import json
import logging

from mlpack.server.logs import AccessLog, JsonFormatter


def test_access_line_shape_without_a_loop_is_written_at_once() -> None:
    out = io.BytesIO()
    AccessLog(out).record("r1", "POST", "/predict", 200, 0.0012345, "127.0.0.1")
    line = json.loads(out.getvalue())
    assert line["logger"] == "mlpack.access" and line["level"] == "info"
    assert (line["request_id"], line["status"], line["ms"], line["path"]) == ("r1", 200, 1.234, "/predict")
    assert line["ts"].endswith("Z") and "T" in line["ts"]


def test_access_lines_are_batched_then_flushed_by_the_timer() -> None:
    out = io.BytesIO()
    log = AccessLog(out, interval=0.05)

    async def main() -> tuple[bytes, bytes]:
        for i in range(3):
            log.record(f"r{i}", "GET", "/metrics", 200, 0.001, "-")
        before = out.getvalue()  # nothing yet: the loop has not had a turn since
        for _ in range(10_000):  # bounded: until the timer's flush shows up
            if out.getvalue():
                break
            await asyncio.sleep(0.005)
        return before, out.getvalue()

    before, after = asyncio.run(main())
    assert before == b""
    assert [json.loads(x)["request_id"] for x in after.splitlines()] == ["r0", "r1", "r2"]


def test_buffer_limit_forces_a_write() -> None:
    out = io.BytesIO()
    log = AccessLog(out, interval=60, max_bytes=1024)

    async def main() -> None:
        for i in range(20):
            log.record(f"r{i}", "GET", "/", 200, 0.001, "-")

    asyncio.run(main())
    assert len(out.getvalue().splitlines()) >= 5


def test_json_formatter_keeps_extra_fields_and_exceptions() -> None:
    record = logging.makeLogRecord({"name": "mlpack.server", "levelname": "ERROR", "msg": "boom %s", "args": ("x",)})
    record.request_id = "abc"
    try:
        raise ValueError("bad")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    doc = json.loads(JsonFormatter().format(record))
    assert doc["msg"] == "boom x" and doc["request_id"] == "abc" and doc["level"] == "error"
    assert "ValueError: bad" in doc["exc"]


def test_access_line_quotes_what_clients_control() -> None:
    out = io.BytesIO()
    log = AccessLog(out)
    hostile = '/v2/"x"\\\n\u2028é' + "a" * 3000
    for _ in range(2):  # the second line comes from the quoting cache
        log.record('id"1', "POST", hostile, 404, 0.5, '1.2.3.4"')
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [(x["path"], x["request_id"], x["client"], x["status"], x["ms"]) for x in lines] == [
        (hostile, 'id"1', '1.2.3.4"', 404, 500.0)
    ] * 2
    assert list(lines[0]) == ["ts", "level", "logger", "msg", "request_id", "method", "path", "status", "ms", "client"]


def test_access_log_quoting_cache_is_bounded() -> None:
    log = AccessLog(io.BytesIO())
    for i in range(5000):  # every path different, as a scanner sends them
        log.record("r", "GET", f"/v2/x{i}", 404, 0.001, "-")
    assert len(log._parts) <= 1024
