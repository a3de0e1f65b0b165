"""Resolving a path inside a root, as if the root were ``/`` (never leaving it).

    resolve_in_root(ctx_root, "etc/shadow")              # -> Path inside ctx_root, or None
    resolve_in_root(stage_root, "leak/x", follow=False)  # the last component itself if it is a link

Every component is looked up inside ``root``: ``..`` stops at the root and a
symlink, absolute or relative, is interpreted relative to the root, as the
kernel does for ``openat2(2)`` with ``RESOLVE_IN_ROOT`` (used where the
kernel has it, Linux 5.6+), else by an equivalent walk that lstat()s one
component at a time below components already known to be real directories.
The result contains no symlink (except the last component when ``follow`` is
False), so opening it cannot leave the root while the tree does not change;
the builder resolves only trees no process writes to at that moment (the
context, finished stages, a finished RUN's upper directory).
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from functools import lru_cache
from pathlib import Path

from mlpack.errors import BuildError

__all__ = ["resolve_in_root", "MAX_SYMLINKS"]

MAX_SYMLINKS = 40
_SYS_OPENAT2 = 437  # the same number on every architecture (added after the unified table)
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_IN_ROOT = 0x10
_O_PATH = getattr(os, "O_PATH", 0o10000000)


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


@lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _openat2(dirfd: int, rel: str, flags: int, resolve: int) -> int:
    how = _OpenHow(flags, 0, resolve)
    fd = _libc().syscall(ctypes.c_long(_SYS_OPENAT2), ctypes.c_int(dirfd), ctypes.c_char_p(rel.encode()),
                         ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(fd)


@lru_cache(maxsize=1)
def _has_openat2() -> bool:
    try:
        os.close(_openat2(-100, "/", _O_PATH | os.O_CLOEXEC, _RESOLVE_IN_ROOT))
    except OSError:
        return False
    return True


def _too_deep(root: Path, rel: str) -> BuildError:
    return BuildError(f"{rel}: too many levels of symbolic links inside {root}",
                      hint="a symlink in the context or image points at itself (e.g. etc -> /etc)")


def resolve_in_root(root: Path | str, rel: str, *, follow: bool = True, use_openat2: bool = True) -> Path | None:
    """The real path of ``rel`` under ``root`` with symlinks interpreted inside ``root``; None if absent."""
    top = os.path.realpath(root)
    parts = [p for p in rel.split("/") if p and p != "."]
    if not parts:
        return Path(top)
    if use_openat2 and _has_openat2():
        return _via_openat2(top, "/".join(parts), follow)
    return _via_walk(top, parts, follow)


def _via_openat2(top: str, rel: str, follow: bool) -> Path | None:
    rootfd = os.open(top, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        flags = _O_PATH | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
        try:
            fd = _openat2(rootfd, rel, flags, _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return None
            if exc.errno == errno.ELOOP:
                raise _too_deep(Path(top), rel) from None
            raise
        try:
            real = os.readlink(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
    finally:
        os.close(rootfd)
    if real != top and not real.startswith(top.rstrip("/") + "/"):  # pragma: no cover - the kernel's promise
        raise BuildError(f"{rel} resolved outside {top}")
    return Path(real)


def _via_walk(top: str, parts: list[str], follow: bool) -> Path | None:
    out: list[str] = []  # components known to be real directories (or the final result)
    todo = list(parts)
    links = 0
    while todo:
        part = todo.pop(0)
        if part == "..":
            if out:
                out.pop()
            continue
        if part == ".":
            continue
        path = "/".join([top.rstrip("/"), *out, part]) if out or top != "/" else "/" + part
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if stat.S_ISLNK(st.st_mode) and (todo or follow):
            links += 1
            if links > MAX_SYMLINKS:
                raise _too_deep(Path(top), "/".join(parts))
            target = os.readlink(path)
            if target.startswith("/"):
                out = []
            todo = [p for p in target.split("/") if p] + todo
            continue
        if todo and not stat.S_ISDIR(st.st_mode):
            return None
        out.append(part)
    return Path("/".join([top.rstrip("/"), *out])) if out else Path(top)
