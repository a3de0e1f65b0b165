"""Run one process to completion over an overlay root: the builder's RUN step.

    result = run_sandbox(SandboxSpec(lowerdirs=[...], upperdir=up, args=["sh", "-c", "pip install x"],
                                     env={"PIP_NO_CACHE_DIR": "1"}, network="default",
                                     mounts=[Mount.bind(ca, "/etc/ssl/certs/ca.pem", readonly=True)]),
                         settings=settings, on_output=print)
    result.exit_code, result.output

The process runs in a real OCI runtime (crun or runc) with its own mount, pid,
ipc, uts and network namespaces, Docker's default capabilities (a RUN step
installs packages as root), the default seccomp profile and a cgroup of its
own with the step's limits. Its network (``default``) is a namespace of its
own with a slirp4netns uplink (:mod:`mlpack.runtime.uplink`): the outside
world, never the host's loopback or interfaces; ``none`` has only ``lo``;
``host`` (asked for explicitly) shares the host's.

Lower directories are never written: they are overlay lowers, and so are the
sources of ``overlay_binds`` (context and ``--mount=type=bind``), whose writes
land in a throw-away upper directory of the sandbox.

Everything it made is undone afterwards, on failure, on KeyboardInterrupt and
when the builder dies: the sandbox directory records its owner and what to
undo, and a watchdog process (:mod:`mlpack.runtime.sandboxwatch`) that holds
the other end of a pipe reaps it when the builder is gone; sandboxes of dead
builders found at the start of a step are reaped too. Only ``upperdir``
(the changes) stays, for the caller to turn into a layer.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mlpack.errors import RunError
from mlpack.runtime import sandboxreap, sandboxwatch
from mlpack.runtime.cgroups import remove_cgroup
from mlpack.runtime.host import select_runtime
from mlpack.runtime.inroot import resolve_in_root
from mlpack.runtime.mounts import mount_overlay, mounts_under, umount
from mlpack.runtime.netns import create_netns, delete_netns
from mlpack.runtime.rootless import adapt_config, cgroup_parent
from mlpack.runtime.uplink import Uplink, start_uplink
from mlpack.runtime.spec import (
    DOCKER_DEFAULT_CAPS, ContainerSpec, Mount, ProcessSpec, build_config, merge_env, normalize_caps,
    resolve_user,
)
from mlpack.settings import Settings
from mlpack.types import Limits

__all__ = ["SandboxSpec", "SandboxResult", "OverlayBind", "run_sandbox", "Mount", "NETWORKS"]

# Output kept in SandboxResult.output (the tail; the callback sees everything).
MAX_OUTPUT = 4 * 1024 * 1024
NETWORKS = ("default", "none", "host")


@dataclass(frozen=True)
class OverlayBind:
    """A bind mount whose source is a tree the step must not change (the context, a stage, an image).

    ``lowerdirs`` (base first) are stacked under a throw-away upper directory
    of the sandbox; ``hidden`` paths (``.dockerignore``d files) are whited out
    in it; ``subpath`` is resolved inside that merged tree (symlinks stay in
    it) and bound at ``target``, read-only unless ``readonly`` is False, when
    the writes go to the throw-away upper and vanish with the step.
    """

    lowerdirs: Sequence[Path | str]
    target: str
    subpath: str = ""
    readonly: bool = True
    hidden: Sequence[str] = ()


@dataclass(frozen=True)
class SandboxSpec:
    """One process to run over ``lowerdirs`` (base first) + ``upperdir``.

    ``upperdir`` must exist and is where every change lands. ``workdir`` is
    overlayfs's scratch directory; it must be on the same filesystem as
    ``upperdir`` and empty; when None a sibling of ``upperdir`` is made and
    removed. ``user`` is an image USER (``root``, ``1000:1000``, ``app``),
    resolved in the merged root. ``capabilities`` defaults to
    Docker's default set, as ``docker build`` gives RUN steps. ``network``
    is ``"default"`` (own namespace, slirp4netns uplink), ``"none"`` or
    ``"host"``. ``overlay_binds`` are mounted after ``mounts``.
    """

    lowerdirs: Sequence[Path | str]
    upperdir: Path | str
    args: Sequence[str]
    env: Mapping[str, str] | Sequence[str] = field(default_factory=dict)
    cwd: str = "/"
    user: str | None = None
    mounts: Sequence[Mount] = ()
    network: str = "none"
    overlay_binds: Sequence[OverlayBind] = ()
    workdir: Path | str | None = None
    limits: Limits = field(default_factory=Limits)
    capabilities: Sequence[str] = DOCKER_DEFAULT_CAPS
    no_new_privileges: bool = False
    hostname: str = "mlpack-build"
    readonly_root: bool = False
    timeout: float | None = None


@dataclass(frozen=True)
class SandboxResult:
    """``exit_code`` is the process's status (128+N when killed by signal N)."""

    exit_code: int
    output: str
    duration: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def run_sandbox(
    spec: SandboxSpec,
    *,
    settings: Settings,
    on_output: Callable[[str], None] | None = None,
) -> SandboxResult:
    """Run ``spec`` to completion; ``on_output`` gets each output line (stdout and stderr merged).

    Raises RunError when the sandbox cannot be set up (bad paths, no runtime,
    no overlayfs, no uplink); a process that fails is a result with a non-zero code.
    """
    if spec.network not in NETWORKS:
        raise RunError(f"sandbox network must be one of {', '.join(NETWORKS)}, not {spec.network!r}")
    if not spec.args:
        raise RunError("a sandbox needs a command to run")
    upper = Path(spec.upperdir)
    if not upper.is_dir():
        raise RunError(f"upperdir {upper} does not exist", hint="create it before calling run_sandbox")
    rt = select_runtime(settings)
    sandbox_root = settings.home / "sandbox"
    sandboxreap.reap_stale(settings.home)  # what a killed builder left behind
    sid = "mlpack-sbx-" + os.urandom(6).hex()
    base = sandbox_root / sid
    rootfs = base / "rootfs"
    own_workdir = spec.workdir is None
    workdir = Path(spec.workdir) if spec.workdir else upper.parent / f".{upper.name}.work-{sid}"
    parent = cgroup_parent(spec.limits, strict=False)  # rootless: delegated, or none
    cgroups_path = f"/{parent}/{sid}" if parent else ""
    started = time.monotonic()
    created = False
    timed_out = threading.Event()
    output: list[str] = []
    kept = 0
    netns: Path | None = None
    uplink: Uplink | None = None
    watchdog: subprocess.Popen | None = None
    try:
        rootfs.mkdir(parents=True)
        owner = {"cgroups_path": cgroups_path, "delete_argv": rt.argv("delete", "--force", sid),
                 "workdir": str(workdir) if own_workdir else None, "upperdir": str(upper), "helpers": []}
        sandboxreap.write_owner(base, owner)
        watchdog = _start_watchdog(base)
        workdir.mkdir(parents=True, exist_ok=True)
        lowers = [Path(p) for p in spec.lowerdirs]
        if not lowers:  # FROM scratch: overlayfs still wants one lower layer
            lowers = [base / "empty"]
            lowers[0].mkdir()
        for p in lowers:
            if not p.is_dir():
                raise RunError(f"lower directory {p} does not exist")
        mount_overlay(lowers, upper, workdir, rootfs)
        uid, gid, groups, home = resolve_user(rootfs, spec.user)
        env = merge_env({"HOME": home or "/root"} if home or uid == 0 else None, spec.env)
        mounts = list(spec.mounts) + [_mount_overlay_bind(base, i, b) for i, b in enumerate(spec.overlay_binds)]
        network, netns_path = spec.network, None
        if spec.network == "default":
            netns = base / "netns"
            create_netns(netns)
            resolv = base / "resolv.conf"
            uplink = start_uplink(netns, resolv, base / "uplink.log")
            sandboxreap.write_owner(base, dict(owner, helpers=[uplink.pid]))
            network, netns_path = "private", str(netns)
            mounts.append(Mount.bind(resolv, "/etc/resolv.conf", readonly=True))
        cspec = ContainerSpec(
            rootfs=rootfs,
            process=ProcessSpec(
                args=tuple(spec.args), env=env, cwd=spec.cwd or "/", uid=uid, gid=gid,
                additional_gids=groups, capabilities=normalize_caps(spec.capabilities),
                no_new_privileges=spec.no_new_privileges,
            ),
            hostname=spec.hostname,
            readonly_root=spec.readonly_root,
            mounts=tuple(mounts),
            network=network,
            netns_path=netns_path,
            limits=spec.limits,
            cgroups_path=cgroups_path,
            tmpfs_tmp=False,  # a RUN step's /tmp is part of the root (docker build semantics)
        )
        (base / "config.json").write_text(json.dumps(adapt_config(build_config(cspec))))
        rt.root.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen(
            rt.argv("run", "--bundle", str(base), sid),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        created = True
        timer = None
        if spec.timeout:
            def _expire() -> None:
                timed_out.set()
                rt.call("kill", sid, "KILL", check=False)

            timer = threading.Timer(spec.timeout, _expire)
            timer.daemon = True
            timer.start()
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.decode("utf-8", errors="replace")
                if on_output is not None:
                    on_output(line)
                output.append(line)
                kept += len(line)
                while kept > MAX_OUTPUT and len(output) > 1:
                    kept -= len(output.pop(0))
            code = proc.wait()
        except BaseException:
            rt.call("kill", sid, "KILL", check=False)
            proc.kill()
            proc.wait()
            raise
        finally:
            if timer is not None:
                timer.cancel()
        return SandboxResult(exit_code=code, output="".join(output),
                             duration=time.monotonic() - started, timed_out=timed_out.is_set())
    finally:
        if uplink is not None:
            uplink.stop(wait=False)  # the step is over: its exit (the netns goes with _cleanup) is reaped aside
        _cleanup(rt, sid, created, rootfs, cgroups_path, base, workdir if own_workdir else None, netns)
        if watchdog is not None:
            _stop_watchdog(watchdog)


def _start_watchdog(base: Path) -> subprocess.Popen:
    """The process that reaps ``base`` if this one dies before :func:`_stop_watchdog`."""
    return subprocess.Popen(
        [sys.executable, "-S", sandboxwatch.__file__, str(base)],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, env={"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")},
    )


def _stop_watchdog(watchdog: subprocess.Popen) -> None:
    assert watchdog.stdin is not None
    try:
        watchdog.stdin.write(b"done")
        watchdog.stdin.close()
    except OSError:
        pass
    watchdog.wait()


def _mount_overlay_bind(base: Path, index: int, bind: OverlayBind) -> Mount:
    """Stack ``bind.lowerdirs`` under a scratch upper at ``base/binds/<index>`` and return the bind of its subpath."""
    top = base / "binds" / str(index)
    upper, work, merged = top / "u", top / "w", top / "m"
    for p in (upper, work, merged):
        p.mkdir(parents=True)
    for rel in bind.hidden:  # a whiteout (char 0:0) hides the lower path in the merged tree
        rel = rel.strip("/")
        if not rel:
            continue
        parent = upper / os.path.dirname(rel)
        parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mknod(parent / os.path.basename(rel), 0o600 | 0o020000, os.makedev(0, 0))
        except FileExistsError:
            pass
    mount_overlay([Path(p) for p in bind.lowerdirs], upper, work, merged)
    source = resolve_in_root(merged, bind.subpath) if bind.subpath.strip("/") else merged
    if source is None:
        raise RunError(f"--mount source {bind.subpath!r} does not exist in its root")
    return Mount.bind(source, bind.target, readonly=bind.readonly)


def _cleanup(rt, sid: str, created: bool, rootfs: Path, cgroups_path: str,
             base: Path, workdir: Path | None, netns: Path | None) -> None:
    if created and (rt.root / sid).exists():
        # `run` in the foreground removes the container's state when its process exits: only
        # a runtime that was killed (or failed half-way) leaves it to delete (3 execs saved a step)
        rt.call("delete", "--force", sid, check=False)
    remove_cgroup(cgroups_path)
    for point in sorted(mounts_under(base), key=len, reverse=True):
        if netns is None or point != os.path.realpath(netns):
            umount(point)
    if netns is not None:
        delete_netns(netns)
    shutil.rmtree(base, ignore_errors=True)
    if workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(workdir.parent / (workdir.name + ".l"), ignore_errors=True)
    try:
        os.rmdir(base.parent)  # sandbox/ itself when it is empty
    except OSError:
        pass
