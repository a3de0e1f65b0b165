"""Talking to a serving container over HTTP: predictions, readiness, its log.

stdlib only (urllib): the notebook side needs no HTTP client, and requests
to 127.0.0.1 never go through the user's proxy.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from typing import Any

import numpy as np

from mlpack.bundle.hooks import as_array
from mlpack.errors import RunError, ServeError

__all__ = ["predict_http", "to_payload", "wait_ready", "summarize_log", "log_tail", "startup_error", "failure_hint"]


def _request(url: str, *, body: dict | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET",
                                 headers={"Content-Type": "application/json"})
    # Loopback only: never send a local request through the user's proxy.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def predict_http(url: str, payload: dict, *, timeout: float = 30.0, raw: bool = False) -> dict[str, Any]:
    """``POST {url}/predict`` and return the outputs by name: as arrays, or with ``raw``
    as the decoded JSON values (what a postprocess hook's nested outputs compare against)."""
    try:
        status, body = _request(url.rstrip("/") + "/predict", body=payload, timeout=timeout)
    except OSError as exc:
        raise ServeError(f"cannot reach the container at {url}: {exc}",
                         hint="check service.health and service.logs()") from None
    if status != 200:
        text = body.decode("utf-8", "replace")[:2000]
        raise ServeError(f"POST /predict answered {status}: {text}", status=status,
                         hint="the message above comes from the server in the container")
    outputs = json.loads(body)["outputs"]
    if not isinstance(outputs, dict):
        outputs = {"output": outputs}
    if raw:
        return {str(k): v for k, v in outputs.items()}
    return {str(k): np.asarray(v) for k, v in outputs.items()}


def to_payload(x: Any) -> dict:
    """The ``/predict`` body for ``x``: rows for one input, a mapping for several;
    a DataFrame as its columns (missing values as null), records as they are."""
    if hasattr(x, "columns") and hasattr(x, "dtypes") and hasattr(x, "isna"):  # a pandas DataFrame
        return {"inputs": {str(c): [None if _missing(v) else _plain(v) for v in x[c].tolist()] for c in x.columns}}
    if isinstance(x, (list, tuple)) and x and all(isinstance(r, dict) for r in x):
        return {"inputs": [{str(k): _plain(v) for k, v in r.items()} for r in x]}
    if isinstance(x, dict):
        return {"inputs": {str(k): _json_values(as_array(v)) for k, v in x.items()}}
    return {"inputs": as_array(x).tolist()}


def _json_values(array: np.ndarray) -> Any:
    """``array.tolist()`` with NaN as null (JSON has no NaN; a table's missing float is null)."""
    values = array.tolist()
    if array.dtype.kind != "f" or not np.isnan(array).any():
        return values

    def clean(v: Any) -> Any:
        return [clean(x) for x in v] if isinstance(v, list) else (None if v != v else v)

    return clean(values)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def wait_ready(container: Any, *, timeout: float) -> float:
    """Poll ``/v2/health/ready`` until it answers 200; seconds waited.

    A container that exits meanwhile fails at once. Either failure is a
    RunError whose message ends with the last lines of the container's log and
    whose hint fits the cause (:func:`failure_hint`).
    """
    started = time.monotonic()
    url = str(container.url).rstrip("/") + "/v2/health/ready"
    last = "no answer yet"
    while time.monotonic() - started < timeout:
        try:
            status, _ = _request(url, timeout=2.0)
            if status == 200:
                return time.monotonic() - started
            last = f"HTTP {status}"
        except OSError as exc:
            last = str(exc)
        state = str(getattr(container, "status", "running"))
        if state in ("exited", "stopped", "dead"):
            code = getattr(container, "exit_code", None)
            oom = bool(getattr(container, "oom_killed", False))
            what = (f"the container was OOM-killed before it was ready (exit status {code})" if oom
                    else f"the container exited with status {code} before it was ready")
            raise startup_error(container, what, exit_code=code, oom=oom)
        time.sleep(0.03)
    raise startup_error(container, f"the container was not ready after {timeout:.0f} s ({last})", timed_out=True)


def startup_error(container: Any, what: str, *, exit_code: int | None = None, oom: bool = False,
                  timed_out: bool = False) -> RunError:
    """A RunError for a container that did not start serving: ``what`` happened, then the
    last lines of its log in the message itself, and a hint that fits the cause."""
    logs = log_tail(container)
    name = getattr(container, "name", None)
    message = what + (f"; the last lines of its log:\n{logs}" if logs else "; its log is empty")
    hint = failure_hint(logs, oom=oom, timed_out=timed_out)
    if name:
        hint += f" (the whole log: `mlpack logs {name}`; it is kept until `mlpack rm {name}`)"
    return RunError(message, hint=hint, exit_code=exit_code, output=logs, logs=logs, container=name)


def failure_hint(logs: str, *, oom: bool = False, timed_out: bool = False) -> str:
    """What to do, read from how the container failed."""
    if oom:
        return "the model needs more memory than the limit: raise memory= (--memory)"
    if "hooks.py" in logs:
        return ("the bundle's hooks.py failed in the container: fix the cell; hooks may only use "
                "what they import themselves and what the image installs")
    missing = re.search(r"No module named '([^']+)'", logs)
    if missing:
        return (f"module {missing.group(1)!r} is not in the image: add its package with "
                "requirements=[...] (--pip SPEC) or capture in an environment that has it")
    if "ImportError" in logs or "cannot open shared object" in logs:
        return ("a package in the image does not import (a missing system library or a broken "
                "wheel): add the library with apt=[...] or pin another version")
    if "address already in use" in logs.lower():
        return "the port is taken: pick another port= (-p) or stop what listens there"
    if timed_out:
        return "the model is slow to load: raise ready_timeout, or give it more cpus="
    return "read the log lines above: the server says why it stopped"


def log_tail(container: Any, lines: int = 15) -> str:
    """The log lines worth showing when a container failed: errors first-class,
    the server's JSON lines reduced to their message (and exception), access
    lines dropped; ``service.logs()`` keeps the whole log."""
    try:
        text = container.logs()
    except Exception:  # the log is only a courtesy here
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return "\n".join(summarize_log(str(text))[-lines:])


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def summarize_log(text: str) -> list[str]:
    """Readable lines from a server log (plain or mlpack-serve's JSON lines)."""
    out: list[str] = []
    for raw in text.splitlines():
        line = _ANSI.sub("", raw).rstrip()
        if not line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            out.append(line)
            continue
        if not isinstance(record, dict):
            out.append(line)
            continue
        if record.get("logger") == "mlpack.access":
            continue  # one line per request: noise when explaining a failure
        level = str(record.get("level", "info"))
        msg = f"{level}: {record.get('msg', '')}"
        exc = record.get("exc")
        if isinstance(exc, str) and exc.strip():
            # The last lines of a traceback say what happened (and the hint, if any).
            tail = [x for x in exc.strip().splitlines() if x.strip()][-2:]
            msg += " | " + " | ".join(x.strip() for x in tail)
        out.append(msg)
    return out
