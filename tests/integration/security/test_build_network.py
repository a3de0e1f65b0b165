"""Finding 1: RUN steps ran in the host's network namespace. Now each step has its own
namespace; the default uplink (slirp4netns) never reaches the host's loopback, and the host's
ports, interfaces and traffic are invisible to it."""

from __future__ import annotations

import threading
import urllib.request
from pathlib import Path

import pytest

from mlpack.errors import BuildError
from mlpack.oci.base import BASE_REF
from mlpack.settings import Settings
from tests.integration.security.buildattack import (  # noqa: F401 - bctx is a fixture
    bctx,
    SECRET, LoopbackServer, needs_root_and_runtime, rendezvous, wait_for,
)
from tests.unit.builder.helpers import Ctx

pytestmark = [pytest.mark.build, pytest.mark.runtime]


@pytest.fixture
def server():  # type: ignore[no-untyped-def]
    srv = LoopbackServer()
    yield srv
    srv.close()


def test_default_network_cannot_reach_the_host_loopback(bctx: Ctx, busybox_httpd_image: str,
                                                        server: LoopbackServer) -> None:
    port_hex = f":{server.port:04X}"
    image = bctx.build(
        f"FROM {busybox_httpd_image}\n"
        f"RUN wget -q -T 5 -O /via-lo http://127.0.0.1:{server.port}/ ; echo lo=$? > /tries;"
        f" wget -q -T 5 -O /via-gw http://10.0.2.2:{server.port}/ ; echo gw=$? >> /tries;"
        " cat /proc/net/tcp /proc/net/tcp6 > /ports; cut -d: -f1 /proc/net/dev | tail -n +3 | tr -d ' ' > /ifaces\n",
        no_cache=True,
    )
    tries = bctx.layer_file(image, "tries").decode()
    assert "lo=0" not in tries and "gw=0" not in tries, tries
    members = bctx.layer_members(image)
    for name in ("via-lo", "via-gw"):
        if name in members:
            assert SECRET not in bctx.layer_file(image, name)
    assert server.requests == []  # the host's server never saw a connection
    assert port_hex not in bctx.layer_file(image, "ports").decode()  # host's listening ports are not visible
    assert sorted(bctx.layer_file(image, "ifaces").decode().split()) == ["lo", "tap0"]


def test_network_host_is_an_explicit_opt_in(bctx: Ctx, busybox_httpd_image: str, server: LoopbackServer) -> None:
    image = bctx.build(
        f"FROM {busybox_httpd_image}\n"
        # busybox's static wget crashes in the host's namespace (its resolver); nc does the same GET
        f"RUN --network=host printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc 127.0.0.1 {server.port} > /got\n",
        no_cache=True,
    )
    assert SECRET in bctx.layer_file(image, "got")
    assert len(server.requests) == 1


def test_network_none_and_the_build_flag(bctx: Ctx, busybox_httpd_image: str, server: LoopbackServer) -> None:
    image = bctx.build(
        f"FROM {busybox_httpd_image}\n"
        "RUN cut -d: -f1 /proc/net/dev | tail -n +3 | tr -d ' ' > /ifaces\n",
        no_cache=True, network="none",
    )
    assert bctx.layer_file(image, "ifaces").decode().split() == ["lo"]
    with pytest.raises(BuildError, match="exit code"):
        bctx.build(f"FROM {busybox_httpd_image}\nRUN wget -q -T 5 -O /got http://127.0.0.1:{server.port}/\n",
                   no_cache=True, network="none")
    assert server.requests == []


SNIFF = r'''
import os, socket, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))  # ETH_P_ALL: every frame
s.setblocking(False)
open("/sync/ready", "w").close()
deadline = time.monotonic() + 120
while not os.path.exists("/sync/sent") and time.monotonic() < deadline:
    time.sleep(0.02)
seen, frames = b"", 0
while True:
    try:
        seen += s.recv(65535)
        frames += 1
    except BlockingIOError:
        break
with open("/sniffed", "w") as fh:
    fh.write("marker=%s sent=%s frames=%d" % (b"Bearer sniff-me" in seen, os.path.exists("/sync/sent"), frames))
'''


def test_af_packet_sees_none_of_the_hosts_traffic(tmp_path: Path, run_settings: Settings, python_base_image,  # type: ignore[no-untyped-def]
                                                  server: LoopbackServer) -> None:
    needs_root_and_runtime()
    ctx = Ctx(tmp_path / "ctx", run_settings)
    ctx.write("sniff.py", SNIFF)
    sync = rendezvous(run_settings, "security-sniff")

    def host_side() -> None:  # once the sniffer listens, send credentials over the host's loopback
        wait_for(lambda: (sync / "ready").exists(), "the sniffer")
        req = urllib.request.Request(f"http://127.0.0.1:{server.port}/",
                                     headers={"Authorization": "Bearer sniff-me"})
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - our own loopback server
            assert resp.read() == SECRET
        (sync / "sent").touch()

    t = threading.Thread(target=host_side)
    t.start()
    try:
        image = ctx.build(
            f"FROM {BASE_REF}\n"
            "RUN --mount=type=cache,id=security-sniff,target=/sync "
            "--mount=type=bind,source=sniff.py,target=/sniff.py python3 /sniff.py\n",
            no_cache=True,
        )
    finally:
        t.join(timeout=150)
    result = ctx.layer_file(image, "sniffed").decode()
    assert "sent=True" in result  # the host really sent while the socket was open
    assert "marker=False" in result, result
    assert any(b"Bearer sniff-me" in r for r in server.requests)


def test_the_hosts_own_addresses_are_unreachable(bctx: Ctx, busybox_httpd_image: str,
                                                 server: LoopbackServer) -> None:
    from mlpack.runtime.uplink import host_addresses

    addresses = host_addresses()
    if not addresses:
        pytest.skip("this host has no address besides loopback")
    tries = "; ".join(f"nc -w 5 {a} {server.port} </dev/null 2>> /nc.err" for a in addresses)
    image = bctx.build(
        f"FROM {busybox_httpd_image}\n"
        f"RUN ip route > /routes; {tries}; ip route del unreachable {addresses[0]} 2> /del.err; echo $? > /del.rc\n",
        no_cache=True)
    routes = bctx.layer_file(image, "routes").decode()
    assert all(f"unreachable {a}" in routes for a in addresses), routes
    errors = bctx.layer_file(image, "nc.err").decode()
    assert errors.count("No route to host") == len(addresses), errors  # never a connection, not even refused
    assert bctx.layer_file(image, "del.rc") != b"0\n"  # the step cannot lift the fence (no CAP_NET_ADMIN)
    assert server.requests == []
