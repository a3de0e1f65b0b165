"""Typed progress events of the serve pipeline, and the sinks that show them.

The pipeline (:mod:`mlpack.service`) emits :class:`StageEvent` for each of its
stages and forwards the builder's own events as :class:`BuildStepEvent`. The
builder defines its events in :mod:`mlpack.builder`; :func:`adapt_build_event`
reads them by attribute name so the two packages need not share classes.

A sink is any callable taking one event. :class:`TextSink` prints one line per
event (terminals, scripts, front ends without widgets); the notebook's widget
display lives in :mod:`mlpack.ipython.display`.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO, Union

from mlpack.builder.events import format_size  # one spelling of sizes everywhere
from mlpack.errors import MlpackError

__all__ = [
    "STAGES",
    "StageEvent",
    "BuildStepEvent",
    "LogEvent",
    "Event",
    "Sink",
    "TextSink",
    "ListSink",
    "adapt_build_event",
    "describe",
    "short",
    "format_size",
    "failure_lines",
]

# The pipeline's stages in order; every StageEvent names one of them.
STAGES = ("capture", "render", "base", "build", "run", "ready", "parity", "push", "export")


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


def _first(obj: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
        if value is not None:
            return value
    return default


_STATE_WORDS = {
    "start": "started", "started": "started", "begin": "started", "running": "started",
    "cached": "cached", "cache_hit": "cached", "hit": "cached", "cachehit": "cached",
    "done": "done", "finished": "done", "end": "done", "complete": "done", "completed": "done",
    "failed": "failed", "error": "failed",
}


def adapt_build_event(event: Any) -> Event | None:
    """Translate one event from :mod:`mlpack.builder` into a pipeline event.

    Reads the builder's fields by name (``step``/``index``, ``total``,
    ``instruction``/``text``, ``cached``, ``size``/``layer_size``,
    ``seconds``/``duration``); the state comes from a ``state``/``kind``/
    ``status`` field or the class name (``StepCached``, ``StepDone``, …).
    Events that are not about a step (build started/finished) return None;
    a text ``output``/``line`` becomes a :class:`LogEvent`.
    """
    if isinstance(event, (StageEvent, BuildStepEvent, LogEvent)):
        return event
    cls = type(event).__name__.lower()
    raw_state = str(_first(event, "state", "kind", "status", "event", default="")).lower()
    state = _STATE_WORDS.get(raw_state.replace("step_", "").replace("step", "").strip("_ "))
    if state is None:
        for word, mapped in (("cache", "cached"), ("fail", "failed"), ("done", "done"),
                             ("finish", "done"), ("end", "done"), ("start", "started")):
            if word in cls or word in raw_state:
                state = mapped
                break
    if _first(event, "cached", "cache_hit") is True:
        state = "cached"
    instruction = _first(event, "instruction", "text", "command", "line_text")
    step = _first(event, "step", "index", "number")
    if instruction is None and not isinstance(step, (int, type(None))):
        instruction = str(step)  # a builder that passes the step object itself
        step = _first(step, "index", "number")
    if instruction is None or "build" in cls and "step" not in cls:
        line = _first(event, "line", "output", "message")
        if isinstance(line, str) and line:
            return LogEvent(line.rstrip("\n"), source="build")
        return None
    return BuildStepEvent(
        step=step if isinstance(step, int) else None,
        total=_first(event, "total", "steps", "count"),
        instruction=str(instruction),
        state=state or "started",
        size=_first(event, "size", "layer_size", "bytes"),
        seconds=_first(event, "seconds", "duration", "elapsed"),
        stage_name=_first(event, "stage_name", "build_stage", "target") or None,
        output=str(_first(event, "output", default="") or ""),
    )


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


@dataclass
class ListSink:
    """Keeps every event (tests, and a summary after the fact)."""

    events: list[Event] = field(default_factory=list)

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def stages(self, state: str | None = None) -> list[str]:
        return [e.stage for e in self.events if isinstance(e, StageEvent) and (state is None or e.state == state)]


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
