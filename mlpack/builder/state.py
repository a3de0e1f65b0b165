"""The state a build carries: its options, and each stage's layers, config and key."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlpack.builder.events import Progress
from mlpack.builder.imageconfig import ConfigState
from mlpack.builder.shell import Expander
from mlpack.builder.stages import Stage
from mlpack.oci.layout import Layer
from mlpack.types import Limits

__all__ = ["BuildOptions", "StageState", "DEFAULT_SHELL", "default_run_limits"]

DEFAULT_SHELL = ["/bin/sh", "-c"]
DEFAULT_RUN_PIDS = 4096
DEFAULT_RUN_MEMORY = 8 << 30


def default_run_limits() -> Limits:
    """A RUN step's cgroup unless the build says otherwise (mlpack build --memory/--pids-limit/--cpus):
    4096 processes and 8 GiB (half the host's memory when that is less): enough for pip, compilers
    and test suites, while a fork bomb or a leak stops there, not at the host."""
    memory = DEFAULT_RUN_MEMORY
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    memory = min(memory, int(line.split()[1]) * 1024 // 2)
                    break
    except (OSError, ValueError):
        pass
    return Limits(memory=memory, pids=DEFAULT_RUN_PIDS)


@dataclass
class BuildOptions:
    """Everything a build takes besides the Dockerfile and the context."""

    tag: str | None = None
    build_args: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    secrets: dict[str, Path] = field(default_factory=dict)
    source_date_epoch: int | None = None
    progress: Progress | None = None
    network: str = "default"  # what RUN --network=default means: default (uplink), none or host
    limits: Limits = field(default_factory=default_run_limits)  # every RUN step's cgroup
    contexts: dict[str, Any] = field(default_factory=dict)  # named build contexts: name -> BuildContextDir


@dataclass
class StageState:
    stage: Stage
    layers: list[Layer]
    cached: list[bool]
    created_by: list[str]
    cfg: ConfigState
    key: str
    args: dict[str, str] = field(default_factory=dict)
    shell: list[str] = field(default_factory=lambda: list(DEFAULT_SHELL))
    cmd_set: bool = False

    def expander(self, escape: str) -> Expander:
        env = {**self.args, **self.cfg.env}  # ENV wins over ARG of the same name
        return Expander(env, escape=escape)
