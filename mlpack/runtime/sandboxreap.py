"""Reaping RUN sandboxes whose builder is gone (stdlib only: it also runs as a script).

Every sandbox directory (``<home>/sandbox/<sid>``, and the merged views of
``COPY --from``, ``<home>/sandbox/view-<id>``) holds ``owner.json``: the
builder's pid and start time, and for a RUN step the runtime's ``delete``
command line, the sandbox's cgroup path, its upper directory and its helper
processes (slirp4netns). While a RUN
step runs, a watchdog (:mod:`mlpack.runtime.sandboxwatch`, a script) waits on
a pipe only the builder holds: when the builder dies (SIGKILL included) the
pipe reaches end of file and the watchdog, with :func:`reap`, kills what runs
in the cgroup, deletes the runtime state, unmounts what is mounted under the
sandbox directory and removes it. This module imports nothing from mlpack, so
the watchdog imports it as a script's neighbour. :func:`reap_stale` does the same for every sandbox of
a dead builder (at the start of a build and in ``mlpack system prune``);
:func:`stale_sandboxes` lists them for ``mlpack system verify``.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import time
from pathlib import Path

__all__ = ["OWNER_FILE", "process_start", "write_owner", "reap", "reap_stale", "stale_sandboxes", "leftovers",
           "remove_cgroup_dirs"]

OWNER_FILE = "owner.json"
CGROUP_ROOT = Path("/sys/fs/cgroup")
MNT_DETACH = 2


def process_start(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks (field 22 of /proc/<pid>/stat); None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    return data.rsplit(b")", 1)[1].split()[19].decode()


def write_owner(base: Path, info: dict) -> None:
    """Record who owns the sandbox at ``base`` and what to undo (atomically)."""
    info = dict(info, owner_pid=os.getpid(), owner_start=process_start(os.getpid()))
    tmp = base / (OWNER_FILE + ".tmp")
    tmp.write_text(json.dumps(info))
    os.replace(tmp, base / OWNER_FILE)


def _owner(base: Path) -> dict:
    try:
        return json.loads((base / OWNER_FILE).read_text())
    except (OSError, ValueError):
        return {}


def _alive(info: dict) -> bool:
    pid = info.get("owner_pid")
    return isinstance(pid, int) and process_start(pid) == info.get("owner_start")


def _cgroup_dirs(rel: str) -> list[Path]:
    rel = rel.strip("/")
    if not rel:
        return []
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        cands = [CGROUP_ROOT / rel]
    else:
        try:
            cands = [CGROUP_ROOT / c / rel for c in sorted(os.listdir(CGROUP_ROOT))]
        except OSError:
            cands = []
    return [p for p in cands if p.is_dir()]


def _kill_cgroup(rel: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        dirs = _cgroup_dirs(rel)
        pids = set()
        for d in dirs:
            kill = d / "cgroup.kill"
            if kill.exists():
                try:
                    kill.write_text("1")
                except OSError:
                    pass
            for sub in [d, *_subdirs(d)]:
                try:
                    pids.update(int(x) for x in (sub / "cgroup.procs").read_text().split())
                except OSError:
                    pass
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if not remove_cgroup_dirs(dirs) or time.monotonic() > deadline:
            return
        time.sleep(0.02)  # the kernel is still tearing the killed processes down


def remove_cgroup_dirs(dirs: list[Path]) -> list[Path]:
    """rmdir each cgroup directory, its sub-cgroups first; returns those still there (busy)."""
    left = []
    for d in dirs:
        for sub in _subdirs(d):
            try:
                sub.rmdir()
            except OSError:
                pass
        try:
            d.rmdir()
        except FileNotFoundError:
            pass  # another reaper was faster
        except OSError:
            left.append(d)
    return left


def _subdirs(d: Path) -> list[Path]:
    """Sub-cgroups of ``d``, deepest first ([] when ``d`` vanished meanwhile)."""
    try:
        return sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
    except OSError:
        return []


def _mounts_under(path: Path) -> list[str]:
    prefix = os.path.realpath(path)
    found = []
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as fh:
            for line in fh:
                point = line.split()[4].replace("\\040", " ")
                if point == prefix or point.startswith(prefix + "/"):
                    found.append(point)
    except OSError:
        pass
    return found


def _unmount_all(path: Path) -> None:
    try:  # glibc's soname first: find_library runs `ldconfig -p`
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        from ctypes.util import find_library

        libc = ctypes.CDLL(find_library("c"), use_errno=True)
    for point in sorted(set(_mounts_under(path)), key=len, reverse=True):
        libc.umount2(point.encode(), MNT_DETACH)


def reap(base: Path) -> None:
    """Undo everything of the sandbox at ``base``: processes, runtime state, cgroup, mounts, directories.

    One reaper at a time (a flock on owner.json): the watchdog and a new build may both find it."""
    import fcntl

    try:
        lock = os.open(base / OWNER_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        lock = -1
    if lock >= 0:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(lock)
            return  # being reaped right now
    try:
        _reap(base)
    finally:
        if lock >= 0:
            os.close(lock)


def _reap(base: Path) -> None:
    import shutil  # neither at import: `mlpack run` starts a container without them
    import subprocess

    info = _owner(base)
    for pid in info.get("helpers", []):
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (OSError, ValueError):
            pass
    if info.get("cgroups_path"):
        _kill_cgroup(info["cgroups_path"])
    if info.get("delete_argv"):
        try:
            subprocess.run(info["delete_argv"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=30, check=False)
        except (OSError, subprocess.SubprocessError):
            pass
    if info.get("cgroups_path"):
        _kill_cgroup(info["cgroups_path"], timeout=2.0)
    _unmount_all(base)
    workdir = info.get("workdir")
    if workdir:
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(workdir + ".l", ignore_errors=True)
    if info.get("upperdir"):  # the step's changes: its builder is gone, nobody will make a layer of them
        shutil.rmtree(info["upperdir"], ignore_errors=True)
    shutil.rmtree(base, ignore_errors=True)


def stale_sandboxes(home: Path) -> list[Path]:
    """Sandbox directories under ``home`` whose builder is no longer running."""
    root = home / "sandbox"
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return []
    out = []
    for name in names:
        base = root / name
        info = _owner(base)
        if not info:
            # a sandbox being set up writes owner.json first; without one it is older than that
            try:
                if time.time() - os.lstat(base).st_mtime < 60:
                    continue
            except OSError:
                continue
        elif _alive(info):
            continue
        out.append(base)
    return out


def reap_stale(home: Path) -> list[Path]:
    """Reap every sandbox of a dead builder; returns the directories reaped."""
    found = stale_sandboxes(home)
    for base in found:
        reap(base)
    return found


def leftovers(home: Path) -> list[str]:
    """What ``system verify`` reports: stale sandboxes and what still runs or is mounted in them."""
    out = []
    for base in stale_sandboxes(home):
        info = _owner(base)
        procs = 0
        for d in _cgroup_dirs(info.get("cgroups_path", "")):
            try:
                procs += len((d / "cgroup.procs").read_text().split())
            except OSError:
                pass
        out.append(f"{base}: builder gone, {procs} process(es), {len(_mounts_under(base))} mount(s)")
    return out
