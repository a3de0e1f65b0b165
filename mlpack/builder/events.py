"""Typed progress events of a build (the CLI prints them, a notebook widget shows them).

A progress sink is any callable taking one event. Field names (``step``,
``total``, ``instruction``, ``size``, ``seconds``, ``stage_name``,
``output``) are what :func:`mlpack.progress.adapt_build_event` translates, by type.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from mlpack.values import dataclass, field

TYPE_CHECKING = False  # typing is the type checker's: a CLI rebuild does not import it
if TYPE_CHECKING:  # pragma: no cover
    from typing import TextIO

__all__ = [
    "StageStarted", "StepStarted", "StepCached", "StepDone", "StepOutput", "BuildWarning", "BuildDone",
    "LayerSummary", "BuildEvent", "Progress", "TextProgress", "format_size",
]


@dataclass(frozen=True)
class StageStarted:
    """A stage of the Dockerfile begins (``stage_name`` is its AS name or index)."""

    stage_name: str
    base: str
    index: int


@dataclass(frozen=True)
class StepStarted:
    step: int
    total: int
    instruction: str
    stage_name: str = ""


@dataclass(frozen=True)
class StepCached:
    step: int
    total: int
    instruction: str
    stage_name: str = ""
    size: int | None = None
    cached: bool = True


@dataclass(frozen=True)
class StepDone:
    """A step finished; ``size`` is its compressed layer size (None: no layer)."""

    step: int
    total: int
    instruction: str
    size: int | None
    seconds: float
    stage_name: str = ""


@dataclass(frozen=True)
class StepOutput:
    """Output of a RUN step (all of it, once the step ends)."""

    step: int
    output: str
    stage_name: str = ""


@dataclass(frozen=True)
class BuildWarning:
    """Something the build accepted but that may not mean what was meant (line 0: no line)."""

    line: int
    message: str


@dataclass(frozen=True)
class LayerSummary:
    digest: str
    size: int
    created_by: str
    cached: bool


@dataclass(frozen=True)
class BuildDone:
    """The build finished: image digest, tag and one summary row per layer."""

    digest: str
    tag: str | None
    seconds: float
    layers: tuple[LayerSummary, ...] = field(default_factory=tuple)
    unused_build_args: tuple[str, ...] = ()


BuildEvent = StageStarted | StepStarted | StepCached | StepDone | StepOutput | BuildWarning | BuildDone
Progress = Callable[[BuildEvent], None]


def format_size(size: int | None) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover


@dataclass
class TextProgress:
    """Prints one line per finished step and a layer table at the end."""

    stream: TextIO | None = None
    verbose: bool = False

    def __call__(self, event: BuildEvent) -> None:
        out = self.stream or sys.stderr
        if isinstance(event, StageStarted):
            print(f"[stage {event.stage_name}] FROM {event.base}", file=out, flush=True)
        elif isinstance(event, StepStarted) and self.verbose:
            print(f"  [{event.step}/{event.total}] {event.instruction[:100]} ...", file=out, flush=True)
        elif isinstance(event, StepCached):
            print(f"  [{event.step}/{event.total}] CACHED {event.instruction[:100]}", file=out, flush=True)
        elif isinstance(event, StepDone):
            size = f" {format_size(event.size)}" if event.size is not None else ""
            print(f"  [{event.step}/{event.total}] {event.instruction[:100]}  done{size} "
                  f"{event.seconds:.2f} s", file=out, flush=True)
        elif isinstance(event, StepOutput) and self.verbose and event.output:
            for line in event.output.rstrip("\n").splitlines():
                print(f"    | {line}", file=out)
        elif isinstance(event, BuildWarning):
            where = f"line {event.line}: " if event.line else ""
            print(f"  warning: {where}{event.message}", file=out, flush=True)
        elif isinstance(event, BuildDone):
            print(f"built {event.tag or event.digest} in {event.seconds:.2f} s", file=out)
            for layer in event.layers:
                flag = "cached" if layer.cached else "new   "
                print(f"  {layer.digest[7:19]}  {format_size(layer.size):>10}  {flag}  "
                      f"{layer.created_by[:70]}", file=out)
            if event.unused_build_args:
                print(f"  warning: build args not consumed by any ARG: {', '.join(event.unused_build_args)}",
                      file=out)
            total = sum(layer.size for layer in event.layers)
            print(f"  {len(event.layers)} layers, {format_size(total)}  {event.digest}", file=out, flush=True)
