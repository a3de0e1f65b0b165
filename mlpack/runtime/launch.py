"""How a container's monitor starts ``<runtime> run --detach``: first, before it loads anything.

The first run of a container is on its start's critical path. The monitor
forked by `mlpack run` (:func:`mlpack.runtime.create._spawn_monitor`) makes
itself the subreaper and starts the runtime with :func:`start_runtime`
*before* it imports :mod:`subprocess` and :mod:`mlpack.runtime.monitor`
(a few milliseconds, more in a fresh fork whose every touched page is
copied), which then load while the runtime works. So this module needs
only what that process has loaded already.

The runtime starts as :mod:`subprocess` would start it (``stdin`` on
/dev/null, output appended to ``container.log``, every other descriptor
closed, SIGPIPE and SIGXFSZ back to their defaults, an exec failure raised
in the caller as the OSError it was): by a fork and exec of our own in a
single-threaded process, and by :mod:`subprocess` itself in one with
threads (a restart, while the forwarder runs), where running Python in a
forked child is not safe.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

from mlpack.runtime.mounts import libc

TYPE_CHECKING = False  # typing is the type checker's: a CLI start (mlpack run) does not import it
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable

    from mlpack.runtime.host import Runtime

__all__ = ["Started", "run_argv", "start_runtime", "become_subreaper", "close_fds_but"]

PR_SET_CHILD_SUBREAPER = 36
# What subprocess's restore_signals puts back: Python ignores these two at start-up.
_RESTORED_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)


def become_subreaper() -> None:
    """Orphans of our descendants (the container's init, once `run --detach` has exited) become ours."""
    libc().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def run_argv(rt: Runtime, cdir: Path, cid: str) -> list[str]:
    """``<runtime> run --detach`` of the bundle ``cdir``: create + start in one call, leaving the
    init to the subreaper; its pid goes to ``cdir/pid``."""
    return rt.argv("run", "--detach", "--bundle", str(cdir), "--pid-file", str(cdir / "pid"), cid)


def close_fds_but(keep: set[int]) -> None:
    """Close every descriptor of this process but ``keep`` (subprocess's ``close_fds``)."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:  # the directory's own descriptor, closed already
                pass


class Started:
    """A runtime command started by :func:`start_runtime`: where its output begins in the log,
    and ``wait()`` for its exit status (as subprocess reports it)."""

    def __init__(self, log_offset: int, wait: Callable[[], int]) -> None:
        self.log_offset = log_offset
        self.wait = wait


def start_runtime(argv: list[str], cdir: Path) -> Started:
    """Start ``argv`` (see :func:`run_argv`) with its output appended to ``cdir/container.log``,
    after removing the pid file of an earlier run."""
    (cdir / "pid").unlink(missing_ok=True)
    log = os.open(cdir / "container.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        offset = os.lseek(log, 0, os.SEEK_END)
        if threading.active_count() > 1:
            import subprocess

            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            return Started(offset, proc.wait)
        pid = _fork_exec(argv, log)
        return Started(offset, lambda: os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    finally:
        os.close(log)


def _fork_exec(argv: list[str], log: int) -> int:
    """subprocess.Popen(argv, stdin=DEVNULL, stdout=log, stderr=log)'s child, for a single-threaded caller."""
    errors_r, errors_w = os.pipe()  # close-on-exec: EOF here once the program runs
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child, until its exec
        try:
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(log, 1)
            os.dup2(log, 2)
            close_fds_but({0, 1, 2, errors_w})  # nothing of ours reaches the runtime
            for sig in _RESTORED_SIGNALS:
                signal.signal(sig, signal.SIG_DFL)
            os.execvp(argv[0], argv)
        except BaseException as exc:
            os.write(errors_w, str(getattr(exc, "errno", None) or 0).encode())
        finally:
            os._exit(255)
    os.close(errors_w)
    try:
        failed = b""
        while chunk := os.read(errors_r, 32):
            failed += chunk
    finally:
        os.close(errors_r)
    if failed:
        os.waitpid(pid, 0)
        code = int(failed)
        raise OSError(code, os.strerror(code) if code else "cannot start it", argv[0])
    return pid
