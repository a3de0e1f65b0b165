"""Shared pieces of the builder attack tests: a host-only loopback server that logs every
connection, a cache-mount rendezvous directory, and checks of what a build left on the host."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from mlpack.builder.runstep import MountSpec, cache_mount_dir
from mlpack.settings import Settings
from tests.unit.builder.helpers import Ctx

SECRET = b"host-loopback-secret-7c1f"


def needs_root_and_runtime() -> None:
    if os.geteuid() != 0:
        pytest.skip("RUN steps need root (overlayfs, namespaces)")
    if not (shutil.which("crun") or shutil.which("runc")):
        pytest.skip("no OCI runtime (crun or runc); tests/run.sh installs them")


@pytest.fixture
def bctx(tmp_path: Path, run_settings: Settings, busybox_httpd_image: str) -> Ctx:
    """A build context whose home is the run's (the busybox base is there); test modules import it."""
    needs_root_and_runtime()
    root = tmp_path / "ctx"
    root.mkdir()
    return Ctx(root, run_settings)


class LoopbackServer:
    """An HTTP-ish server on 127.0.0.1 only: answers SECRET, records every request it saw."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.requests: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    self.requests.append(conn.recv(4096))
                    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(SECRET), SECRET))
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()
        self._thread.join(timeout=5)


def rendezvous(settings: Settings, ident: str) -> Path:
    """The host side of ``RUN --mount=type=cache,id=<ident>,target=...`` (empty at the start)."""
    path = cache_mount_dir(settings.cache_dir, MountSpec(type="cache", target="/sync", id=ident))
    for child in path.iterdir():
        child.unlink()
    return path


def wait_for(predicate, what: str, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    """Wait for an observable event (a file, a process exit), bounded."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def sandbox_ids(settings: Settings) -> list[str]:
    root = settings.home / "sandbox"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def sandbox_leftovers(settings: Settings, sids: list[str]) -> list[str]:
    """Anything of a RUN sandbox left on the host: directories, mounts, the cgroups of ``sids``,
    processes in them."""
    found: list[str] = []
    root = settings.home / "sandbox"
    if root.exists():
        found += [f"dir {p}" for p in root.iterdir()]
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        for line in fh:
            point = line.split()[4]
            if point.startswith(str(root)) or "/binds/" in point and str(settings.home) in point:
                found.append(f"mount {point}")
    scratch = settings.cache_dir / "build" / "tmp"
    if scratch.exists():  # a killed step's upper directory
        found += [f"upper {p}" for p in scratch.glob("upper-*")]
    cg = Path("/sys/fs/cgroup")
    for sid in sids:
        found += [f"cgroup {p}" for p in [cg / "mlpack" / sid, *cg.glob(f"*/mlpack/{sid}")] if p.is_dir()]
    return found
