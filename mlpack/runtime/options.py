"""Typed run options and the parsers for their docker spellings (-p, -v, --restart)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from mlpack.errors import RunError
from mlpack.oci.config import HealthcheckConfig
from mlpack.runtime.spec import Mount
from mlpack.values import dataclass, field

TYPE_CHECKING = False  # typing is the type checker's: a CLI start (mlpack run) does not import it
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

__all__ = [
    "PortMapping", "RestartPolicy", "Healthcheck", "RunOptions",
    "parse_port", "parse_ports", "parse_restart", "parse_volume", "parse_healthcheck",
]

NETWORK_MODES = ("private", "none", "host")


@dataclass(frozen=True)
class PortMapping:
    """``-p [HOST_IP:]HOST_PORT:CONTAINER_PORT``; host_port 0 = any free port."""

    host_port: int
    container_port: int
    host_ip: str = "127.0.0.1"

    def __str__(self) -> str:
        return f"{self.host_ip}:{self.host_port}->{self.container_port}/tcp"


def _port(text: str, what: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise RunError(f"bad {what} port {text!r}", hint="ports are numbers from 1 to 65535")
    return int(text)


def parse_port(value: str | int | PortMapping | tuple) -> PortMapping:
    """``8080``, ``"8080:80"``, ``"0.0.0.0:8080:80"``, ``"8080:80/tcp"``, (8080, 80) or a PortMapping."""
    if isinstance(value, PortMapping):
        return value
    if isinstance(value, int):
        return PortMapping(value, value)
    if isinstance(value, tuple):
        return PortMapping(int(value[0]), int(value[1]))
    text = str(value).strip()
    if text.endswith("/tcp"):
        text = text[:-4]
    if text.endswith("/udp"):
        raise RunError(f"UDP ports are not supported ({value!r})", hint="publish TCP ports only")
    host_ip = "127.0.0.1"
    if text.startswith("["):  # [::1]:8080:80
        end = text.find("]")
        host_ip, text = text[1:end], text[end + 2:]
    else:
        parts = text.split(":")
        if len(parts) == 3:
            host_ip, text = parts[0], ":".join(parts[1:])
    import ipaddress  # only when a port is published: keeps `mlpack ps` start-up small

    try:
        ipaddress.ip_address(host_ip)
    except ValueError:
        raise RunError(f"bad host address {host_ip!r} in {value!r}", hint="use an IP such as 127.0.0.1") from None
    hp, _, cp = text.partition(":")
    if not cp:  # "-p 80": publish container port 80 on a free host port
        return PortMapping(0, _port(hp, "container"), host_ip)
    container = _port(cp, "container")
    if container == 0:
        raise RunError(f"container port cannot be 0 in {value!r}")
    return PortMapping(_port(hp, "host") if hp else 0, container, host_ip)


def parse_ports(value: Any) -> tuple[PortMapping, ...]:
    """A list of port specs, a dict {container_port: host_port}, or None."""
    if value is None:
        return ()
    if isinstance(value, Mapping):
        return tuple(PortMapping(int(h or 0), int(str(c).split("/")[0])) for c, h in value.items())
    if isinstance(value, (str, int, PortMapping)):
        return (parse_port(value),)
    return tuple(parse_port(v) for v in value)


@dataclass(frozen=True)
class RestartPolicy:
    name: str = "no"  # no | on-failure | always | unless-stopped
    max_retries: int = 0  # 0 = unlimited (on-failure)

    def should_restart(self, exit_code: int, restarts: int, stopped_by_user: bool) -> bool:
        if stopped_by_user or self.name == "no":
            return False
        if self.name in ("always", "unless-stopped"):
            return True
        return exit_code != 0 and (self.max_retries == 0 or restarts < self.max_retries)


def parse_restart(value: str | RestartPolicy | None) -> RestartPolicy:
    if isinstance(value, RestartPolicy):
        return value
    text = (value or "no").strip()
    match = re.fullmatch(r"(no|always|unless-stopped|on-failure)(?::(\d+))?", text)
    if not match or (match.group(2) and match.group(1) != "on-failure"):
        raise RunError(f"bad restart policy {value!r}", hint="use no, always, unless-stopped or on-failure[:N]")
    return RestartPolicy(match.group(1), int(match.group(2) or 0))


def parse_volume(value: str | Mount) -> Mount:
    """``-v HOST:CONTAINER[:ro|rw]`` (bind) or ``-v tmpfs:/path`` -> Mount."""
    if isinstance(value, Mount):
        return value
    parts = str(value).split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
        raise RunError(f"bad volume {value!r}", hint="use HOST_PATH:CONTAINER_PATH[:ro]")
    src, dst = parts[0], parts[1]
    if src == "tmpfs":
        return Mount.tmpfs(dst)
    if not src.startswith("/"):
        raise RunError(f"volume source {src!r} must be an absolute host path",
                       hint="named volumes are not supported; use an absolute path")
    return Mount.bind(str(Path(src).resolve()), dst, readonly=len(parts) == 3 and parts[2] == "ro")


@dataclass(frozen=True)
class Healthcheck:
    """Docker's HEALTHCHECK: ``test`` as exec args (CMD-SHELL is wrapped in sh -c)."""

    test: tuple[str, ...]
    interval: float = 30.0
    timeout: float = 30.0
    start_period: float = 0.0
    retries: int = 3

    def to_json(self) -> dict[str, Any]:
        return {"test": list(self.test), "interval": self.interval, "timeout": self.timeout,
                "start_period": self.start_period, "retries": self.retries}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> "Healthcheck | None":
        if not data:
            return None
        return cls(tuple(data["test"]), data["interval"], data["timeout"], data["start_period"], data["retries"])


def parse_healthcheck(image_hc: HealthcheckConfig | None) -> Healthcheck | None:
    """The image config's Healthcheck (durations in ns) -> Healthcheck, or None for NONE/absent."""
    if image_hc is None or image_hc.disabled:
        return None
    test = list(image_hc.test)
    if test[0] == "CMD":
        args = tuple(test[1:])
    elif test[0] == "CMD-SHELL":
        args = ("/bin/sh", "-c", " ".join(test[1:]))
    else:  # a bare list is taken as CMD-SHELL, as docker does for strings
        args = ("/bin/sh", "-c", " ".join(test))
    if not args:
        return None
    sec = lambda ns, default: ns / 1e9 or default  # noqa: E731
    return Healthcheck(args, sec(image_hc.interval_ns, 30.0), sec(image_hc.timeout_ns, 30.0),
                       sec(image_hc.start_period_ns, 0.0), image_hc.retries or 3)


@dataclass(frozen=True)
class RunOptions:
    """Everything `mlpack run` accepts besides the image and the limits."""

    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    name: str | None = None
    ports: tuple[PortMapping, ...] = ()
    env: Mapping[str, str] | Sequence[str] = field(default_factory=dict)
    user: str | None = None
    workdir: str | None = None
    network: str = "private"
    read_write: bool = False
    cap_add: tuple[str, ...] = ()
    volumes: tuple[Mount, ...] = ()
    devices: tuple[str, ...] = ()  # CDI names such as nvidia.com/gpu=0
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    auto_remove: bool = False
    hostname: str | None = None
    healthcheck: Healthcheck | None = None
    no_healthcheck: bool = False
    cdi_dirs: tuple[str, ...] | None = None
    seccomp: bool = True

    def __post_init__(self) -> None:
        if self.network not in NETWORK_MODES:
            raise RunError(f"unknown network mode {self.network!r}", hint="use private (default), none or host")
        if self.network == "none" and self.ports:
            raise RunError("--network none publishes no ports", hint="drop -p or use the default network mode")
        if self.name is not None and not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}", self.name):
            raise RunError(f"bad container name {self.name!r}", hint="use letters, digits, '_', '.', '-'")
        if self.restart.name != "no" and self.auto_remove:
            raise RunError("--rm and --restart cannot be used together")
