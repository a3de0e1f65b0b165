"""Reading a container's cgroup (v1, v2 or hybrid) and removing what is left of it."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from mlpack.runtime.host import CGROUP_ROOT, cgroup_mode
from mlpack.runtime.sandboxreap import remove_cgroup_dirs
from mlpack.values import dataclass

__all__ = ["CgroupStats", "cgroup_dirs", "read_stats", "oom_kills", "remove_cgroup", "cgroup_pids"]

_V1_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "pids", "devices", "freezer", "blkio",
                   "systemd", "net_cls", "net_prio", "perf_event", "hugetlb", "rdma", "misc", "unified")
_UNLIMITED = 1 << 62  # v1 reports "no limit" as a huge page-aligned number


@dataclass(frozen=True)
class CgroupStats:
    """One sample of a container's cgroup counters."""

    cpu_usage_ns: int | None
    memory_usage: int | None
    memory_limit: int | None  # None = unlimited
    pids_current: int | None
    pids_limit: int | None
    oom_kills: int
    when: float


def _rel(cgroups_path: str) -> str:
    return cgroups_path.strip("/")


def cgroup_dirs(cgroups_path: str, root: Path = CGROUP_ROOT) -> list[Path]:
    """Every existing directory of this cgroup, over all hierarchies."""
    rel = _rel(cgroups_path)
    if not rel:
        return []
    if cgroup_mode(root) == "v2":
        cands = [root / rel]
    else:
        # a unified/ without cgroup.controllers is rootless crun's tmpfs cover: its dirs are no cgroups
        unified = (root / "unified" / "cgroup.controllers").exists()
        cands = [root / c / rel for c in _V1_CONTROLLERS if c != "unified" or unified]
    return [p for p in cands if p.is_dir()]


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _int(path: Path) -> int | None:
    text = _read(path)
    if text is None:
        return None
    text = text.strip()
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _keyed(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in (_read(path) or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def oom_kills(cgroups_path: str, root: Path = CGROUP_ROOT) -> int:
    """How many processes the kernel OOM-killed in this cgroup (0 when gone, or when it has none)."""
    rel = _rel(cgroups_path)
    if not rel:  # a rootless container without a cgroup: the root's counters are the host's
        return 0
    if cgroup_mode(root) == "v2":
        return _keyed(root / rel / "memory.events").get("oom_kill", 0)
    return _keyed(root / "memory" / rel / "memory.oom_control").get("oom_kill", 0)


def read_stats(cgroups_path: str, root: Path = CGROUP_ROOT) -> CgroupStats:
    """CPU time, memory use and limit, pids from the container's cgroup (all None when it has none)."""
    rel = _rel(cgroups_path)
    now = time.monotonic()
    if not rel:  # never the host's own counters
        return CgroupStats(None, None, None, None, None, 0, now)
    if cgroup_mode(root) == "v2":
        base = root / rel
        usec = _keyed(base / "cpu.stat").get("usage_usec")
        return CgroupStats(
            cpu_usage_ns=usec * 1000 if usec is not None else None,
            memory_usage=_int(base / "memory.current"),
            memory_limit=_int(base / "memory.max"),
            pids_current=_int(base / "pids.current"),
            pids_limit=_int(base / "pids.max"),
            oom_kills=oom_kills(cgroups_path, root),
            when=now,
        )
    mem = root / "memory" / rel
    usage = _int(mem / "memory.usage_in_bytes")
    # Docker's "used" leaves out the page cache the kernel can drop.
    inactive = _keyed(mem / "memory.stat").get("total_inactive_file", 0)
    limit = _int(mem / "memory.limit_in_bytes")
    return CgroupStats(
        cpu_usage_ns=_int(root / "cpuacct" / rel / "cpuacct.usage"),
        memory_usage=max(usage - inactive, 0) if usage is not None else None,
        memory_limit=None if limit is None or limit >= _UNLIMITED else limit,
        pids_current=_int(root / "pids" / rel / "pids.current"),
        pids_limit=_int(root / "pids" / rel / "pids.max"),
        oom_kills=oom_kills(cgroups_path, root),
        when=now,
    )


def cgroup_pids(cgroups_path: str, root: Path = CGROUP_ROOT) -> set[int]:
    pids: set[int] = set()
    for d in cgroup_dirs(cgroups_path, root):
        for line in (_read(d / "cgroup.procs") or "").split():
            if line.isdigit():
                pids.add(int(line))
    return pids


def remove_cgroup(cgroups_path: str, root: Path = CGROUP_ROOT, timeout: float = 5.0) -> list[Path]:
    """Kill what still runs in the cgroup and remove its directories; returns those left."""
    deadline = time.monotonic() + timeout
    while True:
        for pid in cgroup_pids(cgroups_path, root):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        left = remove_cgroup_dirs(cgroup_dirs(cgroups_path, root))  # children first: a runtime may make sub-cgroups
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)
