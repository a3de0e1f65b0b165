"""overlayfs roots and the mount(2)/umount2(2) calls behind them (ctypes, no fork)."""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from mlpack.errors import RunError
from mlpack.runtime.idmap import in_user_namespace

__all__ = ["mount_overlay", "umount", "mounts_under", "libc"]

MNT_DETACH = 2
MS_BIND = 4096
# mount(2) data is one page; overlay stops reading options past it.
_MAX_OPTIONS = 4000


@lru_cache(maxsize=1)
def libc() -> ctypes.CDLL:
    # glibc's soname first: find_library runs `ldconfig -p` (a fork and exec on every container start)
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        from ctypes.util import find_library

        return ctypes.CDLL(find_library("c"), use_errno=True)


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    rc = libc().mount(source.encode(), target.encode(), fstype.encode() if fstype else None,
                      ctypes.c_ulong(flags), data.encode() if data else None)
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {fstype or 'bind'} on {target}: {os.strerror(err)}")


def mount_overlay(lowerdirs: Sequence[os.PathLike | str], upperdir: Path, workdir: Path, target: Path) -> None:
    """Mount ``lowerdirs`` (base first) + ``upperdir`` at ``target`` (all must exist).

    overlayfs lists lowerdirs top first, so the order is reversed here. When
    the option string would not fit in a page, each lowerdir gets a short
    symlink next to the workdir and the mount is done from that directory.
    """
    if not lowerdirs:
        raise RunError("an overlay root needs at least one lower directory")
    lowers = [os.fspath(p) for p in reversed(list(lowerdirs))]
    for p in lowers:
        if ":" in p or "," in p:
            raise RunError(f"layer path {p!r} contains ':' or ',' which overlayfs cannot take",
                           hint="move mlpack's home (MLPACK_HOME) to a plain path")
    # In a user namespace trusted.* xattrs are out of reach: overlay keeps its marks in user.*.
    extra = ",userxattr" if in_user_namespace() else ""
    options = f"lowerdir={':'.join(lowers)},upperdir={upperdir},workdir={workdir}{extra}"
    try:
        if len(options) <= _MAX_OPTIONS:
            _mount("overlay", str(target), "overlay", 0, options)
            return
        links = workdir.parent / (workdir.name + ".l")
        links.mkdir(exist_ok=True)
        for i, p in enumerate(lowers):
            link = links / str(i)
            if not link.is_symlink():
                link.symlink_to(p)
        short = ":".join(str(i) for i in range(len(lowers)))
        options = f"lowerdir={short},upperdir={upperdir},workdir={workdir}{extra}"
        if len(options) > _MAX_OPTIONS:
            raise RunError(f"too many layers for one overlay mount ({len(lowers)})",
                           hint="squash the image into fewer layers")
        # Relative lowerdirs resolve against the cwd of the mounting process:
        # a child does the chdir so this process's cwd never moves.
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                os.chdir(links)
                _mount("overlay", str(target), "overlay", 0, options)
                os._exit(0)
            except BaseException:
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise OSError(errno.EINVAL, f"overlay mount with {len(lowers)} layers failed")
    except OSError as exc:
        raise RunError(
            f"cannot mount the container root: {exc}",
            hint="mlpack needs root and overlayfs; the upper/work dirs must not be on overlayfs",
        ) from exc


def umount(target: Path | str) -> bool:
    """Lazily unmount ``target``; True when something was mounted there."""
    rc = libc().umount2(os.fspath(target).encode(), MNT_DETACH)
    if rc != 0:
        err = ctypes.get_errno()
        if err in (errno.EINVAL, errno.ENOENT):
            return False
        raise RunError(f"cannot unmount {target}: {os.strerror(err)}")
    return True


def mounts_under(path: Path | str) -> list[str]:
    """Mount points at or below ``path`` in this process's mount namespace."""
    prefix = os.path.realpath(path)
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        for line in fh:
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return found


def bind(source: str, target: str) -> None:
    _mount(source, target, None, MS_BIND, None)
