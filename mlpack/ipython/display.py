"""What the notebook shows: pipeline progress, the running container, failures.

Each view has a widget form (ipywidgets, when the front end can show widgets)
and a plain-text form (terminal IPython, scripts, nbval); both are driven by
the same :mod:`mlpack.progress` events and the same text helpers, so they say
the same thing.
"""

from __future__ import annotations

import html
import os
import sys
import threading
import time
from dataclasses import asdict, is_dataclass
from typing import Any

from mlpack.progress import (
    STAGES,
    BuildStepEvent,
    Event,
    LogEvent,
    StageEvent,
    TextSink,
    failure_lines,
    format_size,
    short,
)

__all__ = [
    "widgets_available",
    "ProgressView",
    "TextProgress",
    "WidgetProgress",
    "make_progress",
    "status_lines",
    "StatusView",
    "StageFailure",
    "failure_lines",
]

_ICONS = {"pending": "·", "started": "…", "done": "✔", "failed": "✖", "skipped": "–"}
_COLORS = {"pending": "#888", "started": "#1565c0", "done": "#2e7d32", "failed": "#c62828", "skipped": "#888"}


def widgets_available(shell: Any = None) -> bool:
    """True in a kernel whose front end can show widgets (MLPACK_PROGRESS=text forces text)."""
    if os.environ.get("MLPACK_PROGRESS", "").lower() == "text":
        return False
    if shell is None or getattr(shell, "kernel", None) is None:
        return False  # terminal IPython or a plain script: nobody renders widgets
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def _display(obj: Any) -> None:
    from IPython.display import display

    display(obj)


# -- progress ----------------------------------------------------------------------
class ProgressView:
    """A progress sink that remembers where the pipeline is."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.states: dict[str, str] = {s: "pending" for s in STAGES}
        self.details: dict[str, str] = {}
        self.seconds: dict[str, float] = {}
        self.steps: dict[Any, BuildStepEvent] = {}
        self.logs: list[str] = []

    def __call__(self, event: Event) -> None:
        if isinstance(event, StageEvent):
            self.states[event.stage] = event.state
            if event.detail:
                self.details[event.stage] = event.detail
            if event.seconds is not None:
                self.seconds[event.stage] = event.seconds
        elif isinstance(event, BuildStepEvent):
            self.steps[event.step if event.step is not None else event.instruction] = event
            if event.output:
                self.logs.extend(event.output.splitlines()[-50:])
        elif isinstance(event, LogEvent):
            self.logs.append(event.text)
            del self.logs[:-200]  # keep the tail: a RUN step can print a lot
        self.update(event)

    def update(self, event: Event) -> None:  # pragma: no cover - overridden
        pass

    def failed(self, failure: "StageFailure") -> None:
        """Show the failure where the progress is."""

    def cache_summary(self) -> str:
        steps = list(self.steps.values())
        cached = sum(1 for s in steps if s.state == "cached")
        built = sum(s.size or 0 for s in steps if s.state == "done")
        return f"{len(steps)} steps, {cached} cached, {format_size(built)} new" if steps else ""


class TextProgress(ProgressView):
    """One line per stage change and per finished build step."""

    def __init__(self, title: str, stream: Any = None) -> None:
        super().__init__(title)
        self.sink = TextSink(stream=stream)
        print(f"mlpack: {title}", file=stream or sys.stdout, flush=True)

    def update(self, event: Event) -> None:
        self.sink(event)


class WidgetProgress(ProgressView):
    """A live panel: one row per stage, the build steps with sizes and cache hits."""

    def __init__(self, title: str) -> None:
        super().__init__(title)
        import ipywidgets as w

        self._w = w
        self.header = w.HTML(f"<b>mlpack</b>: {html.escape(title)}")
        self.rows = {s: w.HTML() for s in STAGES}
        self.step_box = w.HTML()
        self.log_box = w.Textarea(layout=w.Layout(width="100%", height="8em", display="none"),
                                  disabled=True)
        self.box = w.VBox([self.header, *self.rows.values(), self.step_box, self.log_box])
        for stage in STAGES:
            self._render_stage(stage)
        _display(self.box)

    def _render_stage(self, stage: str) -> None:
        state = self.states[stage]
        took = f" {self.seconds[stage]:.2f} s" if stage in self.seconds else ""
        detail = html.escape(short(self.details.get(stage, "")))
        self.rows[stage].value = (
            f"<span style='color:{_COLORS.get(state, '#000')};font-family:monospace'>"
            f"{_ICONS.get(state, '?')} {stage:<8}{took}</span> <small>{detail}</small>")

    def update(self, event: Event) -> None:
        if isinstance(event, StageEvent) and event.stage in self.rows:
            self._render_stage(event.stage)
        elif isinstance(event, BuildStepEvent):
            lines = []
            for step in self.steps.values():
                tag = {"cached": "<b style='color:#2e7d32'>CACHED</b>", "done": "done",
                       "failed": "<b style='color:#c62828'>FAILED</b>"}.get(step.state, "…")
                size = format_size(step.size) if step.size is not None else ""
                took = f"{step.seconds:.2f} s" if step.seconds is not None else ""
                lines.append(f"<tr><td>{step.step or ''}</td><td><code>{html.escape(step.instruction[:90])}"
                             f"</code></td><td>{tag}</td><td>{size}</td><td>{took}</td></tr>")
            self.step_box.value = (f"<small>{html.escape(self.cache_summary())}</small>"
                                   f"<table style='font-size:smaller'>{''.join(lines)}</table>")
        if self.logs and isinstance(event, (LogEvent, BuildStepEvent)):
            self.log_box.value = "\n".join(self.logs[-200:])
            self.log_box.layout.display = None

    def failed(self, failure: "StageFailure") -> None:
        text = "\n".join(failure.lines())
        self.log_box.value = text
        self.log_box.layout.display = None


def make_progress(title: str, shell: Any = None) -> ProgressView:
    """The widget panel where it can be seen, plain text otherwise."""
    if widgets_available(shell):
        try:
            return WidgetProgress(title)
        except Exception:  # a broken widget install must not break the pipeline
            pass
    return TextProgress(title)


# -- the running container -----------------------------------------------------------
def _as_dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return {k: getattr(value, k) for k in dir(value) if not k.startswith("_") and not callable(getattr(value, k))}


def _pick(stats: dict, *names: str) -> Any:
    return next((stats[n] for n in names if stats.get(n) is not None), None)


def status_lines(service: Any) -> list[str]:
    """URL, health, parity, CPU and memory against the limits, as text lines."""
    limits = service.limits
    lines = [f"service {service.name}: {service.url or 'not running'} ({service.health})"]
    if service.parity is not None:
        lines.append(f"  container parity {service.parity.summary()}")
    if service.container is not None:
        try:
            stats = _as_dict(service.stats())
        except Exception as exc:  # stats are a courtesy; a dead container says why elsewhere
            stats = {"error": str(exc)}
        cpu = _pick(stats, "cpu_percent", "cpu", "cpu_pct")
        mem = _pick(stats, "memory_usage", "memory", "mem_usage", "memory_bytes")
        mem_limit = _pick(stats, "memory_limit", "mem_limit") or limits.memory
        pids = _pick(stats, "pids", "pids_current")
        # cpu_percent is of one core; the limit is in cores: compare like with like.
        cpu_text = f"{float(cpu) / 100:.2f}" if isinstance(cpu, (int, float)) else "?"
        cpu_limit = f" / {limits.cpus:g} CPUs" if limits.cpus else " CPUs"
        mem_text = format_size(mem) if isinstance(mem, int) else "?"
        mem_lim = f" / {format_size(mem_limit)}" if isinstance(mem_limit, int) else ""
        pid_text = f", pids {pids}" + (f" / {limits.pids}" if limits.pids else "") if pids is not None else ""
        lines.append(f"  cpu {cpu_text}{cpu_limit}, memory {mem_text}{mem_lim}{pid_text}")
        if "error" in stats:
            lines.append(f"  stats unavailable: {stats['error']}")
    if service.timings:
        lines.append("  stages: " + ", ".join(f"{k} {v:.2f} s" for k, v in service.timings.items()))
    return lines


class StatusView:
    """The running container: endpoint, health, use against limits; Logs, Refresh, Stop.

    In a widget front end the panel refreshes itself every few seconds while
    the container runs (bounded in time); the text form prints once.
    """

    def __init__(self, service: Any, *, widgets: bool) -> None:
        self.service = service
        self.widgets = widgets
        self._stopped = threading.Event()
        if widgets:
            import ipywidgets as w

            self.info = w.HTML()
            self.logs_btn = w.Button(description="Logs", icon="list")
            self.refresh_btn = w.Button(description="Refresh", icon="refresh")
            self.stop_btn = w.Button(description="Stop", icon="stop", button_style="danger")
            self.out = w.Output()
            self.logs_btn.on_click(lambda _: self.show_logs())
            self.refresh_btn.on_click(lambda _: self.refresh())
            self.stop_btn.on_click(lambda _: self.stop())
            self.box = w.VBox([self.info, w.HBox([self.logs_btn, self.refresh_btn, self.stop_btn]), self.out])

    def html(self) -> str:
        lines = status_lines(self.service)
        url = self.service.url
        first = html.escape(lines[0])
        if url:
            first = first.replace(html.escape(url), f"<a href='{html.escape(url)}/docs' target='_blank'>"
                                                    f"{html.escape(url)}</a>")
        rest = "".join(f"<br><code>{html.escape(line.strip())}</code>" for line in lines[1:])
        return f"<b>{first}</b>{rest}"

    def refresh(self) -> None:
        if self.widgets:
            self.info.value = self.html()

    def show_logs(self, tail: int = 50) -> None:
        text = self.service.logs(tail=tail) if self.service.container is not None else "(stopped)"
        if self.widgets:
            # Set the outputs directly: works from a button callback with or without a kernel.
            self.out.outputs = ()
            self.out.append_stdout(text if text.endswith("\n") else text + "\n")
        else:
            print(text)

    def stop(self) -> None:
        self._stopped.set()
        self.service.stop()
        if self.widgets:
            self.stop_btn.disabled = True
            self.logs_btn.disabled = True
        self.refresh()

    def show(self, *, live: bool = True) -> None:
        if self.widgets:
            self.refresh()
            _display(self.box)
            if live:
                self.start_live()
        else:
            print("\n".join(status_lines(self.service)), flush=True)

    def start_live(self, interval: float = 3.0, duration: float = 900.0) -> threading.Thread:
        """Refresh the panel every ``interval`` s while the container runs, for at most ``duration`` s."""
        def loop() -> None:
            deadline = time.monotonic() + duration
            while not self._stopped.wait(interval) and time.monotonic() < deadline:
                if self.service.container is None:
                    break
                try:
                    self.refresh()
                except Exception:  # a panel that cannot refresh must never disturb the kernel
                    break
            try:
                self.refresh()  # the last word: stopped, or where it stood
            except Exception:
                pass

        thread = threading.Thread(target=loop, name=f"mlpack-status-{self.service.name}", daemon=True)
        thread.start()
        return thread


# -- failures ----------------------------------------------------------------------------
class StageFailure(Exception):
    """Raised by the magic so the cell fails, shown as a few lines, not a traceback.

    IPython calls ``_render_traceback_`` instead of formatting the stack.
    ``error`` is the original MlpackError, ``stage`` where the pipeline stopped.
    """

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.stage = getattr(error, "stage", None) or "mlpack"
        super().__init__("\n".join(failure_lines(error)))

    def lines(self) -> list[str]:
        return failure_lines(self.error)

    def _render_traceback_(self) -> list[str]:
        red, reset = "\x1b[31m", "\x1b[0m"
        first, *rest = self.lines()
        return [f"{red}{first}{reset}", *rest]
