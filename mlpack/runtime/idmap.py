"""Which ids an ordinary user can map into a user namespace, and how mlpack enters one.

With a subordinate range in /etc/subuid and /etc/subgid (and newuidmap and
newgidmap from the ``uidmap`` package), the user's own id becomes 0 inside and
the range becomes 1..N, the way podman maps it; without one, only the user's
own id maps (to 0): every file then belongs to root inside, and a step that
needs another id fails with a message naming the fix. Inside such a namespace
the process *is* uid 0 but its real, host-side id is the one /proc/self/uid_map
maps 0 to: :func:`host_uid` reads it.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from mlpack.values import dataclass

__all__ = ["IdRange", "IdMapping", "user_mapping", "host_uid", "in_user_namespace", "read_subids"]


@dataclass(frozen=True)
class IdRange:
    """``count`` host ids starting at ``start`` (one line of /etc/subuid)."""

    start: int
    count: int


def read_subids(path: Path, user: str, uid: int) -> IdRange | None:
    """The first range of ``user`` (by name or by uid) in a subuid/subgid file; None when it has none."""
    try:
        text = path.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) != 3 or parts[0] not in (user, str(uid)):
            continue
        if parts[1].isdigit() and parts[2].isdigit() and int(parts[2]) > 0:
            return IdRange(int(parts[1]), int(parts[2]))
    return None


@dataclass(frozen=True)
class IdMapping:
    """How the calling user's namespaces are mapped: its own ids, plus a range or not."""

    user: str
    uid: int
    gid: int
    subuid: IdRange | None
    subgid: IdRange | None
    helpers: bool  # newuidmap and newgidmap are installed

    @property
    def full(self) -> bool:
        """True when ids 1..N map too (a range for both uids and gids and the helpers to apply it)."""
        return self.subuid is not None and self.subgid is not None and self.helpers

    @property
    def size(self) -> int:
        """How many uids exist inside (0 and the range)."""
        if not self.full:
            return 1
        assert self.subuid is not None and self.subgid is not None
        return min(self.subuid.count, self.subgid.count)  # --map-auto maps count-1 ids after 0

    def unshare_argv(self) -> list[str]:
        """``unshare`` options for a new user + mount namespace with this mapping (root inside)."""
        argv = ["unshare", "--user", "--mount", "--propagation", "private", "--map-root-user"]
        if self.full:
            # --map-auto maps 1..count-1 of the first range (what podman does too).
            argv.append("--map-auto")
        return argv

    def describe(self) -> str:
        if self.full:
            assert self.subuid is not None
            return (f"uid {self.uid} -> 0 inside, subordinate ids {self.subuid.start}-"
                    f"{self.subuid.start + self.subuid.count - 1} -> 1-{self.size - 1}")
        why = "no newuidmap/newgidmap (package uidmap)" if self.subuid and self.subgid else \
            f"no range for {self.user} in /etc/subuid and /etc/subgid"
        return f"single id: uid {self.uid} -> 0 inside ({why})"


def user_mapping(uid: int | None = None, etc: Path = Path("/etc")) -> IdMapping:
    """The mapping the user ``uid`` (default: the caller) gets."""
    uid = os.getuid() if uid is None else uid
    try:
        ent = pwd.getpwuid(uid)
        name, gid = ent.pw_name, ent.pw_gid
    except KeyError:
        name, gid = str(uid), os.getgid()
    import shutil  # only here: `mlpack run` as root never maps ids

    helpers = all(shutil.which(t) or os.path.exists(f"/usr/bin/{t}") for t in ("newuidmap", "newgidmap"))
    return IdMapping(user=name, uid=uid, gid=gid, subuid=read_subids(etc / "subuid", name, uid),
                     subgid=read_subids(etc / "subgid", name, uid), helpers=helpers)


def _uid_map(path: str = "/proc/self/uid_map") -> list[tuple[int, int, int]]:
    out = []
    try:
        with open(path) as fh:
            for line in fh:
                parts = line.split()
                if len(parts) == 3:
                    out.append((int(parts[0]), int(parts[1]), int(parts[2])))
    except OSError:
        pass
    return out


def in_user_namespace(path: str = "/proc/self/uid_map") -> bool:
    """True inside any user namespace but the initial one (whose map is ``0 0 4294967295``)."""
    return _uid_map(path) != [(0, 0, 4294967295)]


def host_uid(path: str = "/proc/self/uid_map") -> int:
    """The host-side uid of this process: geteuid() outside a user namespace, what 0 maps to inside."""
    euid = os.geteuid()
    for inside, outside, count in _uid_map(path):
        if inside <= euid < inside + count:
            return outside + (euid - inside)
    return euid
