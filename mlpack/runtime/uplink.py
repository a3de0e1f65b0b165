"""The network of a RUN step: a namespace of its own with a user-space uplink.

    up = start_uplink(netns_path, resolv_conf)   # slirp4netns, ready when it returns
    ...                                          # the step runs with netns_path as its network
    up.stop()

A RUN step never shares the host's network namespace (unless the Dockerfile
says ``RUN --network=host``). Its default network is what rootless BuildKit
and Podman give: ``slirp4netns`` (Debian package ``slirp4netns``) bridges a
tap device in the step's namespace to ordinary sockets of the host, so the
step reaches what the host reaches (package registries, the HTTPS proxy) as
an unprivileged client, while

- the host's loopback (127.0.0.1:*, what local daemons and test servers bind)
  is refused (``--disable-host-loopback``: 10.0.2.2 leads nowhere),
- the host's own addresses (192.0.2.2 on eth0, a bridge's 172.17.0.1, ...),
  where services bound to 0.0.0.0 listen, are ``unreachable`` routes in the
  step's namespace (set before the step starts; a step has no CAP_NET_ADMIN
  to remove them),
- the host's interfaces, routes, listening sockets and traffic are not
  visible: ``/proc/net/*`` and an AF_PACKET socket see only the namespace's
  ``lo`` and ``tap0``,
- slirp4netns itself runs sandboxed (``--enable-sandbox``: its own mount
  namespace, every capability dropped) under a seccomp filter.

DNS goes to slirp's resolver at 10.0.2.3, which forwards to the host's. The
uplink exits when its exit pipe closes: when the builder stops it, and when
the builder dies.
"""

from __future__ import annotations

import ipaddress
import os
import select
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from mlpack.errors import RunError

__all__ = ["Uplink", "start_uplink", "uplink_available", "host_addresses", "block_addresses",
           "UPLINK_RESOLV_CONF", "READY_TIMEOUT"]

UPLINK_RESOLV_CONF = "nameserver 10.0.2.3\n"
SLIRP_NET = ipaddress.ip_network("10.0.2.0/24")  # slirp4netns's own: gateway .2, DNS .3, the step .100
READY_TIMEOUT = 30.0


def uplink_available() -> str | None:
    """The slirp4netns binary, or None."""
    return shutil.which("slirp4netns")


@dataclass
class Uplink:
    """A running slirp4netns; ``stop()`` ends it (closing its exit pipe) and waits."""

    proc: subprocess.Popen
    exit_fd: int

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, wait: bool = True) -> None:
        """Close the exit pipe (slirp4netns exits) and wait for it, killing it after 10 s. With
        ``wait=False`` a daemon thread waits instead: its exit tears down the mount namespace of
        its sandbox, 20-30 ms of the kernel's time that a finished RUN step need not sit through."""
        if self.exit_fd >= 0:
            os.close(self.exit_fd)
            self.exit_fd = -1
        if not wait:
            threading.Thread(target=self._reap, name="mlpack-uplink-reap", daemon=True).start()
            return
        self._reap()

    def _reap(self) -> None:
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def host_addresses(fib_trie: Path = Path("/proc/net/fib_trie")) -> list[str]:
    """The IPv4 addresses of this network namespace's interfaces (loopback left out: slirp refuses it)."""
    found: list[str] = []
    try:
        lines = fib_trie.read_text().splitlines()
    except OSError:
        return found
    last = ""
    for line in lines:
        text = line.strip()
        if text.startswith("|--"):
            last = text[3:].strip()
        elif text == "/32 host LOCAL" and last:
            addr = ipaddress.ip_address(last)
            if not addr.is_loopback and addr not in SLIRP_NET and last not in found:
                found.append(last)
    return sorted(found)


def block_addresses(netns_path: Path, addresses: list[str]) -> None:
    """Make ``addresses`` unreachable routes inside the namespace at ``netns_path``."""
    if not addresses:
        return
    ip, nsenter = shutil.which("ip"), shutil.which("nsenter")
    if ip is None or nsenter is None:
        raise RunError("RUN steps' network needs ip (iproute2) and nsenter (util-linux) to fence off the host",
                       hint="install iproute2 and util-linux, or build with --network=none")
    batch = "".join(f"route add unreachable {a}/32\n" for a in addresses)
    proc = subprocess.run([nsenter, f"--net={netns_path}", ip, "-batch", "-"], input=batch.encode(),
                          capture_output=True, timeout=30, check=False)
    if proc.returncode != 0:
        raise RunError(f"cannot fence the host's addresses off the RUN network: "
                       f"{proc.stderr.decode('utf-8', 'replace').strip()}",
                       hint="build with --network=none")


def start_uplink(netns_path: Path, resolv_conf: Path, log: Path) -> Uplink:
    """Start slirp4netns for the namespace pinned at ``netns_path``; writes ``resolv_conf`` for the
    step; slirp4netns's messages go to ``log``."""
    binary = uplink_available()
    if binary is None:
        raise RunError(
            "RUN steps get their network through slirp4netns, which is not installed",
            hint="install it (apt-get install slirp4netns), or build with --network=none "
                 "(or RUN --network=none) when the steps need no network",
        )
    block_addresses(netns_path, host_addresses())
    resolv_conf.write_text(UPLINK_RESOLV_CONF)
    ready_r, ready_w = os.pipe()
    exit_r, exit_w = os.pipe()
    os.set_inheritable(ready_w, True)
    os.set_inheritable(exit_r, True)
    try:
        with open(log, "wb") as err:
            proc = subprocess.Popen(
                [binary, "--configure", "--mtu=65520", "--disable-host-loopback", "--enable-sandbox",
                 "--enable-seccomp", "--netns-type=path", f"--ready-fd={ready_w}", f"--exit-fd={exit_r}",
                 str(netns_path), "tap0"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                pass_fds=(ready_w, exit_r), start_new_session=True,
            )
    except OSError as exc:
        for fd in (ready_r, ready_w, exit_r, exit_w):
            os.close(fd)
        raise RunError(f"cannot start slirp4netns: {exc}") from None
    os.close(ready_w)
    os.close(exit_r)
    up = Uplink(proc, exit_w)
    try:
        ready, _, _ = select.select([ready_r], [], [], READY_TIMEOUT)
        status = os.read(ready_r, 1) if ready else b""
    finally:
        os.close(ready_r)
    if status != b"1":
        up.stop()
        try:
            said = log.read_text(errors="replace").strip()[-2000:]
        except OSError:
            said = ""
        raise RunError(f"slirp4netns did not bring the RUN network up: {said or 'no answer'}",
                       hint="build with --network=none when the steps need no network")
    return up
