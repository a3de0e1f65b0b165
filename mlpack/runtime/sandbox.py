"""Run one process to completion over an overlay root: the builder's RUN step.

    result = run_sandbox(SandboxSpec(lowerdirs=[...], upperdir=up, args=["sh", "-c", "pip install x"],
                                     env={"PIP_NO_CACHE_DIR": "1"}, network="host",
                                     mounts=[Mount.bind(ca, "/etc/ssl/certs/ca.pem", readonly=True)]),
                         settings=settings, on_output=print)
    result.exit_code, result.output

The process runs in a real OCI runtime (crun or runc) with its own mount, pid,
ipc and uts namespaces, Docker's default capabilities (a RUN step installs
packages as root) and the default seccomp profile. Everything it made is
undone afterwards, on failure and on KeyboardInterrupt too: the runtime
state, the cgroup, the overlay mount and the overlay work directory. Only
``upperdir`` (the changes) stays, for the caller to turn into a layer.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mlpack.errors import RunError
from mlpack.runtime.cgroups import remove_cgroup
from mlpack.runtime.host import select_runtime
from mlpack.runtime.rootless import adapt_config, cgroup_parent
from mlpack.runtime.mounts import mount_overlay, umount
from mlpack.runtime.spec import (
    DOCKER_DEFAULT_CAPS, ContainerSpec, Mount, ProcessSpec, build_config, merge_env, normalize_caps,
    resolve_user,
)
from mlpack.settings import Settings
from mlpack.types import Limits

__all__ = ["SandboxSpec", "SandboxResult", "run_sandbox", "Mount"]

# Output kept in SandboxResult.output (the tail; the callback sees everything).
MAX_OUTPUT = 4 * 1024 * 1024


@dataclass(frozen=True)
class SandboxSpec:
    """One process to run over ``lowerdirs`` (base first) + ``upperdir``.

    ``upperdir`` must exist and is where every change lands. ``workdir`` is
    overlayfs's scratch directory; it must be on the same filesystem as
    ``upperdir`` and empty; when None a sibling of ``upperdir`` is made and
    removed. ``user`` is an image USER (``root``, ``1000:1000``, ``app``),
    resolved in the merged root. ``network`` is ``"none"`` (only a loopback)
    or ``"host"`` (for package installs). ``capabilities`` defaults to
    Docker's default set, as ``docker build`` gives RUN steps.
    """

    lowerdirs: Sequence[Path | str]
    upperdir: Path | str
    args: Sequence[str]
    env: Mapping[str, str] | Sequence[str] = field(default_factory=dict)
    cwd: str = "/"
    user: str | None = None
    mounts: Sequence[Mount] = ()
    network: str = "none"
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
    no overlayfs); a process that fails is a result with a non-zero code.
    """
    if spec.network not in ("none", "host"):
        raise RunError(f"sandbox network must be 'none' or 'host', not {spec.network!r}")
    if not spec.args:
        raise RunError("a sandbox needs a command to run")
    upper = Path(spec.upperdir)
    if not upper.is_dir():
        raise RunError(f"upperdir {upper} does not exist", hint="create it before calling run_sandbox")
    rt = select_runtime(settings)
    sid = "mlpack-sbx-" + os.urandom(6).hex()
    base = settings.home / "sandbox" / sid
    rootfs = base / "rootfs"
    own_workdir = spec.workdir is None
    workdir = Path(spec.workdir) if spec.workdir else upper.parent / f".{upper.name}.work-{sid}"
    parent = cgroup_parent(spec.limits, strict=False)  # rootless: delegated, or none
    cgroups_path = f"/{parent}/{sid}" if parent else ""
    started = time.monotonic()
    mounted = created = False
    timed_out = threading.Event()
    output: list[str] = []
    kept = 0
    try:
        rootfs.mkdir(parents=True)
        workdir.mkdir(parents=True, exist_ok=True)
        lowers = [Path(p) for p in spec.lowerdirs]
        if not lowers:  # FROM scratch: overlayfs still wants one lower layer
            lowers = [base / "empty"]
            lowers[0].mkdir()
        for p in lowers:
            if not p.is_dir():
                raise RunError(f"lower directory {p} does not exist")
        mount_overlay(lowers, upper, workdir, rootfs)
        mounted = True
        uid, gid, groups, home = resolve_user(rootfs, spec.user)
        env = merge_env({"HOME": home or "/root"} if home or uid == 0 else None, spec.env)
        cspec = ContainerSpec(
            rootfs=rootfs,
            process=ProcessSpec(
                args=tuple(spec.args), env=env, cwd=spec.cwd or "/", uid=uid, gid=gid,
                additional_gids=groups, capabilities=normalize_caps(spec.capabilities),
                no_new_privileges=spec.no_new_privileges,
            ),
            hostname=spec.hostname,
            readonly_root=spec.readonly_root,
            mounts=tuple(spec.mounts),
            network=spec.network,
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
        _cleanup(rt, sid, created, mounted, rootfs, cgroups_path, base, workdir if own_workdir else None)


def _cleanup(rt, sid: str, created: bool, mounted: bool, rootfs: Path, cgroups_path: str,
             base: Path, workdir: Path | None) -> None:
    if created:
        rt.call("delete", "--force", sid, check=False)
    remove_cgroup(cgroups_path)
    if mounted:
        umount(rootfs)
    shutil.rmtree(base, ignore_errors=True)
    if workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(workdir.parent / (workdir.name + ".l"), ignore_errors=True)
    try:
        os.rmdir(base.parent)  # sandbox/ itself when it is empty
    except OSError:
        pass
