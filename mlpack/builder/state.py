"""The state a build carries: each stage's layers, config and key."""

from __future__ import annotations


from mlpack.builder.imageconfig import ConfigState
from mlpack.builder.shell import Expander
from mlpack.builder.stages import Stage
from mlpack.oci.image import Layer
from mlpack.values import dataclass, field

__all__ = ["StageState", "DEFAULT_SHELL"]

DEFAULT_SHELL = ["/bin/sh", "-c"]


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
