"""A container as seen from any process: status, logs, stats, stop, kill, rm, exec."""

from __future__ import annotations

import os
import signal as _signal
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from mlpack.errors import ContainerNotFound, RunError
from mlpack.runtime.cgroups import read_stats
from mlpack.runtime.execproc import exec_process, process_file
from mlpack.runtime.state import container_dirs, find_container_dir, pid_alive, read_json
from mlpack.runtime.teardown import remove_container_dir, runtime_of
from mlpack.settings import Settings

TYPE_CHECKING = False  # typing is the type checker's: a CLI start (mlpack run) does not import it
if TYPE_CHECKING:  # pragma: no cover
    import subprocess
    from typing import Any

__all__ = ["Container", "list_containers", "get_container"]

_LIVE = ("created", "running", "restarting")


class Container:
    """Handle on one container's state directory; every property reads the files anew."""

    def __init__(self, cdir: Path, settings: Settings) -> None:
        self.dir = cdir
        self.settings = settings
        self._record: dict[str, Any] | None = None
        self._final: dict[str, Any] | None = None
        self._final_logs: str | None = None

    # --- what it is -----------------------------------------------------
    @property
    def record(self) -> dict[str, Any]:
        if self._record is None:
            self._record = read_json(self.dir / "record.json")
            if not self._record:
                raise ContainerNotFound(f"container {self.dir.name[:12]} was removed")
        return self._record

    @property
    def id(self) -> str:
        return self.dir.name

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def name(self) -> str:
        return self.record["name"]

    @property
    def image(self) -> str | None:
        return self.record.get("image")

    @property
    def ports(self) -> list[dict[str, Any]]:
        return list(self.record.get("ports") or [])

    @property
    def url(self) -> str | None:
        """http://HOST:PORT of the serving port: the first exposed port that is published, else the first."""
        ports = self.ports
        exposed = self.record.get("exposed") or []
        pick = next((p for e in exposed for p in ports if p["container_port"] == e), ports[0] if ports else None)
        if pick is None:
            if self.record.get("network") == "host" and exposed:
                return f"http://127.0.0.1:{exposed[0]}"
            return None
        host = pick["host_ip"]
        host = "127.0.0.1" if host in ("0.0.0.0", "") else f"[{host}]" if ":" in host else host
        return f"http://{host}:{pick['host_port']}"

    # --- what it is doing -----------------------------------------------
    def state(self) -> dict[str, Any]:
        """status.json, corrected when the monitor died without writing its last word."""
        st = read_json(self.dir / "status.json")
        if not st and not self.dir.exists():
            if self._final is not None:  # removed by this handle: its last state stays readable
                return dict(self._final)
            raise ContainerNotFound(f"container {self.short_id} was removed")
        if st.get("status") in _LIVE and st.get("monitor_pid") and not pid_alive(st["monitor_pid"]):
            if pid_alive(st.get("pid")):
                st["status"] = "running"
            else:
                st.update(status="exited", exit_code=st.get("exit_code") if st.get("exit_code") is not None else 255,
                          error=st.get("error") or "the container's monitor died")
        return st

    @property
    def status(self) -> str:
        return self.state().get("status", "unknown")

    @property
    def health(self) -> str | None:
        """starting, healthy or unhealthy; None when the image has no HEALTHCHECK."""
        h = self.state().get("health")
        return h.get("status") if h else None

    @property
    def exit_code(self) -> int | None:
        return self.state().get("exit_code")

    @property
    def oom_killed(self) -> bool:
        return bool(self.state().get("oom_killed"))

    def running(self) -> bool:
        return self.status in _LIVE

    def wait(self, timeout: float | None = None) -> int:
        """Wait until the container has exited for good (after restarts); returns its exit code."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            st = self.state()
            if st.get("status") == "exited":
                return int(st.get("exit_code") if st.get("exit_code") is not None else 255)
            if deadline is not None and time.monotonic() > deadline:
                raise RunError(f"container {self.name} still runs after {timeout}s", hint="stop it or wait longer")
            time.sleep(0.05)

    def wait_healthy(self, timeout: float = 60.0) -> str:
        """Wait for healthy (or for the first answer on the URL without a HEALTHCHECK)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.state()
            if st.get("status") == "exited":
                raise RunError(f"container {self.name} exited with {st.get('exit_code')}",
                               hint=f"see `mlpack logs {self.name}`")
            health = (st.get("health") or {}).get("status")
            if health in ("healthy", "unhealthy"):
                return health
            time.sleep(0.1)
        raise RunError(f"container {self.name} not healthy after {timeout}s", hint=f"see `mlpack logs {self.name}`")

    # --- output ---------------------------------------------------------
    def logs(self, tail: int | None = None) -> str:
        """stdout and stderr so far (the last ``tail`` lines when given)."""
        try:
            data = (self.dir / "container.log").read_bytes()
        except FileNotFoundError:
            data = (self._final_logs or "").encode()
        text = data.decode("utf-8", errors="replace")
        if tail is not None:
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-tail:]) if tail > 0 else ""
        return text

    def follow_logs(self, tail: int | None = None, poll: float = 0.1) -> Iterator[str]:
        """The log, then new output as it comes, until the container exits for good."""
        start = self.logs(tail)
        if start:
            yield start
        path = self.dir / "container.log"
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            while True:
                chunk = fh.read()
                if chunk:
                    yield chunk.decode("utf-8", errors="replace")
                    continue
                if not self.dir.exists() or self.status == "exited":
                    rest = fh.read()
                    if rest:
                        yield rest.decode("utf-8", errors="replace")
                    return
                time.sleep(poll)

    def stats(self, interval: float = 0.5) -> dict[str, Any]:
        """CPU % (of one core) over ``interval``, memory use and limit, pids, OOM kills, from the cgroup."""
        path = self.record["cgroups_path"]
        a = read_stats(path)
        time.sleep(interval)
        b = read_stats(path)
        cpu = None
        if a.cpu_usage_ns is not None and b.cpu_usage_ns is not None and b.when > a.when:
            cpu = (b.cpu_usage_ns - a.cpu_usage_ns) / ((b.when - a.when) * 1e9) * 100
        limit = b.memory_limit
        return {
            "id": self.id, "name": self.name,
            "cpu_percent": round(cpu, 2) if cpu is not None else None,
            "cpu_usage_ns": b.cpu_usage_ns,
            "memory_usage": b.memory_usage, "memory_limit": limit,
            "memory_percent": round(100 * b.memory_usage / limit, 2) if limit and b.memory_usage is not None else None,
            "pids": b.pids_current, "pids_limit": b.pids_limit, "oom_kills": b.oom_kills,
        }

    # --- control --------------------------------------------------------
    def _runtime(self) -> Any:
        return runtime_of(self.record)

    def kill(self, signal: str | int = "KILL") -> None:
        """Send a signal to the container's init (no restart after a kill)."""
        sig = _signal_name(signal)
        if self.status != "running":
            raise RunError(f"container {self.name} is not running", hint="`mlpack ps -a` shows its state")
        (self.dir / "stop").touch()
        self._runtime().call("kill", self.id, sig, check=False)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; returns the exit code
        (RunError when even SIGKILL leaves it running: stop never reports success falsely)."""
        if self.status not in _LIVE:
            return self.exit_code
        (self.dir / "stop").touch()
        rt = self._runtime()
        rt.call("kill", self.id, "TERM", check=False)
        try:
            return self.wait(timeout)
        except RunError:
            killed = rt.call("kill", self.id, "KILL", check=False)
            try:
                return self.wait(15)
            except RunError:
                detail = killed.stderr.strip() or f"{rt.name} kill said nothing"
                raise RunError(f"container {self.name} still runs 15 s after SIGKILL ({detail})",
                               hint=f"see `mlpack inspect {self.name}` and the host's process list; "
                                    f"`mlpack rm -f {self.name}` removes what is left") from None

    def remove(self, force: bool = False) -> None:
        """Remove the container: no mount, cgroup, runtime state or file is left."""
        if self.status in _LIVE:
            if not force:
                raise RunError(f"container {self.name} is running", hint="stop it first, or use rm -f")
            (self.dir / "stop").touch()
            self._runtime().call("kill", self.id, "KILL", check=False)
            try:
                self.wait(10)
            except RunError:
                pass
        st = read_json(self.dir / "status.json")
        deadline = time.monotonic() + 10
        while pid_alive(st.get("monitor_pid")) and time.monotonic() < deadline:
            time.sleep(0.02)
        if pid_alive(st.get("monitor_pid")):
            os.kill(st["monitor_pid"], _signal.SIGKILL)
        final = self.state()
        self._final_logs = self.logs()
        remove_container_dir(self.dir, self.record)
        self._final = final

    def rename(self, name: str) -> None:
        """Take the name ``name`` (refused while another container holds it)."""
        from mlpack.runtime.create import rename_container

        rename_container(self.settings.containers_dir, self.dir, name)
        self._record = None

    def exec(self, args: Sequence[str], *, env: Sequence[str] = (), user: str | None = None,
             workdir: str | None = None, capture: bool = True, timeout: float | None = None,
             ) -> subprocess.CompletedProcess:
        """Run a command in the running container: same namespaces, limits, user, groups, capabilities,
        seccomp profile and noNewPrivileges as its main process, unless ``user`` names another user."""
        import subprocess  # not at import: `mlpack run` starts a container without it

        if self.status != "running":
            raise RunError(f"container {self.name} is not running", hint="start a new one with mlpack run")
        process = exec_process(self.dir, args, env=env, user=user, workdir=workdir)
        with process_file(self.dir, process) as path:
            argv = self._runtime().argv("exec", "--process", path, self.id)
            if capture:
                return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                      timeout=timeout)
            return subprocess.run(argv, timeout=timeout)

    def inspect(self) -> dict[str, Any]:
        """record + state + paths, the way `mlpack inspect` prints it."""
        return {"Id": self.id, "Name": self.name, "State": self.state(), "Config": self.record,
                "Url": self.url, "Dir": str(self.dir)}

    # --- context manager: a container that is removed when the block ends ---
    def __enter__(self) -> "Container":
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.remove(force=True)
        except ContainerNotFound:
            pass

    def __repr__(self) -> str:
        return f"<Container {self.short_id} name={self.name!r} image={self.image!r}>"


def _signal_name(sig: str | int) -> str:
    if isinstance(sig, int) or str(sig).isdigit():
        return str(int(sig))
    name = str(sig).upper().removeprefix("SIG")
    if not hasattr(_signal, "SIG" + name):
        raise RunError(f"unknown signal {sig!r}", hint="use a name such as TERM, KILL, HUP or a number")
    return name


def list_containers(settings: Settings, *, all: bool = False) -> list[Container]:
    """Containers under Settings.containers_dir, running ones only unless ``all``."""
    out = []
    for d in container_dirs(settings.containers_dir):
        c = Container(d, settings)
        try:
            if all or c.running():
                out.append(c)
        except ContainerNotFound:
            continue
    return out


def get_container(settings: Settings, ref: str) -> Container:
    """By id, unique id prefix or name."""
    return Container(find_container_dir(settings.containers_dir, ref), settings)
