"""The host addresses a RUN step's namespace fences off, read from /proc/net/fib_trie."""

from __future__ import annotations

from pathlib import Path

from mlpack.runtime.uplink import host_addresses

FIB_TRIE = """Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
     |-- 10.0.2.15
        /32 host LOCAL
     +-- 192.0.2.0/24 2 0 2
        |-- 192.0.2.2
           /32 host LOCAL
        |-- 192.0.2.255
           /32 link BROADCAST
     |-- 172.17.0.1
        /32 host LOCAL
Local:
  +-- 0.0.0.0/0 3 0 5
     |-- 192.0.2.2
        /32 host LOCAL
"""


def test_local_addresses_without_loopback_or_slirps_own(tmp_path: Path) -> None:
    fib = tmp_path / "fib_trie"
    fib.write_text(FIB_TRIE)
    assert host_addresses(fib) == ["172.17.0.1", "192.0.2.2"]
    assert host_addresses(tmp_path / "missing") == []
