"""Builder events become pipeline events; text and widget views show the same facts."""

from __future__ import annotations

import io

from mlpack.builder import events as be
from mlpack.errors import BuildError, RunError
from mlpack.ipython.display import StageFailure, TextProgress, WidgetProgress, failure_lines
from mlpack.progress import BuildStepEvent, LogEvent, StageEvent, TextSink, adapt_build_event, format_size


def test_builder_events_are_adapted_by_type() -> None:
    cached = adapt_build_event(be.StepCached(step=3, total=9, instruction="COPY requirements.lock /app/", size=2048))
    assert cached == BuildStepEvent(3, 9, "COPY requirements.lock /app/", "cached", size=2048)
    done = adapt_build_event(be.StepDone(step=9, total=9, instruction="COPY model /b", size=5120, seconds=0.12))
    assert (done.state, done.size, done.seconds) == ("done", 5120, 0.12)
    started = adapt_build_event(be.StepStarted(step=1, total=9, instruction="FROM x"))
    assert started.state == "started"
    out = adapt_build_event(be.StepOutput(step=4, output="Collecting numpy\n"))
    assert out == LogEvent("Collecting numpy", source="build")
    assert adapt_build_event(be.BuildDone(digest="sha256:ab", tag="t", seconds=1.0)) is None
    assert adapt_build_event(be.StageStarted(stage_name="deps", base="b", index=0)) is None
    assert adapt_build_event(be.StepOutput(step=4, output="")) is None
    warning = adapt_build_event(be.BuildWarning(line=3, message="FROM deps: pulling it from a registry"))
    assert warning == LogEvent("warning: line 3: FROM deps: pulling it from a registry")
    staged = adapt_build_event(be.StepDone(step=2, total=5, instruction="RUN x", size=None, seconds=1.5,
                                           stage_name="deps"))
    assert staged == BuildStepEvent(2, 5, "RUN x", "done", size=None, seconds=1.5, stage_name="deps")
    assert adapt_build_event(staged) is staged  # pipeline events pass through


def test_text_sink_prints_stage_and_finished_steps_only() -> None:
    stream = io.StringIO()
    sink = TextSink(stream=stream)
    sink(StageEvent("build", "started"))
    sink(BuildStepEvent(1, 2, "RUN pip install", "started"))
    sink(BuildStepEvent(1, 2, "RUN pip install", "cached", size=3 * 1024**2))
    sink(BuildStepEvent(2, 2, "COPY model.onnx", "done", size=1536, seconds=0.05))
    sink(StageEvent("build", "done", 0.4, "mlpack/clf:latest"))
    text = stream.getvalue().splitlines()
    assert text[0] == "[build] started"
    assert "step 1/2 RUN pip install  CACHED 3.0 MiB" in text[1]
    assert "step 2/2 COPY model.onnx  done 1.5 KiB 0.05 s" in text[2]
    assert text[3] == "[build] done (0.40 s): mlpack/clf:latest"
    assert len(text) == 4


def test_format_size() -> None:
    assert format_size(None) == "-" and format_size(12) == "12 B" and format_size(1536) == "1.5 KiB"


def test_widget_progress_tracks_stages_steps_and_cache_hits() -> None:
    view = WidgetProgress("containerizing clf")
    view(StageEvent("capture", "started"))
    view(StageEvent("capture", "done", 0.3, "onnx/sklearn"))
    view(BuildStepEvent(1, 2, "RUN pip install -r requirements.lock", "cached", size=40 * 1024**2))
    view(BuildStepEvent(2, 2, "COPY bundle /opt/bundle", "done", size=2048, seconds=0.1))
    assert "✔" in view.rows["capture"].value and "onnx/sklearn" in view.rows["capture"].value
    assert "·" in view.rows["build"].value  # not started yet
    assert "CACHED" in view.step_box.value and "40.0 MiB" in view.step_box.value
    assert "2 steps, 1 cached, 2.0 KiB new" in view.step_box.value
    view(StageEvent("build", "failed", 1.0, "RUN failed"))
    assert "✖" in view.rows["build"].value
    view.failed(StageFailure(BuildError("RUN exited 1", step="RUN false", exit_code=1, output="boom\n", stage="build")))
    assert "stage build failed: RUN exited 1" in view.log_box.value and "boom" in view.log_box.value


def test_text_progress() -> None:
    stream = io.StringIO()
    view = TextProgress("containerizing clf", stream=stream)
    view(StageEvent("render", "done", 0.01))
    assert "mlpack: containerizing clf" in stream.getvalue() and "[render] done" in stream.getvalue()


def test_failure_names_stage_hint_step_and_output() -> None:
    err = BuildError("RUN step 4 exited with status 1", hint="fix the requirement", step="RUN pip install x",
                     exit_code=1, output="\n".join(f"line {i}" for i in range(100)))
    lines = failure_lines(err)
    assert lines[0] == "stage build failed: RUN step 4 exited with status 1"
    assert "  hint: fix the requirement" in lines and "  exit code: 1" in lines
    assert lines[-1] == "    line 99" and "    line 69" not in lines  # only the tail
    run = RunError("not ready", stage="ready")
    assert failure_lines(run)[0] == "stage ready failed: not ready"
    other = failure_lines(KeyError("x"))
    assert other[0] == "stage mlpack failed: KeyError: 'x'"
    rendered = StageFailure(err)._render_traceback_()
    assert "stage build failed" in rendered[0] and len(rendered) < 40  # no stack trace


def test_widgets_only_where_a_kernel_can_show_them(monkeypatch) -> None:
    from IPython.testing.globalipapp import get_ipython

    from mlpack.ipython.display import TextProgress, make_progress, widgets_available

    class KernelShell:  # what ipykernel's shell looks like to the check: it has a kernel
        kernel = object()

    monkeypatch.delenv("MLPACK_PROGRESS", raising=False)
    assert widgets_available(KernelShell()) is True
    assert widgets_available(get_ipython()) is False  # terminal IPython: plain text
    assert widgets_available(None) is False  # a script
    assert isinstance(make_progress("x", get_ipython()), TextProgress)
    monkeypatch.setenv("MLPACK_PROGRESS", "text")
    assert widgets_available(KernelShell()) is False
