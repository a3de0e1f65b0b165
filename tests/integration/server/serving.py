"""Start ``mlpack-serve`` as a real process on 127.0.0.1 and wait until it is ready.

A :class:`Served` has what :func:`mlpack.endpoint.wait_ready` reads of a
container (``url``, ``status``, ``exit_code``, ``logs()``): readiness is
polled by that one function, as for containers.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from mlpack.endpoint import wait_ready

READY_TIMEOUT_S = 90  # a bound on a hang, not a guess at speed: ready is polled, never slept for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Served:
    url: str
    port: int
    proc: subprocess.Popen
    log: Path
    grpc_port: int = 0

    @property
    def status(self) -> str:
        return "running" if self.proc.poll() is None else "exited"

    @property
    def exit_code(self) -> int | None:
        return self.proc.poll()

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def lines(self) -> list[dict]:
        out = []
        for line in self.log.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out


def get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def post(url: str, body: bytes, timeout: float = 5, headers: dict | None = None) -> tuple[int, bytes, dict]:
    req = urllib.request.Request(url, data=body, headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def start(bundle: Path, log: Path, *args: str, env: dict | None = None, via_env: bool = False) -> Served:
    """Run ``python -m mlpack.server``; ``via_env`` passes bundle, host and port as MLPACK_* variables."""
    port, grpc_port = free_port(), free_port()
    where = {"MLPACK_BUNDLE": str(bundle), "MLPACK_HOST": "127.0.0.1", "MLPACK_PORT": str(port), "MLPACK_GRPC_PORT": str(grpc_port)}
    flags = ["--bundle", str(bundle), "--host", "127.0.0.1", "--port", str(port), "--grpc-port", str(grpc_port)]
    cmd = [sys.executable, "-m", "mlpack.server", *([] if via_env else flags), *args]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(where if via_env else {}), **(env or {})}
    handle = log.open("wb")
    proc = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, env=full_env)
    handle.close()
    return Served(f"http://127.0.0.1:{port}", port, proc, log, grpc_port)


def stop(served: Served, timeout: float = 30) -> int:
    if served.proc.poll() is None:
        served.proc.send_signal(signal.SIGTERM)
        try:
            served.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            served.proc.kill()
            served.proc.wait(5)
    return served.proc.returncode


@contextmanager
def serving(bundle: Path, log: Path, *args: str, env: dict | None = None) -> Iterator[Served]:
    served = start(bundle, log, *args, env=env)
    try:
        wait_ready(served, timeout=READY_TIMEOUT_S)
        yield served
    finally:
        stop(served)


def external_python(variable: str, package: str) -> str:
    """The python of a venv that has ``package`` (named by ``variable``; .ci/bootstrap makes
    .venv-clients/PACKAGE), or a skip saying why there is none."""
    import pytest

    python = os.environ.get(variable)
    if not python:
        pytest.skip(f"{package} cannot share the test venv (its pins downgrade pandas/psutil) and .ci/bootstrap could not "
                    f"make .venv-clients/{package} (no package index?): set {variable} to a venv's python that has it")
    return python
