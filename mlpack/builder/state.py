"""The state a build carries: its options, and each stage's layers, config and key."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mlpack.builder.events import Progress
from mlpack.builder.imageconfig import ConfigState
from mlpack.builder.shell import Expander
from mlpack.builder.stages import Stage
from mlpack.oci.layout import Layer

__all__ = ["BuildOptions", "StageState", "DEFAULT_SHELL"]

DEFAULT_SHELL = ["/bin/sh", "-c"]


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
