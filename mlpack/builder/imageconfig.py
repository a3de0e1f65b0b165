"""Image config assembly: the OCI config JSON a build produces.

A stage starts from its base image's parsed :class:`~mlpack.oci.config.ImageConfig`
(every key of its ``config`` object kept) and each Dockerfile instruction
changes it through one typed method of :class:`ConfigState`; this module and
mlpack.oci.config are the only ones that know the config's JSON keys. Rules:
durations in integer nanoseconds, ``ExposedPorts`` as ``{"8080/tcp": {}}``,
history with ``empty_layer`` for steps that add no layer, ``rootfs.diff_ids``
in layer order.
"""

from __future__ import annotations

import copy
import time
import re

from mlpack.errors import BuildError
from mlpack.oci.config import HealthcheckConfig, ImageConfig
from mlpack.values import dataclass, field

TYPE_CHECKING = False  # typing is the type checker's: a CLI rebuild does not import it
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

__all__ = ["ConfigState", "parse_duration", "parse_port", "env_list", "env_dict", "rfc3339"]

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 10**3, "µs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def parse_duration(text: str) -> int:
    """Go-style duration (``30s``, ``1m30s``, ``500ms``) -> integer nanoseconds."""
    text = text.strip()
    pos, total = 0, 0
    if text == "0":
        return 0
    for match in _DURATION_RE.finditer(text):
        if match.start() != pos:
            break
        total += round(float(match.group(1)) * _UNIT_NS[match.group(2)])
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"invalid duration {text!r} (use e.g. 30s, 1m30s, 500ms)")
    return total


def parse_port(text: str) -> str:
    """``8080`` -> ``8080/tcp``; ``53/udp`` kept; ranges ``8000-8002`` expand elsewhere."""
    port, _, proto = text.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp") or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"invalid port {text!r} (use 8080 or 8080/tcp)")
    return f"{int(port)}/{proto}"


def env_dict(env: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in env or []:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def env_list(env: dict[str, str]) -> list[str]:
    return [f"{k}={v}" for k, v in env.items()]


def rfc3339(epoch: int) -> str:
    """``2023-11-14T22:13:20Z`` (UTC, whole seconds), without importing datetime on every build."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


@dataclass
class ConfigState:
    """The mutable image config of one stage while it builds."""

    config: dict[str, Any] = field(default_factory=dict)   # the "config" object
    diff_ids: list[str] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    author: str | None = None                              # MAINTAINER

    @classmethod
    def from_base(cls, base: ImageConfig | None) -> "ConfigState":
        """Start from a base image's config (or scratch when None)."""
        if base is None:
            return cls(config={"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]})
        diff_ids = list(base.diff_ids)
        history = [copy.deepcopy(dict(h)) for h in base.history]
        missing = len(diff_ids) - sum(1 for h in history if not h.get("empty_layer"))
        if missing > 0:
            # a base without (enough) history: one entry per layer keeps the config consistent
            history = [{"created_by": "(base layer without history)"} for _ in range(missing)] + history
        return cls(config=base.config_object, diff_ids=diff_ids, history=history, author=base.author)

    # -- what steps read ---------------------------------------------------------------
    @property
    def user(self) -> str:
        return self.config.get("User") or ""

    @property
    def working_dir(self) -> str:
        """WORKDIR, ``/`` when unset."""
        return self.config.get("WorkingDir") or "/"

    # -- what steps write --------------------------------------------------------------
    def set_user(self, user: str) -> None:
        self.config["User"] = user

    def set_working_dir(self, path: str) -> None:
        self.config["WorkingDir"] = path

    def add_labels(self, labels: dict[str, str]) -> None:
        self.config["Labels"] = {**(self.config.get("Labels") or {}), **labels}

    def expose(self, ports: list[str]) -> None:
        """Add ``ports`` (already in ``8080/tcp`` form) to ExposedPorts."""
        self.config["ExposedPorts"] = {**(self.config.get("ExposedPorts") or {}), **{p: {} for p in ports}}

    def add_volumes(self, paths: list[str]) -> None:
        self.config["Volumes"] = {**(self.config.get("Volumes") or {}), **{p: {} for p in paths}}

    def set_stop_signal(self, signal: str) -> None:
        self.config["StopSignal"] = signal

    def set_cmd(self, argv: list[str]) -> None:
        self.config["Cmd"] = argv

    def set_entrypoint(self, argv: list[str] | None, *, keep_cmd: bool) -> None:
        """ENTRYPOINT; docker drops the base image's CMD unless this stage set one."""
        self.config["Entrypoint"] = argv
        if not keep_cmd:
            self.config.pop("Cmd", None)

    def set_shell(self, argv: list[str]) -> None:
        self.config["Shell"] = argv

    def add_onbuild(self, expression: str) -> None:
        self.config["OnBuild"] = [*(self.config.get("OnBuild") or []), expression]

    def take_onbuild(self) -> list[str]:
        """The base image's ONBUILD triggers, removed: they run after FROM and are not inherited."""
        return [str(t) for t in self.config.pop("OnBuild", None) or []]

    def disable_healthcheck(self) -> None:
        self.config["Healthcheck"] = HealthcheckConfig(("NONE",)).to_json()

    @property
    def env(self) -> dict[str, str]:
        return env_dict(self.config.get("Env"))

    def set_env(self, key: str, value: str) -> None:
        env = self.env
        env[key] = value
        self.config["Env"] = env_list(env)

    def add_history(self, created_by: str, *, created: str, empty_layer: bool) -> None:
        entry: dict[str, Any] = {"created": created, "created_by": created_by}
        if empty_layer:
            entry["empty_layer"] = True
        else:
            entry["comment"] = "mlpack"
        self.history.append(entry)

    def healthcheck(self, test: list[str], *, interval: str | None, timeout: str | None,
                    start_period: str | None, start_interval: str | None, retries: str | None) -> None:
        """Docker's Healthcheck object; durations in ns, zero values omitted."""
        durations: dict[str, int] = {}
        for key, value in (("Interval", interval), ("Timeout", timeout),
                           ("StartPeriod", start_period), ("StartInterval", start_interval)):
            ns = parse_duration(value) if value is not None else 0
            if ns and ns < 10**6:
                raise BuildError(f"HEALTHCHECK {key} {value!r} is shorter than 1ms", hint="use e.g. 5s")
            durations[key] = ns
        if retries is not None and not retries.isdigit():
            raise BuildError(f"HEALTHCHECK --retries={retries!r} is not a number", hint="use e.g. --retries=3")
        check = HealthcheckConfig(tuple(test), durations["Interval"], durations["Timeout"], durations["StartPeriod"],
                                  durations["StartInterval"], int(retries or 0))
        self.config["Healthcheck"] = check.to_json()

    def to_blob(self, *, created: str, architecture: str = "amd64", os_name: str = "linux",
                variant: str = "") -> dict[str, Any]:
        """The full config object, keys in a stable order (``variant`` only when there is one)."""
        cfg = {k: v for k, v in self.config.items() if v not in (None, [], {})}
        author = {"author": self.author} if self.author else {}
        return {
            "architecture": architecture,
            **author,
            "config": cfg,
            "created": created,
            "history": self.history,
            "os": os_name,
            "rootfs": {"diff_ids": list(self.diff_ids), "type": "layers"},
            **({"variant": variant} if variant else {}),
        }
