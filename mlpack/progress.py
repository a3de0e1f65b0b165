"""Typed progress events of the serve pipeline, and the sinks that show them.

The pipeline (:mod:`mlpack.service`) emits :class:`StageEvent` for each of its
stages and forwards the builder's own events as :class:`BuildStepEvent`. The
builder defines its typed events in :mod:`mlpack.builder.events`;
:func:`adapt_build_event` translates each of them by its type.

A sink is any callable taking one event. :class:`TextSink` prints one line per
event (terminals, scripts, front ends without widgets); the notebook's widget
display lives in :mod:`mlpack.ipython.display`.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO, Union

from mlpack.builder import events as be
from mlpack.builder.events import BuildEvent, format_size  # one spelling of sizes everywhere
from mlpack.errors import MlpackError

__all__ = [
    "STAGES",
    "StageEvent",
    "BuildStepEvent",
    "LogEvent",
    "Event",
    "Sink",
    "TextSink",
    "adapt_build_event",
    "describe",
    "short",
    "format_size",
    "failure_lines",
]

# The pipeline's stages in order; every StageEvent names one of them.
STAGES = ("capture", "base", "render", "build", "run", "ready", "parity", "push", "export")


@dataclass(frozen=True)
class StageEvent:
    """A pipeline stage changed state: ``started``, ``done``, ``failed`` or ``skipped``."""

    stage: str
    state: str
    seconds: float | None = None
    detail: str = ""


@dataclass(frozen=True)
class BuildStepEvent:
    """One build step: ``started``, ``cached`` or ``done`` (layer ``size`` in bytes)."""

    step: int | None
    total: int | None
    instruction: str
    state: str
    size: int | None = None
    seconds: float | None = None
    stage_name: str | None = None
    output: str = ""


@dataclass(frozen=True)
class LogEvent:
    """A line of text worth showing (a RUN step's output, a note)."""

    text: str
    source: str = "mlpack"


Event = Union[StageEvent, BuildStepEvent, LogEvent]
Sink = Callable[[Event], None]


def adapt_build_event(event: BuildEvent | Event) -> Event | None:
    """Translate one typed event of :mod:`mlpack.builder.events` into a pipeline event.

    Step events become :class:`BuildStepEvent` (``started``, ``cached``,
    ``done``); a RUN step's output and a build warning become a
    :class:`LogEvent`; the stage and build boundaries return None (the
    pipeline's own ``build`` stage event says as much). Pipeline events pass
    through unchanged.
    """
    if isinstance(event, (StageEvent, BuildStepEvent, LogEvent)):
        return event
    if isinstance(event, be.StepStarted):
        return BuildStepEvent(event.step, event.total, event.instruction, "started",
                              stage_name=event.stage_name or None)
    if isinstance(event, be.StepCached):
        return BuildStepEvent(event.step, event.total, event.instruction, "cached", size=event.size,
                              stage_name=event.stage_name or None)
    if isinstance(event, be.StepDone):
        return BuildStepEvent(event.step, event.total, event.instruction, "done", size=event.size,
                              seconds=event.seconds, stage_name=event.stage_name or None)
    if isinstance(event, be.StepOutput):
        return LogEvent(event.output.rstrip("\n"), source="build") if event.output else None
    if isinstance(event, be.BuildWarning):
        where = f"line {event.line}: " if event.line else ""
        return LogEvent(f"warning: {where}{event.message}")
    return None  # StageStarted, BuildDone


def short(text: str, width: int = 160) -> str:
    """The first line of ``text``, blanks collapsed, cut at ``width`` characters."""
    first = text.strip().splitlines()[0] if text and text.strip() else ""
    first = re.sub(r"\s{2,}", " ", first)
    return first[:width] + ("…" if len(first) > width else "")


def describe(event: Event) -> str:
    """One line of text for an event, the same in a terminal and in a notebook."""
    if isinstance(event, StageEvent):
        took = f" ({event.seconds:.2f} s)" if event.seconds is not None else ""
        first = short(event.detail)
        detail = f": {first}" if first else ""
        return f"[{event.stage}] {event.state}{took}{detail}"
    if isinstance(event, BuildStepEvent):
        where = f"{event.step}/{event.total} " if event.step is not None and event.total else (
            f"{event.step} " if event.step is not None else "")
        size = f" {format_size(event.size)}" if event.size is not None else ""
        took = f" {event.seconds:.2f} s" if event.seconds is not None else ""
        tag = {"cached": "CACHED", "done": "done", "started": "...", "failed": "FAILED"}.get(
            event.state, event.state)
        return f"  step {where}{event.instruction[:90]}  {tag}{size}{took}"
    return f"  {event.text}"


@dataclass
class TextSink:
    """Prints each event as one line; build step ``started`` lines and RUN output
    are skipped unless ``verbose`` (the ``done``/``cached`` line says it all)."""

    stream: TextIO | None = None
    verbose: bool = False

    def __call__(self, event: Event) -> None:
        if isinstance(event, BuildStepEvent) and event.state == "started" and not self.verbose:
            return
        if isinstance(event, LogEvent) and event.source == "build" and not self.verbose:
            return  # RUN output: shown when a step fails, or with verbose
        stream = self.stream or sys.stdout
        print(describe(event), file=stream, flush=True)


def failure_lines(error: BaseException, *, output_lines: int = 30) -> list[str]:
    """``stage X failed: message``, the hint, and the failing step's output."""
    stage = getattr(error, "stage", None) or "mlpack"
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    if not isinstance(error, MlpackError):
        message = f"{type(error).__name__}: {message}"
    # Dockerfile continuations leave runs of blanks in an instruction: one is enough.
    message = "\n".join(re.sub(r"[ \t]{2,}", " ", line) for line in str(message).splitlines())
    lines = [f"stage {stage} failed: {message}"]
    hint = getattr(error, "hint", None)
    if hint:
        lines.append(f"  hint: {hint}")
    step = getattr(error, "step", None)
    if step is not None:
        lines.append(f"  step: {step}")
    code = getattr(error, "exit_code", None)
    if code is not None:
        lines.append(f"  exit code: {code}")
    output = getattr(error, "output", None) or getattr(error, "stderr", None)
    if isinstance(output, bytes):
        output = output.decode("utf-8", "replace")
    if output:
        tail = str(output).rstrip().splitlines()[-output_lines:]
        if tail and tail[-1].strip() and tail[-1].strip() in message:
            return lines  # the message already ends with the output's tail (the builder's RUN errors)
        lines.append("  output:")
        lines.extend(f"    {line}" for line in tail)
    return lines
