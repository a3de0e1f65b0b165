"""Private network namespaces that outlive processes, and the port forwarder into them.

The default network of a container is a namespace of its own with nothing but
a loopback: it reaches nothing and nothing reaches it, except through the
ports it publishes. Those are served by a forwarder
(:mod:`mlpack.runtime.forward`) that *listens in the host's namespace* and
*connects from inside the container's*: the listening sockets are made
first, then the forwarding thread joins the container's namespace with
setns(2) (a per-thread change), so every socket it creates afterwards lives
inside. No veth, no bridge, no iptables, no root-only plumbing beyond setns.

The namespace is pinned by a bind mount of its nsfs file under the
container's directory (as `ip netns add` does), so it survives restarts of the
container and the forwarder joins it once.
"""

from __future__ import annotations

import _socket  # socket.socket's C type: `import socket` (its enums, selectors) is ~2 ms of a CLI start
import ctypes
import errno
import fcntl
import os
import struct
import threading
from collections.abc import Sequence
from pathlib import Path

from mlpack.errors import RunError
from mlpack.runtime.mounts import bind, libc, umount
from mlpack.runtime.options import PortMapping

__all__ = ["create_netns", "delete_netns", "enter_netns", "bind_listeners"]

CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _loopback_up() -> None:
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        req = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(s, SIOCGIFFLAGS, req + b"\0" * 22)[:18])[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP) + b"\0" * 22)
    finally:
        s.close()


def create_netns(path: Path) -> None:
    """A new network namespace with loopback up, pinned at ``path``."""
    errors: list[BaseException] = []

    def work() -> None:
        # unshare(CLONE_NEWNET) moves only this thread; it dies right after.
        try:
            _check(libc().unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
            _loopback_up()
            bind(f"/proc/self/task/{threading.get_native_id()}/ns/net", str(path))
        except BaseException as exc:  # reported in the caller's thread
            errors.append(exc)

    path.touch()
    t = threading.Thread(target=work, name="mlpack-netns")
    t.start()
    t.join()
    if errors:
        path.unlink(missing_ok=True)
        raise RunError(f"cannot create a network namespace: {errors[0]}",
                       hint="mlpack needs root (CAP_SYS_ADMIN) for a private network; --network host avoids it")


def delete_netns(path: Path) -> None:
    """Unpin the namespace (it goes away with its last user) and remove the file."""
    try:
        umount(path)
    except RunError:
        pass
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def enter_netns(path: Path | str) -> None:
    """Move the *calling thread* into the network namespace pinned at ``path``."""
    fd = os.open(str(path), os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(libc().setns(fd, CLONE_NEWNET), f"setns({path})")
    finally:
        os.close(fd)


def bind_listeners(ports: Sequence[PortMapping]) -> list[tuple[PortMapping, _socket.socket]]:
    """Listening sockets in *this* namespace, with host port 0 replaced by the one chosen.

    They are of the C type (close-on-exec, like socket.socket's): the monitor gets their
    descriptors and makes ``socket.socket(fileno=fd)`` of them, once the runtime runs."""
    out: list[tuple[PortMapping, _socket.socket]] = []
    try:
        for p in ports:
            family = _socket.AF_INET6 if ":" in p.host_ip else _socket.AF_INET
            s = _socket.socket(family, _socket.SOCK_STREAM)
            s.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
            try:
                s.bind((p.host_ip, p.host_port))
            except OSError as exc:
                s.close()
                hint = "pick another host port (-p OTHER:%d) or stop what uses it" % p.container_port
                if exc.errno == errno.EADDRINUSE:
                    raise RunError(f"host port {p.host_ip}:{p.host_port} is already in use", hint=hint) from None
                raise RunError(f"cannot listen on {p.host_ip}:{p.host_port}: {exc.strerror}", hint=hint) from None
            s.listen(1024)  # beyond the forwarder's connection limit clients wait here
            out.append((PortMapping(s.getsockname()[1], p.container_port, p.host_ip), s))
    except BaseException:
        for _, s in out:
            s.close()
        raise
    return out
