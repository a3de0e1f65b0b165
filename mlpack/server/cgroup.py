"""How many CPUs this process may really use: cgroup quota (v1 or v2) and affinity.

``os.cpu_count()`` reports the host's CPUs; a container limited to 1.5 CPUs
that sizes its thread pools from it thrashes under CFS throttling. Inside a
container the cgroup root mounted at /sys/fs/cgroup is the container's own
cgroup, while /proc/self/cgroup may still show the host path: both are tried.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CpuBudget", "cpu_quota", "cpu_budget", "size_pools", "memory_limit"]


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _own_paths(proc_cgroup: Path) -> dict[str, str]:
    """Controller name ("" for the v2 unified hierarchy) -> cgroup path of this process."""
    out: dict[str, str] = {}
    text = _read(proc_cgroup) or ""
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        for name in controllers.split(",") if controllers else [""]:
            out[name] = path
    return out


def _candidates(mount: Path, own: str | None) -> list[Path]:
    """The process's cgroup directory and its ancestors up to the mount, deepest first."""
    dirs: list[Path] = []
    if own and own != "/":
        rel = Path(own.lstrip("/"))
        parts = rel.parts
        for depth in range(len(parts), 0, -1):
            dirs.append(mount.joinpath(*parts[:depth]))
    dirs.append(mount)
    return [d for d in dirs if d.is_dir()]


def _v2_quota(root: Path, own: dict[str, str]) -> float | None:
    limits = []
    for d in _candidates(root, own.get("")):
        text = _read(d / "cpu.max")
        if not text:
            continue
        quota, _, period = text.partition(" ")
        if quota != "max" and period:
            try:
                limits.append(int(quota) / int(period))
            except (ValueError, ZeroDivisionError):
                continue
    return min(limits) if limits else None


def _v1_quota(root: Path, own: dict[str, str]) -> float | None:
    limits = []
    for ctrl in ("cpu,cpuacct", "cpu", "cpuacct,cpu"):
        mount = root / ctrl
        if not mount.is_dir():
            continue
        for d in _candidates(mount, own.get("cpu")):
            quota = _read(d / "cpu.cfs_quota_us")
            period = _read(d / "cpu.cfs_period_us")
            try:
                q, p = int(quota or "-1"), int(period or "0")
            except ValueError:
                continue
            if q > 0 and p > 0:
                limits.append(q / p)
        if limits:
            break
    return min(limits) if limits else None


def cpu_quota(root: str | Path = "/sys/fs/cgroup", proc_cgroup: str | Path = "/proc/self/cgroup") -> float | None:
    """The CFS CPU quota of this process in CPUs (1.5 for ``--cpus=1.5``), or None if unlimited.

    Pure v2 hosts are recognised by ``<root>/cgroup.controllers``; otherwise
    the v1 ``cpu`` controller is read. The tightest limit on the path from the
    process's cgroup up to the mount root wins, as the kernel enforces it.
    """
    root = Path(root)
    own = _own_paths(Path(proc_cgroup))
    if (root / "cgroup.controllers").exists():
        return _v2_quota(root, own)
    quota = _v1_quota(root, own)
    if quota is None and (root / "unified" / "cgroup.controllers").exists():
        # Hybrid hosts: the cpu controller may have moved to the unified tree.
        quota = _v2_quota(root / "unified", own)
    return quota


@dataclass(frozen=True)
class CpuBudget:
    """CPUs available to the server: ``quota`` (None: unlimited), ``affinity`` (cpuset size)."""

    quota: float | None
    affinity: int

    @property
    def cpus(self) -> float:
        """The usable CPUs: the smaller of the quota and the cpuset."""
        return min(self.quota, self.affinity) if self.quota is not None else float(self.affinity)


def cpu_budget(root: str | Path = "/sys/fs/cgroup", proc_cgroup: str | Path = "/proc/self/cgroup") -> CpuBudget:
    """Read the cgroup quota and the CPU affinity of this process."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        affinity = os.cpu_count() or 1
    return CpuBudget(quota=cpu_quota(root, proc_cgroup), affinity=max(1, affinity))


def size_pools(cpus: float, *, workers: int | None = None, threads: int | None = None) -> tuple[int, int]:
    """(server workers, onnxruntime intra-op threads per worker) for ``cpus`` CPUs.

    One worker up to 4 CPUs: a single event loop with micro-batching keeps a
    few cores busy (HTTP on the loop, inference on the model thread), and every
    extra worker costs a full copy of the model in memory. Above that, one worker
    per 4 CPUs. Threads share the rest so that workers x threads fits the quota
    (at least one each), which keeps CFS from throttling the container.
    """
    whole = max(1, math.floor(cpus + 1e-9))
    if workers is None:
        workers = 1 if whole <= 4 else min(whole // 4, 16)
    if threads is None:
        threads = max(1, whole // workers)
    return workers, threads


def memory_limit(root: str | Path = "/sys/fs/cgroup", proc_cgroup: str | Path = "/proc/self/cgroup") -> int | None:
    """The cgroup memory limit of this process in bytes (the tightest on its path), or None if unlimited."""
    root = Path(root)
    own = _own_paths(Path(proc_cgroup))
    if (root / "cgroup.controllers").exists():
        dirs, name = _candidates(root, own.get("")), "memory.max"
    else:
        dirs, name = _candidates(root / "memory", own.get("memory")), "memory.limit_in_bytes"
    limits = []
    for d in dirs:
        text = _read(d / name)
        if text and text.isdigit() and int(text) < 1 << 60:  # v1 says "unlimited" with a huge number
            limits.append(int(text))
    return min(limits) if limits else None
