"""GPUs (and any other device) through CDI, the Container Device Interface.

A CDI spec (YAML or JSON in /etc/cdi and /var/run/cdi) names devices of a
kind such as ``nvidia.com/gpu`` and, per device and for the whole kind, the
container edits that make it usable: env, device nodes, mounts, hooks.
``--gpus 1`` / ``--gpus 0,1`` / ``--gpus all`` and
``--device nvidia.com/gpu=0`` become such names; applying them adds the
nodes to config.json and exactly those nodes to the device cgroup.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path

from mlpack.errors import RunError
from mlpack.runtime.spec import DeviceNode, Mount
from mlpack.values import dataclass, field

TYPE_CHECKING = False  # typing is the type checker's: a CLI start (mlpack run) does not import it
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

__all__ = ["DEFAULT_SPEC_DIRS", "CdiEdits", "load_specs", "gpu_device_names", "resolve_devices", "spec_dirs"]

DEFAULT_SPEC_DIRS = ("/etc/cdi", "/var/run/cdi")
GPU_KIND = "nvidia.com/gpu"
# compiled on first use (re's cache): `mlpack run` without devices never needs it
_NAME_RE = r"^([a-z0-9.-]+/[a-zA-Z0-9_.-]+)=([a-zA-Z0-9_.:-]+)$"
_GENERATE_HINT = (
    "generate a CDI spec for your GPUs: `sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml` "
    "(NVIDIA Container Toolkit), then check it with `nvidia-ctk cdi list`"
)


def spec_dirs(env: dict[str, str] | None = None) -> tuple[str, ...]:
    """MLPACK_CDI_SPEC_DIRS (colon-separated) or the standard /etc/cdi, /var/run/cdi."""
    value = (os.environ if env is None else env).get("MLPACK_CDI_SPEC_DIRS", "")
    dirs = tuple(p for p in value.split(":") if p)
    return dirs or DEFAULT_SPEC_DIRS


@dataclass
class CdiEdits:
    """The union of container edits of the chosen devices."""

    env: list[str] = field(default_factory=list)
    devices: list[DeviceNode] = field(default_factory=list)
    mounts: list[Mount] = field(default_factory=list)
    hooks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)

    def add(self, edits: dict[str, Any] | None, origin: str) -> None:
        if not edits:
            return
        for e in edits.get("env") or []:
            if e not in self.env:
                self.env.append(str(e))
        for node in edits.get("deviceNodes") or []:
            dev = _device_node(node, origin)
            if all(d.path != dev.path for d in self.devices):
                self.devices.append(dev)
        for m in edits.get("mounts") or []:
            opts = [str(o) for o in (m.get("options") or [])]
            host = str(m["hostPath"])
            if not os.path.exists(host):
                raise RunError(f"CDI spec {origin} mounts {host}, which does not exist",
                               hint="regenerate the CDI spec for this host")
            self.mounts.append(Mount(target=str(m["containerPath"]), source=host,
                                     type=m.get("type") or "bind",
                                     options=tuple(o for o in opts if o not in ("ro", "rbind", "bind")),
                                     readonly="ro" in opts))
        for h in edits.get("hooks") or []:
            path = str(h.get("path", ""))
            if not os.path.isabs(path) or not os.access(path, os.X_OK):
                raise RunError(f"CDI spec {origin} has a hook {path!r} that is not an executable absolute path",
                               hint="hooks run on the host as root: fix or regenerate the spec")
            hook: dict[str, Any] = {"path": path, "args": list(h.get("args") or [path])}
            if h.get("env"):
                hook["env"] = list(h["env"])
            if h.get("timeout"):
                hook["timeout"] = int(h["timeout"])
            self.hooks.setdefault(str(h.get("hookName", "createContainer")), []).append(hook)


def _device_node(node: dict[str, Any], origin: str) -> DeviceNode:
    path = str(node.get("path", ""))
    if not path.startswith("/dev/"):
        raise RunError(f"CDI spec {origin} has a device node outside /dev: {path!r}")
    host = str(node.get("hostPath") or path)
    dtype, major, minor = node.get("type"), node.get("major"), node.get("minor")
    if major is None or minor is None or dtype is None:
        try:
            st = os.stat(host)
        except OSError:
            raise RunError(f"CDI device node {host} does not exist on this host",
                           hint="is the driver loaded? regenerate the CDI spec") from None
        if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
            raise RunError(f"CDI device node {host} is not a device")
        dtype = dtype or ("c" if stat.S_ISCHR(st.st_mode) else "b")
        major = os.major(st.st_rdev) if major is None else major
        minor = os.minor(st.st_rdev) if minor is None else minor
    if dtype not in ("c", "b", "u"):
        raise RunError(f"CDI device node {path} has unknown type {dtype!r}")
    perms = str(node.get("permissions") or "rwm")
    mode = int(node["fileMode"]) if node.get("fileMode") is not None else 0o666
    return DeviceNode(path=path, type="c" if dtype == "u" else dtype, major=int(major), minor=int(minor),
                      file_mode=mode, permissions=perms)


def _parse(path: Path) -> dict[str, Any] | None:
    text = path.read_text()
    if path.suffix == ".json":
        return json.loads(text)
    import yaml  # a declared dependency; imported only when a spec is read

    return yaml.safe_load(text)


def load_specs(dirs: Iterable[str]) -> dict[str, list[tuple[dict[str, Any], str]]]:
    """kind -> [(spec, file)] for every readable spec; later dirs override earlier ones (CDI rule)."""
    specs: dict[str, list[tuple[dict[str, Any], str]]] = {}
    for d in dirs:
        root = Path(d)
        if not root.is_dir():
            continue
        for path in sorted(root.iterdir()):
            if path.suffix not in (".json", ".yaml", ".yml") or not path.is_file():
                continue
            try:
                spec = _parse(path)
            except Exception as exc:  # a broken spec must name itself
                raise RunError(f"cannot read CDI spec {path}: {exc}", hint="fix or regenerate it") from None
            if not isinstance(spec, dict) or "kind" not in spec:
                raise RunError(f"CDI spec {path} has no kind", hint="fix or regenerate it")
            specs.setdefault(str(spec["kind"]), []).append((spec, str(path)))
    return specs


def _devices_of(specs: list[tuple[dict[str, Any], str]]) -> dict[str, tuple[dict[str, Any], str]]:
    found: dict[str, tuple[dict[str, Any], str]] = {}
    for spec, origin in specs:
        for dev in spec.get("devices") or []:
            found[str(dev["name"])] = (dev, origin)
    return found


def _sort_key(name: str) -> tuple[int, str]:
    return (int(name), "") if name.isdigit() else (1 << 30, name)


def gpu_device_names(gpus: int | tuple[str, ...] | None, dirs: Sequence[str]) -> list[str]:
    """Fully qualified CDI names for a Limits.gpus value."""
    if gpus is None:
        return []
    if isinstance(gpus, tuple) and gpus != ("all",):
        return [f"{GPU_KIND}={g}" for g in gpus]
    specs = load_specs(dirs).get(GPU_KIND)
    if not specs:
        raise RunError(f"GPUs were requested but no CDI spec for {GPU_KIND} is in {', '.join(dirs)}",
                       hint=_GENERATE_HINT)
    names = sorted((n for n in _devices_of(specs) if n != "all"), key=_sort_key)
    if gpus == ("all",):
        return [f"{GPU_KIND}={n}" for n in names]
    assert isinstance(gpus, int)
    numeric = [n for n in names if n.isdigit()] or names
    if gpus > len(numeric):
        raise RunError(f"{gpus} GPUs requested but the CDI spec lists {len(numeric)}",
                       hint="ask for fewer (--gpus N) or check `nvidia-ctk cdi list`")
    return [f"{GPU_KIND}={n}" for n in numeric[:gpus]]


def resolve_devices(names: Sequence[str], dirs: Sequence[str]) -> CdiEdits:
    """The container edits for ``names`` (``vendor/class=device``), kind-wide edits once per kind."""
    edits = CdiEdits()
    if not names:
        return edits
    all_specs = load_specs(dirs)
    kinds_done: set[str] = set()
    for name in names:
        match = re.match(_NAME_RE, name)
        if not match:
            raise RunError(f"bad CDI device name {name!r}", hint="use vendor.com/class=device, e.g. nvidia.com/gpu=0")
        kind, dev_name = match.groups()
        specs = all_specs.get(kind)
        if not specs:
            hint = _GENERATE_HINT if kind == GPU_KIND else f"add a CDI spec for {kind} to {dirs[0]}"
            raise RunError(f"no CDI spec for {kind} in {', '.join(dirs)}", hint=hint)
        devices = _devices_of(specs)
        if dev_name not in devices:
            raise RunError(f"CDI device {name} is not defined (known: {', '.join(sorted(devices)) or 'none'})",
                           hint="check `nvidia-ctk cdi list` or the spec files")
        if kind not in kinds_done:
            for spec, origin in specs:
                edits.add(spec.get("containerEdits"), origin)
            kinds_done.add(kind)
        dev, origin = devices[dev_name]
        edits.add(dev.get("containerEdits"), origin)
        edits.names.append(name)
    return edits
