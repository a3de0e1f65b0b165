"""A root filesystem that runs the host's own Python, for probes that need more than busybox.

The tree is a handful of directories and the merged-/usr symlinks; the
host's /usr is bind-mounted read-only over its /usr by the container. Used by
the security tests to make real system calls (through ctypes) from inside a
real crun or runc container without bootstrapping a Debian image.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

PYTHON = "/usr/bin/python3"  # the distribution's, whose libraries all live under /usr


def make_root(root: Path) -> Path:
    """Creates the tree under ``root`` (which must not exist) and returns it."""
    for d in ("proc", "sys", "dev", "tmp", "etc", "usr", "root", "home/app"):
        (root / d).mkdir(parents=True)
    for link in ("bin", "lib", "lib64", "sbin"):
        if os.path.islink(f"/{link}"):
            os.symlink(os.readlink(f"/{link}"), root / link)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\napp:x:10001:10001::/home/app:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\napp:x:10001:\nstaff:x:50:app\n")
    (root / "tmp").chmod(0o1777)
    return root


def config(**extra: object) -> dict:
    cfg: dict = {"Env": ["PATH=/usr/bin:/bin"], "WorkingDir": "/", "Cmd": [PYTHON, "-c", "pass"]}
    cfg.update(extra)
    return cfg


# A one-thread asyncio echo server on port 7000: thousands of connections under --pids-limit 128.
ECHO = """
import asyncio
async def echo(r, w):
    while data := await r.read(65536):
        w.write(data)
        await w.drain()
    w.close()
async def main():
    server = await asyncio.start_server(echo, "127.0.0.1", 7000, backlog=4096)
    print("listening", flush=True)
    await server.serve_forever()
asyncio.run(main())
"""


def process_status(pid: int) -> dict[str, int]:
    """Threads and VmRSS (kB) of process ``pid``."""
    out = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("Threads", "VmRSS"):
                out[key] = int(value.split()[0])
    return out


def round_trip(sock: socket.socket) -> bytes:
    """Four bytes to the echo server and what comes back."""
    sock.sendall(b"ping")
    return sock.recv(4)
