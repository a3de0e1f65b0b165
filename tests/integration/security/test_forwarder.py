"""Finding 8: thousands of idle connections to a published port, against the monitor process.

The forwarder lives in the container's monitor, outside the container's
limits. Before, each connection cost it two threads (2,000 idle connections:
4,003 threads, +90 MB while the container had --pids-limit 128); now one
event loop relays them all and stops accepting at its connection limit.
The server inside is a one-thread asyncio echo server (the host's Python),
so that the container itself can hold all of them under --pids-limit 128.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from mlpack.runtime import ImageSource, run
from mlpack.runtime.forward import MAX_CONNECTIONS
from mlpack.types import Limits
from tests.integration.security import hostpython
from tests.integration.security.hostpython import ECHO, process_status, round_trip

pytestmark = [pytest.mark.integration, pytest.mark.runtime]

@pytest.mark.parametrize("runtime_name", ["crun", "runc"], indirect=True)
def test_idle_connections_cost_the_monitor_no_threads(runtime_settings, tmp_path: Path, cleanup_containers):
    if not os.path.exists(hostpython.PYTHON):
        pytest.skip(f"{hostpython.PYTHON} is not installed")
    root = hostpython.make_root(tmp_path / "root")
    src = ImageSource([root], hostpython.config(ExposedPorts={"7000/tcp": {}}), ref="hostpython-dir")
    c = run(src, command=[hostpython.PYTHON, "-c", ECHO], volumes=["/usr:/usr:ro"], limits=Limits(pids=128),
            settings=runtime_settings)
    cleanup_containers.append(c)
    host, port = c.url.removeprefix("http://").split(":")
    for chunk in c.follow_logs():  # until the server inside says it listens (or the container ends)
        if "listening" in chunk:
            break
    first = socket.create_connection((host, int(port)), timeout=30)
    assert round_trip(first) == b"ping", c.logs()
    monitor = c.state()["monitor_pid"]
    before = process_status(monitor)
    clients = [first]
    try:
        for _ in range(1999):
            clients.append(socket.create_connection((host, int(port)), timeout=30))
        # The loop accepts in order: an answer on the last relayed connection means it holds all of them.
        assert round_trip(clients[MAX_CONNECTIONS - 1]) == b"ping"
        during = process_status(monitor)
    finally:
        for s in clients[1:]:
            s.close()
    assert during["Threads"] <= before["Threads"], (before, during)  # was +4,000
    assert during["VmRSS"] - before["VmRSS"] < 40 * 1024, (before, during)  # kB; was +90 MB
    assert round_trip(first) == b"ping"  # and it serves on
    first.close()
