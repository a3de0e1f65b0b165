"""Start ``mlpack-serve`` as a real process on 127.0.0.1 and wait until it is ready."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator


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


def wait_ready(served: Served, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if served.proc.poll() is not None:
            raise AssertionError(f"server exited with {served.proc.returncode}:\n{served.log.read_text()[-3000:]}")
        try:
            if get(served.url + "/v2/health/ready", timeout=1)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"server not ready after {timeout}s:\n{served.log.read_text()[-3000:]}")


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
        wait_ready(served)
        yield served
    finally:
        stop(served)
