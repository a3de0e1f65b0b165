"""The per-container monitor: the small process that outlives `mlpack run`.

Started detached (its own session) by :func:`mlpack.runtime.create._spawn_monitor`:
forked from a single-threaded caller (`mlpack run`), which starts the runtime
before it imports this module (:mod:`mlpack.runtime.launch`), or else as
``python -m mlpack.runtime.monitor CONTAINER_DIR [LISTEN_FD...]``. It is the
container's parent, the way containerd's shim is: it makes itself a child
subreaper, runs ``<runtime> run --detach``, so the container's init
becomes its child and waitpid() gives the true exit status; reads the OOM
counter of the cgroup before the runtime deletes it; restarts per the restart
policy; runs the HEALTHCHECK on its interval; forwards the published ports;
and writes all of it to status.json.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Set as AbstractSet
from pathlib import Path

from mlpack.runtime.cgroups import oom_kills
from mlpack.runtime.execproc import exec_process, process_file
from mlpack.runtime.forward import Forwarder
from mlpack.runtime.launch import Started, become_subreaper, run_argv, start_runtime
from mlpack.runtime.options import Healthcheck, PortMapping, RestartPolicy
from mlpack.runtime.state import now_iso, read_json, write_json
from mlpack.runtime.teardown import release_container, remove_container_dir, runtime_of

TYPE_CHECKING = False  # typing is the type checker's: a CLI start (mlpack run) does not import it
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

HEALTH_LOG_KEEP = 5


# How often a monitor waiting for its init reaps orphaned helpers (the init's exit wakes it at once).
ORPHAN_REAP_S = 0.25


class StatusFile:
    """status.json, updated under a lock by the monitor's threads."""

    def __init__(self, path: Path, initial: dict[str, Any]) -> None:
        self.path = path
        self.data = dict(initial)
        self.lock = threading.Lock()

    def update(self, **changes: Any) -> None:
        with self.lock:
            self.data.update(changes)
            write_json(self.path, self.data)


class HealthChecker(threading.Thread):
    """Runs the check with `<runtime> exec` every interval; starting -> healthy / unhealthy."""

    def __init__(self, rt: Any, cdir: Path, check: Healthcheck, status: StatusFile) -> None:
        super().__init__(daemon=True, name="healthcheck")
        self.rt, self.cdir, self.check, self.status = rt, cdir, check, status
        # The container's own process (user, caps, noNewPrivileges), as docker runs a check.
        self.process = exec_process(cdir, check.test)
        self.stopped = threading.Event()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None

    def run(self) -> None:
        began = time.monotonic()
        streak = 0
        log: list[dict[str, Any]] = []
        state = "starting"
        while not self.stopped.wait(self.check.interval):
            start = now_iso()
            try:
                with process_file(self.cdir, self.process, prefix="health-") as path:
                    code, out = self._check(path)
            except subprocess.TimeoutExpired:
                code, out = -1, f"health check timed out after {self.check.timeout}s"
            if self.stopped.is_set():
                return
            if code == 0:
                streak, state = 0, "healthy"
            elif time.monotonic() - began >= self.check.start_period or state == "healthy":
                streak += 1
                if streak >= self.check.retries:
                    state = "unhealthy"
            log = (log + [{"start": start, "end": now_iso(), "exit_code": code, "output": out}])[-HEALTH_LOG_KEEP:]
            self.status.update(health={"status": state, "failing_streak": streak, "log": log})

    def _check(self, path: Path) -> tuple[int, str]:
        """One `<runtime> exec` of the check; :meth:`halt` kills it when the container exits."""
        with self._lock:
            if self.stopped.is_set():
                return -1, "container exited"
            self._proc = subprocess.Popen(self.rt.argv("exec", "--process", str(path), self.cdir.name),
                                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT)
        try:
            out, _ = self._proc.communicate(timeout=self.check.timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.communicate()
            raise
        finally:
            with self._lock:
                proc, self._proc = self._proc, None
        return proc.returncode, out[-4096:].decode(errors="replace")

    def reap_orphans(self, keep: int) -> None:
        """:func:`_reap_orphans`, sparing the check's own `<runtime> exec` (subprocess reaps it);
        under the lock, so no new check starts meanwhile."""
        with self._lock:
            _reap_orphans({keep} | ({self._proc.pid} if self._proc is not None else set()))

    def halt(self) -> None:
        """The container exited: stop checking now, and kill a check still running (an exec
        into a dying container may hang until its timeout, and the exit would wait for it)."""
        with self._lock:
            self.stopped.set()
            if self._proc is not None and self._proc.poll() is None:
                self._proc.kill()


class Monitor:
    def __init__(self, cdir: Path, listen_fds: list[int]) -> None:
        self.cdir = cdir
        self.record = read_json(cdir / "record.json")
        self.rt = runtime_of(self.record)
        self.cid = self.record["id"]
        self.status = StatusFile(cdir / "status.json", read_json(cdir / "status.json"))
        self.restart = RestartPolicy(**self.record["restart"])
        self.check = Healthcheck.from_json(self.record.get("healthcheck"))
        ports = [PortMapping(**p) for p in self.record.get("listen_ports", [])]
        listeners = [(p, socket.socket(fileno=fd)) for p, fd in zip(ports, listen_fds)]
        netns = self.record.get("netns") if self.record["network"] != "host" else None
        self.forwarder = Forwarder(listeners, netns) if listeners else None
        self.forwarding = False

    def _forward(self) -> None:
        """Start relaying the published ports, once, after the runtime's first run: clients wait
        in the listeners' backlog until then, and nothing runs before the runtime that can run after."""
        if self.forwarder is not None and not self.forwarding:
            self.forwarder.start()
            self.forwarding = True

    def stop_requested(self) -> bool:
        return (self.cdir / "stop").exists()

    def run_once(self, started: Started | None = None) -> tuple[int, bool, str | None]:
        """Create, start and wait for the container once: (exit code, OOM killed, error).
        ``started``: the runtime's run, when the caller started it already (the first one)."""
        pid_file = self.cdir / "pid"
        if started is None:
            started = start_runtime(run_argv(self.rt, self.cdir, self.cid), self.cdir)
        # One runtime call (create + start); --detach leaves the init to us,
        # the subreaper, so waitpid() below sees its real exit status.
        if started.wait() != 0 or not pid_file.exists():
            with open(self.cdir / "container.log", "rb") as fh:
                fh.seek(started.log_offset)
                err = fh.read()[-2000:].decode(errors="replace").strip()
            release_container(self.record)
            return 125, False, f"{self.rt.name} run failed: {err}"
        pid = int(pid_file.read_text().strip())
        self._forward()
        health = {"status": "starting", "failing_streak": 0, "log": []} if self.check else None
        self.status.update(status="running", pid=pid, started_at=now_iso(), finished_at=None,
                           exit_code=None, oom_killed=False, error=None, health=health)
        checker = None
        if self.check is not None:
            checker = HealthChecker(self.rt, self.cdir, self.check, self.status)
            checker.start()
        code = wait_for_init(pid, checker.reap_orphans if checker is not None else None)
        if checker is not None:
            checker.halt()
            checker.join(timeout=self.check.timeout + 1)  # type: ignore[union-attr]
        _reap_orphans()
        oom = oom_kills(self.record["cgroups_path"]) > 0
        release_container(self.record)
        return code, oom, None

    def main(self, started: Started | None = None) -> int:
        """Run the container until it is done, as the subreaper (made one by the forked caller, or
        by ``python -m``'s start below); ``started``: its first run, started by the caller."""
        self.status.update(monitor_pid=os.getpid())
        restarts = int(self.status.data.get("restart_count") or 0)
        while True:
            code, oom, error = self.run_once(started)
            started = None
            if error is None and self.restart.should_restart(code, restarts, self.stop_requested()):
                restarts += 1
                self.status.update(status="restarting", exit_code=code, oom_killed=oom, restart_count=restarts,
                                   finished_at=now_iso())
                time.sleep(min(0.1 * 2 ** min(restarts, 10), 5.0))  # docker-like backoff
                if not self.stop_requested():
                    continue
            break
        self.status.update(status="exited", exit_code=code, oom_killed=oom, error=error, finished_at=now_iso(),
                           pid=None)
        if self.forwarder is not None:
            self.forwarder.close()
        if self.record.get("auto_remove"):
            remove_container_dir(self.cdir, self.record)
        return 0


def wait_for_init(pid: int, reap: Callable[[int], None] | None = None) -> int:
    """Exit code of the container's init, 128+N when killed by signal N.

    The init becomes our child (we are a subreaper) only once the
    runtime's helper that forked it has exited, which can be a moment
    after `run --detach` returns: until then waitpid() says ECHILD.

    Meanwhile orphans are reaped: a `<runtime> exec` helper that died
    leaves its process in the container's PID namespace to us, and a dying
    init waits in the kernel until every process of its namespace has been
    reaped, so a blocking waitpid() on the init alone would never return.
    ``reap(pid)`` reaps them sparing ``pid`` (the health checker's, which also
    spares its own running check); by default every orphan but the init.
    """
    try:
        exited = os.pidfd_open(pid)  # readable once the init has exited
    except OSError:
        exited = None
    try:
        while True:
            try:
                got, status = os.waitpid(pid, os.WNOHANG)
                if got == pid:
                    code = os.waitstatus_to_exitcode(status)
                    return 128 - code if code < 0 else code
            except ChildProcessError:
                if not os.path.exists(f"/proc/{pid}"):
                    return 255  # gone without us seeing its status
                time.sleep(0.01)  # not our child yet (or no longer): the runtime's helper has it
            if reap is not None:
                reap(pid)
            else:
                _reap_orphans({pid})
            if exited is not None:
                select.select([exited], [], [], ORPHAN_REAP_S)
            else:
                time.sleep(0.05)
    finally:
        if exited is not None:
            os.close(exited)


def _reap_orphans(keep: AbstractSet[int] = frozenset()) -> None:
    """Reap zombies reparented to us (the runtime's helper processes and what they left in
    the container), except the pids in ``keep``: a subprocess of ours reaps its own."""
    try:
        if os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            return  # no child has exited: nothing to read in /proc
    except ChildProcessError:
        return
    me = str(os.getpid())
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in keep:
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and fields[1] == me:
            try:
                os.waitpid(int(entry), os.WNOHANG)
            except ChildProcessError:
                pass


def main(argv: list[str] | None = None, started: Started | None = None) -> int:
    """``python -m mlpack.runtime.monitor CONTAINER_DIR [LISTEN_FD...]``; ``started``: the
    runtime's first run, when the forked caller started it before importing this module."""
    args = sys.argv[1:] if argv is None else argv
    cdir = Path(args[0])
    fds = [int(a) for a in args[1:]]
    try:
        return Monitor(cdir, fds).main(started)
    except Exception as exc:  # the monitor has no terminal: leave the reason on disk
        import traceback

        traceback.print_exc()
        try:
            data = read_json(cdir / "status.json")
            data.update(status="exited", error=f"monitor failed: {exc}", exit_code=data.get("exit_code") or 125,
                        finished_at=now_iso(), pid=None)
            write_json(cdir / "status.json", data)
        except Exception:
            pass
        return 1


if __name__ == "__main__":
    # The container's init, once `run --detach` exits, must become ours; the forked monitor
    # (mlpack.runtime.create._spawn_monitor) made itself the subreaper before starting the runtime.
    become_subreaper()
    sys.exit(main())
