"""The host addresses a RUN step's namespace fences off, read from /proc/net/fib_trie; stopping the uplink."""

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


def _uplink_like(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A process that, like slirp4netns, exits when its exit pipe closes, but only once ``go`` exists."""
    import os
    import subprocess
    import sys

    from mlpack.runtime.uplink import Uplink

    exit_r, exit_w = os.pipe()
    code = ("import os, sys, time\n"
            "os.read(int(sys.argv[1]), 1)\n"
            "while not os.path.exists(sys.argv[2]):\n    time.sleep(0.01)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(exit_r), str(tmp_path / "go")], pass_fds=(exit_r,))
    os.close(exit_r)
    return Uplink(proc, exit_w)


def test_stop_without_waiting_returns_and_reaps_the_uplink_aside(tmp_path: Path) -> None:
    import time

    up = _uplink_like(tmp_path)
    up.stop(wait=False)  # returns although the process cannot exit yet
    assert up.exit_fd == -1 and up.proc.poll() is None
    (tmp_path / "go").touch()
    deadline = time.monotonic() + 60
    while up.proc.returncode is None and time.monotonic() < deadline:  # the reaper thread's wait() sets it
        time.sleep(0.01)
    assert up.proc.returncode == 0


def test_stop_waits_for_the_uplink_by_default(tmp_path: Path) -> None:
    up = _uplink_like(tmp_path)
    (tmp_path / "go").touch()
    up.stop()
    assert up.proc.returncode == 0 and up.exit_fd == -1
