"""The OCI runtime config.json, generated from typed values.

Hardened the way Docker hardens a container, by default: its own mount, pid,
ipc, uts and network namespaces; /sys read-only; Docker's masked and
read-only /proc paths; no capabilities at all (``cap_add`` adds some back);
noNewPrivileges; a read-only root; the seccomp profile of
:mod:`mlpack.runtime.seccomp`; a device cgroup that denies everything but the
few harmless character devices (plus the GPUs asked for).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from mlpack.errors import RunError
from mlpack.runtime.seccomp import default_profile
from mlpack.types import Limits
from mlpack.values import dataclass, field

TYPE_CHECKING = False  # typing is the type checker's: a CLI start (mlpack run) does not import it
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

    from mlpack.oci.config import ImageConfig

__all__ = [
    "Mount",
    "DeviceNode",
    "ProcessSpec",
    "ContainerSpec",
    "build_config",
    "resolve_user",
    "process_args",
    "merge_env",
    "normalize_caps",
    "DEFAULT_PATH",
    "DOCKER_DEFAULT_CAPS",
]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Docker's default capability set: what `docker build` RUN steps get. A
# served model gets none of these (ProcessSpec.capabilities defaults to ()).
DOCKER_DEFAULT_CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)

MASKED_PATHS = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

# null, zero, full, random, urandom, tty, console, ptmx, and the pts of
# the container's own devpts; mknod stays allowed in the cgroup (it still
# needs CAP_MKNOD) exactly as Docker does.
DEFAULT_DEVICE_RULES: tuple[dict[str, Any], ...] = (
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},
)


@dataclass(frozen=True)
class Mount:
    """One extra mount: a bind mount (read-only or not) or a tmpfs."""

    target: str
    source: str | None = None
    type: str = "bind"
    options: tuple[str, ...] = ()
    readonly: bool = False

    @classmethod
    def bind(cls, source: str | os.PathLike, target: str, *, readonly: bool = False) -> "Mount":
        return cls(target=target, source=str(source), type="bind", readonly=readonly)

    @classmethod
    def tmpfs(cls, target: str, *, size: str | None = None, mode: str = "1777") -> "Mount":
        opts = ("nosuid", "nodev", f"mode={mode}") + ((f"size={size}",) if size else ())
        return cls(target=target, source="tmpfs", type="tmpfs", options=opts)

    def to_oci(self) -> dict[str, Any]:
        if not self.target.startswith("/"):
            raise RunError(f"mount target {self.target!r} must be an absolute path inside the container")
        if self.type == "bind":
            if not self.source or not os.path.exists(self.source):
                raise RunError(
                    f"bind mount source {self.source!r} does not exist",
                    hint="create it first or fix the path (HOST:CONTAINER[:ro])",
                )
            opts = ["rbind", "rprivate", *self.options]
            if self.readonly:
                opts.append("ro")
            return {"destination": self.target, "type": "bind", "source": self.source, "options": opts}
        opts = list(self.options) + (["ro"] if self.readonly else [])
        return {"destination": self.target, "type": self.type, "source": self.source or self.type, "options": opts}


@dataclass(frozen=True)
class DeviceNode:
    """A device node to create inside and allow in the device cgroup."""

    path: str
    type: str  # "c" or "b"
    major: int
    minor: int
    file_mode: int = 0o666
    permissions: str = "rwm"

    def to_oci(self) -> dict[str, Any]:
        return {"path": self.path, "type": self.type, "major": self.major, "minor": self.minor,
                "fileMode": self.file_mode, "uid": 0, "gid": 0}

    def rule(self) -> dict[str, Any]:
        return {"allow": True, "type": self.type, "major": self.major, "minor": self.minor,
                "access": self.permissions}


@dataclass(frozen=True)
class ProcessSpec:
    """What to execute and as whom."""

    args: tuple[str, ...]
    env: tuple[str, ...] = ()
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    additional_gids: tuple[int, ...] = ()
    capabilities: tuple[str, ...] = ()
    no_new_privileges: bool = True
    nofile: int | None = None  # None: 65536, capped at this process's hard limit


@dataclass(frozen=True)
class ContainerSpec:
    """Everything config.json says about one container."""

    rootfs: Path
    process: ProcessSpec
    hostname: str = "mlpack"
    readonly_root: bool = True
    mounts: tuple[Mount, ...] = ()
    network: str = "private"  # private (own netns, maybe at netns_path) | none | host
    netns_path: str | None = None
    limits: Limits = field(default_factory=Limits)
    devices: tuple[DeviceNode, ...] = ()
    cgroups_path: str | None = None
    seccomp: bool = True
    annotations: Mapping[str, str] = field(default_factory=dict)
    tmpfs_tmp: bool = True  # False for build steps: /tmp is part of the image there, as in docker build
    hooks: Mapping[str, Sequence[Mapping[str, Any]]] = field(default_factory=dict)  # CDI hooks


def normalize_caps(names: Iterable[str]) -> tuple[str, ...]:
    """``net_bind_service`` / ``CAP_NET_BIND_SERVICE`` -> ``CAP_NET_BIND_SERVICE``; ALL is refused."""
    out: list[str] = []
    for name in names:
        cap = name.strip().upper()
        if not cap:
            continue
        if cap in ("ALL", "CAP_ALL"):
            raise RunError("--cap-add ALL is not supported", hint="name each capability the process needs")
        if not cap.startswith("CAP_"):
            cap = "CAP_" + cap
        if not cap[4:].replace("_", "").isalnum():
            raise RunError(f"not a capability name: {name!r}")
        if cap not in out:
            out.append(cap)
    return tuple(out)


def merge_env(*layers: Iterable[str] | Mapping[str, str] | None) -> tuple[str, ...]:
    """Later layers win; order of first appearance kept; PATH defaulted."""
    env: dict[str, str] = {}
    for layer in layers:
        if not layer:
            continue
        items = layer.items() if isinstance(layer, Mapping) else (
            (e.split("=", 1)[0], e.split("=", 1)[1] if "=" in e else os.environ.get(e, "")) for e in layer
        )
        for key, value in items:
            env[str(key)] = str(value)
    env.setdefault("PATH", DEFAULT_PATH)
    return tuple(f"{k}={v}" for k, v in env.items())


def process_args(image_config: ImageConfig, command: Sequence[str] | None,
                 entrypoint: Sequence[str] | None = None) -> tuple[str, ...]:
    """Docker's rule: Entrypoint + (command or Cmd); an empty result is an error."""
    ep = list(entrypoint) if entrypoint is not None else list(image_config.entrypoint or [])
    cmd = list(command) if command else ([] if entrypoint is not None else list(image_config.cmd or []))
    args = tuple(ep + cmd)
    if not args:
        raise RunError(
            "the image has no Entrypoint or Cmd and no command was given",
            hint="pass a command: mlpack run IMAGE COMMAND...",
        )
    return args


def _read_db(rootfs: Path, name: str) -> list[list[str]]:
    path = rootfs / "etc" / name
    real = os.path.realpath(path)
    # Never follow an image's symlink out of its root onto a host file.
    if not real.startswith(os.path.realpath(rootfs) + os.sep) or not os.path.isfile(real):
        return []
    with open(real, encoding="utf-8", errors="replace") as fh:
        return [line.rstrip("\n").split(":") for line in fh if line.strip() and not line.startswith("#")]


def resolve_user(rootfs: Path, user: str | None) -> tuple[int, int, tuple[int, ...], str | None]:
    """(uid, gid, additional gids, home) for an image USER such as ``app``, ``1000`` or ``app:staff``."""
    if not user:
        user = "0"
    name, _, group = user.partition(":")
    passwd = _read_db(rootfs, "passwd")
    groups = _read_db(rootfs, "group")
    home: str | None = None
    if name.isdigit():
        uid = int(name)
        entry = next((e for e in passwd if len(e) >= 4 and e[2] == name), None)
        gid = int(entry[3]) if entry else 0  # as runc/docker: no passwd entry -> group 0
        if entry and len(entry) >= 6:
            home = entry[5]
        username = entry[0] if entry else None
    else:
        entry = next((e for e in passwd if len(e) >= 4 and e[0] == name), None)
        if entry is None:
            raise RunError(
                f"user {name!r} is not in the image's /etc/passwd",
                hint="use a numeric USER (uid[:gid]) or add the user in the Dockerfile",
            )
        uid, gid = int(entry[2]), int(entry[3])
        home = entry[5] if len(entry) >= 6 else None
        username = name
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            gentry = next((g for g in groups if len(g) >= 3 and g[0] == group), None)
            if gentry is None:
                raise RunError(f"group {group!r} is not in the image's /etc/group")
            gid = int(gentry[2])
    extra: list[int] = []
    if username:
        for g in groups:
            if len(g) >= 4 and username in g[3].split(",") and int(g[2]) != gid:
                extra.append(int(g[2]))
    return uid, gid, tuple(extra), home


def _base_mounts(spec: ContainerSpec) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        # The container's own cgroup, read-only, as Docker mounts it: the server sizes its
        # thread pools and its request-body budget from the CPU quota and memory limit there.
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ]
    if spec.tmpfs_tmp:
        mounts.append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                       "options": ["nosuid", "nodev", "mode=1777"]})
    if spec.network == "host" and os.path.exists("/etc/resolv.conf"):
        mounts.append({"destination": "/etc/resolv.conf", "type": "bind", "source": "/etc/resolv.conf",
                       "options": ["rbind", "rprivate", "ro"]})
    return mounts


def _resources(spec: ContainerSpec) -> dict[str, Any]:
    limits = spec.limits
    res: dict[str, Any] = {
        "devices": [dict(r) for r in DEFAULT_DEVICE_RULES] + [d.rule() for d in spec.devices],
    }
    cpu: dict[str, Any] = {}
    if limits.cpu_quota:
        cpu["quota"], cpu["period"] = limits.cpu_quota
    if limits.cpuset_cpus:
        cpu["cpus"] = str(limits.cpuset_cpus)
    if cpu:
        res["cpu"] = cpu
    if limits.memory:
        # swap == limit means "memory+swap may not exceed the limit": no swap.
        res["memory"] = {"limit": limits.memory, "swap": limits.memory}
    if limits.pids:
        res["pids"] = {"limit": limits.pids}
    return res


def _default_nofile() -> int:
    # Raising past our own hard limit needs CAP_SYS_RESOURCE, which a
    # confined mlpack (inside another container) may lack.
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 65536 if hard == resource.RLIM_INFINITY else min(65536, hard)


def build_config(spec: ContainerSpec) -> dict[str, Any]:
    """The config.json object for ``spec`` (OCI runtime spec 1.0)."""
    proc = spec.process
    caps = list(proc.capabilities)
    nofile = proc.nofile or _default_nofile()
    namespaces: list[dict[str, str]] = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    if spec.network != "host":
        ns: dict[str, str] = {"type": "network"}
        if spec.netns_path:
            ns["path"] = spec.netns_path
        namespaces.append(ns)
    mounts = _base_mounts(spec)
    taken = {m["destination"] for m in mounts}
    for m in spec.mounts:
        oci = m.to_oci()
        if oci["destination"] in taken:
            mounts = [x for x in mounts if x["destination"] != oci["destination"]]
        mounts.append(oci)
    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "resources": _resources(spec),
        "devices": [d.to_oci() for d in spec.devices],
        "maskedPaths": list(MASKED_PATHS),
        "readonlyPaths": list(READONLY_PATHS),
    }
    if spec.cgroups_path:
        linux["cgroupsPath"] = spec.cgroups_path
    if spec.seccomp:
        linux["seccomp"] = default_profile(caps)
    process: dict[str, Any] = {
        "terminal": False,
        "user": {"uid": proc.uid, "gid": proc.gid},
        "args": list(proc.args),
        "env": list(proc.env),
        "cwd": proc.cwd or "/",
        "capabilities": {k: list(caps) for k in ("bounding", "effective", "permitted")},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile}],
        "noNewPrivileges": proc.no_new_privileges,
    }
    if proc.additional_gids:
        process["user"]["additionalGids"] = list(proc.additional_gids)
    config: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": str(spec.rootfs), "readonly": spec.readonly_root},
        "hostname": spec.hostname,
        "mounts": mounts,
        "linux": linux,
        "annotations": dict(spec.annotations),
    }
    if spec.hooks:
        config["hooks"] = {k: [dict(h) for h in v] for k, v in spec.hooks.items()}
    return config
