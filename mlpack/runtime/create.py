"""Making a container: overlay root, config.json, network, monitor.

The core takes an :class:`ImageSource` (overlay lowerdirs + the image's
config), so a store image and a plain directory (tests, benchmarks) share
one code path.
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

from mlpack.errors import ContainerNotFound, RunError
from mlpack.oci.config import ImageConfig
from mlpack.oci.image import Image
from mlpack.runtime.cdi import gpu_device_names, resolve_devices, spec_dirs
from mlpack.runtime.host import select_runtime
from mlpack.runtime.idmap import in_user_namespace
from mlpack.runtime.launch import become_subreaper, close_fds_but, run_argv, start_runtime
from mlpack.runtime.mounts import mount_overlay
from mlpack.runtime.netns import bind_listeners, create_netns
from mlpack.runtime.rootless import adapt_config, cgroup_parent
from mlpack.runtime.options import PortMapping, RunOptions, parse_healthcheck
from mlpack.runtime.spec import (
    ContainerSpec, ProcessSpec, build_config, merge_env, normalize_caps, process_args, resolve_user,
)
from mlpack.runtime.state import container_dirs, now_iso, read_json, write_json
from mlpack.runtime.teardown import remove_container_dir, runtime_of
from mlpack.settings import Settings
from mlpack.types import Limits
from mlpack.values import asdict, dataclass, field

TYPE_CHECKING = False  # typing is the type checker's: a CLI start (mlpack run) does not import it
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Iterator

__all__ = ["ImageSource", "image_source", "create_container"]

START_TIMEOUT = 30.0


@dataclass(frozen=True)
class ImageSource:
    """What a container is made of: layer directories (base first) and the image's config.

    ``config`` may be given as the blob's ``config`` object (a mapping, as tests
    and benchmarks write it); it is parsed into an ImageConfig here, once.
    """

    lowerdirs: Sequence[Path]
    config: ImageConfig = field(default_factory=ImageConfig)
    ref: str | None = None
    digest: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.config, ImageConfig):
            object.__setattr__(self, "config", ImageConfig.from_config(self.config))


def image_source(image: ImageSource | Image | str, settings: Settings) -> ImageSource:
    """An ImageSource from an ImageSource, a store reference or an mlpack.oci Image."""
    if isinstance(image, ImageSource):
        return image
    if not isinstance(image, (str, Image)):
        raise RunError(f"cannot run {image!r}: not an image reference or image",
                       hint="pass a reference such as localhost/model:latest")
    from mlpack.oci.layercache import layer_dirs
    from mlpack.oci.layout import Store

    store = Store(settings.store_dir)
    img = store.resolve(image) if isinstance(image, str) else image
    dirs = layer_dirs(store, img, settings)
    return ImageSource(lowerdirs=dirs, config=img.config,
                       ref=img.ref or (image if isinstance(image, str) else None), digest=img.digest)


@contextmanager
def _names_lock(root: Path) -> Iterator[None]:
    root.mkdir(mode=0o700, parents=True, exist_ok=True)  # logs and env may hold secrets
    with open(root / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def create_container(src: ImageSource, limits: Limits, options: RunOptions, settings: Settings,
                     *, publish_exposed: bool = False) -> Path:
    """Create and start a container; returns its directory once it runs (or has already exited)."""
    rt = select_runtime(settings)
    root = settings.containers_dir
    cid = os.urandom(32).hex()
    cdir = root / cid
    record: dict[str, Any] = {}
    listeners: list = []
    ports = list(options.ports)
    if publish_exposed and not ports and options.network != "none":
        ports = [PortMapping(0, p) for p in src.config.tcp_ports]
    try:
        with _names_lock(root):
            name = options.name or f"mlpack-{cid[:8]}"
            for d in container_dirs(root):
                if read_json(d / "record.json").get("name") == name:
                    raise RunError(f"the name {name!r} is taken by container {d.name[:12]}",
                                   hint=f"remove it (mlpack rm -f {name}) or pick another --name")
            for sub in ("rootfs", "upper", "work"):
                (cdir / sub).mkdir(parents=True)
            record = {"id": cid, "name": name}  # enough for a cleanup from here on
            write_json(cdir / "record.json", record)
        rootfs = cdir / "rootfs"
        mount_overlay(list(src.lowerdirs), cdir / "upper", cdir / "work", rootfs)
        cfg = src.config
        uid, gid, groups, home = resolve_user(rootfs, options.user or cfg.user)
        args = process_args(cfg, options.command, options.entrypoint)
        cdi_dirs = options.cdi_dirs or spec_dirs()
        names = gpu_device_names(limits.gpus, cdi_dirs) + list(options.devices)
        edits = resolve_devices(names, cdi_dirs)
        hostname = options.hostname or cid[:12]
        env = merge_env({"HOSTNAME": hostname, "HOME": home or "/"} if (home or uid) else {"HOSTNAME": hostname,
                                                                                             "HOME": "/root"},
                        cfg.env, edits.env, options.env)
        netns = None
        if options.network == "private":
            netns = cdir / "netns"
            create_netns(netns)
        need_forward = [p for p in ports if options.network != "host" or p.host_port != p.container_port]
        listeners = bind_listeners(need_forward)
        published = [m for m, _ in listeners] + [p for p in ports if p not in need_forward]
        check = None if options.no_healthcheck else (options.healthcheck or parse_healthcheck(cfg.healthcheck))
        parent = cgroup_parent(limits)  # rootless: the delegated subtree, or an error naming the fix
        cgroups_path = f"/{parent}/{cid}" if parent else ""
        spec = ContainerSpec(
            rootfs=rootfs,
            process=ProcessSpec(args=args, env=env, cwd=options.workdir or cfg.working_dir or "/",
                                uid=uid, gid=gid, additional_gids=groups,
                                capabilities=normalize_caps(options.cap_add)),
            hostname=hostname,
            readonly_root=not options.read_write,
            mounts=tuple(options.volumes) + tuple(edits.mounts),
            network="private" if options.network == "none" else options.network,
            netns_path=str(netns) if netns else None,
            limits=limits,
            devices=tuple(edits.devices),
            cgroups_path=cgroups_path,
            seccomp=options.seccomp,
            hooks=edits.hooks,
            annotations={"org.opencontainers.image.ref.name": src.ref or "", "mlpack.container.name": name},
        )
        write_json(cdir / "config.json", adapt_config(build_config(spec)), indent=None)
        record.update(
            image=src.ref, image_digest=src.digest, created=now_iso(), args=list(args), env=list(env),
            user=f"{uid}:{gid}", limits=asdict(limits), ports=[asdict(m) for m in published],
            listen_ports=[asdict(m) for m, _ in listeners], exposed=list(cfg.tcp_ports),
            network=options.network, netns=str(netns) if netns else None, cgroups_path=cgroups_path,
            runtime={"name": rt.name, "path": rt.path, "root": str(rt.root), "mode": rt.mode,
                     "holder": str(cdir) if in_user_namespace() else None},
            restart=asdict(options.restart), auto_remove=options.auto_remove,
            healthcheck=check.to_json() if check else None, read_only=not options.read_write,
            capabilities=list(normalize_caps(options.cap_add)), devices=edits.names,
            volumes=[asdict(v) for v in options.volumes],
            # layer directories in use: a layer-cache prune must keep these
            lowerdirs=[str(p) for p in src.lowerdirs],
        )
        write_json(cdir / "record.json", record)
        write_json(cdir / "status.json", {"status": "created", "restart_count": 0})
        rt.root.mkdir(parents=True, exist_ok=True)
        _spawn_monitor(cdir, [s.fileno() for _, s in listeners], run_argv(runtime_of(record), cdir, cid))
    except BaseException:
        for _, s in listeners:
            s.close()
        if cdir.exists():
            remove_container_dir(cdir, record if "runtime" in record else {})
        raise
    for _, s in listeners:
        s.close()  # the monitor holds them now
    try:
        _wait_started(cdir)
    except RunError as exc:
        if not getattr(exc, "timed_out", False):
            # It never ran: nothing worth keeping (the runtime's message is in the error).
            monitor = read_json(cdir / "status.json").get("monitor_pid")
            deadline = time.monotonic() + 5
            while monitor and os.path.exists(f"/proc/{monitor}") and time.monotonic() < deadline:
                time.sleep(0.01)
            remove_container_dir(cdir, record)
        raise
    return cdir


def _spawn_monitor(cdir: Path, fds: list[int], run: list[str]) -> None:
    """Start the monitor detached (own session, reparented to init), handing it the listeners;
    ``run`` is the runtime's command that it starts (:func:`mlpack.runtime.launch.run_argv`).

    A single-threaded caller (the CLI) forks: the child already has every
    module imported, which saves a Python start-up (~0.1-0.4 s on a busy
    2-core machine) from every `mlpack run`. A multi-threaded caller (a
    notebook kernel) gets a fresh interpreter instead, since forking a
    process whose other threads may hold locks is not safe.
    """
    if threading.active_count() > 1:
        import subprocess  # not at import: `mlpack run` starts a container without it

        log = open(cdir / "monitor.log", "ab")
        try:
            subprocess.Popen(
                [sys.executable, "-m", "mlpack.runtime.monitor", str(cdir), *map(str, fds)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=fds, start_new_session=True, cwd="/",
            )
        finally:
            log.close()
        return
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)  # the intermediate child exits at once
        return
    code = 1
    try:  # pragma: no cover - runs in the forked child
        os.setsid()
        if os.fork():
            os._exit(0)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        devnull = os.open(os.devnull, os.O_RDWR)
        log_fd = os.open(cdir / "monitor.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.dup2(devnull, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        # Never hold the caller's pipes open: a `subprocess.run(capture_output=True)`
        # around `mlpack run -d` would wait for EOF forever.
        close_fds_but({0, 1, 2, *fds})
        os.chdir("/")
        # The runtime first: the monitor's own imports (subprocess among them) load while it works.
        become_subreaper()
        try:
            started = start_runtime(run, cdir)
        except OSError:
            started = None  # the monitor tries again, and records why it cannot in status.json
        from mlpack.runtime.monitor import main as monitor_main

        code = monitor_main([str(cdir), *map(str, fds)], started)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


def _wait_started(cdir: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if not cdir.exists():  # ran, exited and was removed (--rm) already
            return
        st = read_json(cdir / "status.json")
        if st.get("status") in ("running", "exited", "restarting"):
            if st.get("error"):
                raise RunError(f"container {cdir.name[:12]} did not start: {st['error']}",
                               hint="check the command, user and mounts; `mlpack info` shows the runtime",
                               exit_code=st.get("exit_code"))
            return
        time.sleep(0.005)
    raise RunError(f"container {cdir.name[:12]} did not start within {START_TIMEOUT:.0f}s",
                   hint=f"see {cdir / 'monitor.log'}", timed_out=True)


def rename_container(root: Path, cdir: Path, name: str) -> None:
    """Give the container in ``cdir`` the name ``name`` (free, or refused): a blue/green
    replacement starts under a second name and takes the service's once it is verified."""
    with _names_lock(root):
        for d in container_dirs(root):
            if d != cdir and read_json(d / "record.json").get("name") == name:
                raise RunError(f"the name {name!r} is taken by container {d.name[:12]}",
                               hint=f"remove it (mlpack rm -f {name}) or pick another name")
        record = read_json(cdir / "record.json")
        if not record:
            raise ContainerNotFound(f"container {cdir.name[:12]} was removed")
        write_json(cdir / "record.json", {**record, "name": name})
