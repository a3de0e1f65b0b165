"""Published ports in each network mode; the default mode has no network but its ports."""

from __future__ import annotations

import socket
import time
import urllib.request

import pytest

from mlpack.errors import RunError
from mlpack.runtime import run

pytestmark = pytest.mark.runtime


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 15.0) -> bytes:
    """GET ``url``, retrying while the server inside starts (bounded by ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.mark.parametrize("runtime_name", ["crun", "runc"], indirect=True)
def test_server_answers_on_published_port(runtime_settings, busybox_source, cleanup_containers):
    port = _free_port()
    c = run(busybox_source(), ports=[f"{port}:8080"], settings=runtime_settings)
    cleanup_containers.append(c)
    assert c.url == f"http://127.0.0.1:{port}"
    assert get(c.url) == b"hello from busybox\n"
    # the default network is a namespace of its own with nothing but a loopback
    r = c.exec(["cat", "/proc/net/dev", "/proc/net/route"])
    lines = r.stdout.splitlines()
    ifaces = [line.split(":")[0].strip() for line in lines[2:] if ":" in line]
    assert ifaces == ["lo"], r.stdout
    assert lines[-1].startswith("Iface")  # the routing table is empty: nothing is reachable


def test_ports_none_publishes_exposed_ports_on_free_ports(runtime_settings, busybox_source, cleanup_containers):
    c = run(busybox_source(), settings=runtime_settings)  # ports=None: every EXPOSEd port
    cleanup_containers.append(c)
    assert c.url and c.url.startswith("http://127.0.0.1:")
    assert get(c.url) == b"hello from busybox\n"


def test_host_network_and_a_different_host_port(runtime_settings, busybox_source, cleanup_containers):
    inner, outer = _free_port(), _free_port()
    cmd = ["httpd", "-f", "-p", f"127.0.0.1:{inner}", "-h", "/www"]
    c = run(busybox_source(), command=cmd, network="host", ports=[f"{outer}:{inner}"], settings=runtime_settings)
    cleanup_containers.append(c)
    assert get(f"http://127.0.0.1:{inner}/") == b"hello from busybox\n"  # shares the host's network
    assert get(f"http://127.0.0.1:{outer}/") == b"hello from busybox\n"  # forwarded


def test_network_none_has_only_a_loopback(runtime_settings, busybox_source, cleanup_containers):
    c = run(busybox_source(), command=["cat", "/proc/net/dev"], network="none", ports=(), detach=False,
            settings=runtime_settings)
    cleanup_containers.append(c)
    assert [line.split(":")[0].strip() for line in c.logs().splitlines()[2:]] == ["lo"]
    assert c.record["netns"] is None


def test_network_none_refuses_ports_and_taken_port_is_a_clear_error(runtime_settings, busybox_source):
    with pytest.raises(RunError, match="publishes no ports"):
        run(busybox_source(), network="none", ports=["8080:8080"], settings=runtime_settings)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        before = set(runtime_settings.containers_dir.glob("*/record.json"))
        with pytest.raises(RunError, match="already in use"):
            run(busybox_source(), ports=[f"{port}:8080"], settings=runtime_settings)
        assert set(runtime_settings.containers_dir.glob("*/record.json")) == before
