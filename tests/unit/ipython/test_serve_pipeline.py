"""serve()'s orchestration with fake stages at its seams (:class:`mlpack.service.Stages`).

No model export, no image build, no container: each fake "container" is a
real HTTP server on 127.0.0.1 that answers readiness and ``/predict`` the way
mlpack-serve does, so the real ``wait_ready``, payload encoding and parity
comparison run against it. What is checked is the pipeline's logic: the order
of the stages, what each one is handed, blue/green replacement, and what is
left behind when a stage fails. The real end-to-end runs are in
tests/integration/notebook/.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from mlpack.builder import events as be
from mlpack.errors import BuildError, ContainerNotFound, RunError, ServeError
from mlpack.progress import BuildStepEvent, Event, StageEvent
from mlpack.service import ServeOptions, Service, Stages, serve
from mlpack.settings import Settings
from mlpack.types import Limits

SAMPLE = np.array([[5.1, 3.5], [6.7, 3.0]], dtype=np.float32)
LABELS = np.array([0, 2])


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path == "/v2/health/ready":
            self._answer(200 if self.server.ready else 503, {"ready": self.server.ready})
        else:
            self._answer(404, {"error": "not found"})

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(body)
        self._answer(200, {"outputs": self.server.answer})

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    def __init__(self, answer: dict, ready: bool) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answer, self.ready, self.requests = answer, ready, []
        self.thread = threading.Thread(target=self.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join()


@dataclass
class FakeContainer:
    """What serve() and Service use of a runtime container, over a real local HTTP server."""

    name: str
    server: _Server
    runtime: "FakeRuntime"
    status: str = "running"
    removed: bool = False
    exit_code: int | None = None
    oom_killed: bool = False
    health: str | None = None
    ports: list = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def state(self) -> str:
        if self.removed:
            raise ContainerNotFound(f"no container {self.name}")
        return self.status

    def running(self) -> bool:
        return not self.removed and self.status == "running"

    def stop(self) -> None:
        self.runtime.log.append(("stop", self.name))
        self.status = "exited"

    def remove(self, force: bool = False) -> None:
        self.runtime.log.append(("remove", self.name))
        self.removed = True
        self.runtime.containers.pop(self.name, None)

    def rename(self, name: str) -> None:
        self.runtime.log.append(("rename", self.name, name))
        self.runtime.containers.pop(self.name, None)
        self.name = name
        self.runtime.containers[name] = self

    def logs(self) -> str:
        return f"log of {self.name}: starting\nModuleNotFoundError: No module named 'sklearn'\n"


@dataclass
class FakeRuntime:
    """The run seam: containers by name, and a log of everything done to them."""

    answer: dict = field(default_factory=lambda: {"label": LABELS.tolist()})
    ready: bool = True
    exits: bool = False  # a started container exits at once (the server never gets ready)
    containers: dict[str, FakeContainer] = field(default_factory=dict)
    log: list[tuple] = field(default_factory=list)
    servers: list[_Server] = field(default_factory=list)

    def find(self, settings: Settings, name: str) -> FakeContainer:
        if name not in self.containers:
            raise ContainerNotFound(f"no container {name}")
        return self.containers[name]

    def run(self, image: Any, options: ServeOptions, limits: Limits, settings: Settings, *, name: str,
            port: int | None) -> FakeContainer:
        beside = sorted(n for n, c in self.containers.items() if c.running())
        self.log.append(("run", name, port, image, limits, tuple(beside)))
        server = _Server(self.answer, self.ready and not self.exits)
        self.servers.append(server)
        container = FakeContainer(name, server, self, status="exited" if self.exits else "running",
                                  exit_code=1 if self.exits else None)
        self.containers[name] = container
        return container


@dataclass
class FakeStages:
    """Fakes of capture, render, base, build and the kernel's answer, recording their calls."""

    runtime: FakeRuntime
    calls: list[tuple] = field(default_factory=list)
    build_error: BaseException | None = None
    expect_error: BaseException | None = None

    def stages(self) -> Stages:
        return Stages(capture=self.capture, choose=self.choose, render=self.render, base=self.base, build=self.build,
                      find=self.runtime.find, run=self.runtime.run, expect=self.expect)

    def capture(self, model: Any, sample: Any, options: ServeOptions, settings: Settings) -> tuple[Any, str]:
        self.calls.append(("capture", model, sample, options.name))
        return Bundle(), options.name or "fitted-1234abcd"

    def choose(self, bundle: Any, options: ServeOptions, settings: Settings) -> str:
        return options.base or "localhost/mlpack/python:3.11"

    def render(self, bundle: Any, options: ServeOptions, base: str, out_dir: Path, settings: Settings,
               emit: Any) -> Any:
        self.calls.append(("render", bundle, out_dir))
        return Context(out_dir, base)

    def base(self, base: str, settings: Settings, emit: Any) -> str:
        self.calls.append(("base", base))
        return f"{base} (in store)"

    def build(self, context: Any, *, tag: str, settings: Settings, progress: Any) -> Any:
        self.calls.append(("build", context, tag))
        progress(be.StepDone(step=1, total=1, instruction="COPY model /app", size=2048, seconds=0.1))
        if self.build_error is not None:
            raise self.build_error
        return Image(f"sha256:{len(self.calls):064x}")

    def expect(self, model: Any, sample: Any, bundle: Any, hooks_source: str | None) -> dict[str, Any]:
        self.calls.append(("expect", model, bundle, hooks_source))
        if self.expect_error is not None:
            raise self.expect_error
        return {"label": LABELS}


@dataclass(frozen=True)
class Bundle:
    flavor: str = "onnx"
    framework: str = "sklearn"

    def sample(self) -> dict[str, np.ndarray]:
        return {"input": SAMPLE}


@dataclass(frozen=True)
class Context:
    path: Path
    base_image: str = "localhost/mlpack/python:3.11"


@dataclass(frozen=True)
class Image:
    digest: str


MODEL = object()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env({"MLPACK_HOME": str(tmp_path / "home")})


@pytest.fixture
def runtime() -> Iterator[FakeRuntime]:
    runtime = FakeRuntime()
    yield runtime
    for server in runtime.servers:
        server.close()


def _serve(fakes: FakeStages, settings: Settings, events: list[Event] | None = None, **options: Any) -> Service:
    options.setdefault("detach", True)  # nothing registered to stop at exit
    sink = events.append if events is not None else None
    return serve(MODEL, SAMPLE, settings=settings, progress=sink, stages=fakes.stages(), **options)


def _states(events: list[Event]) -> list[tuple[str, str]]:
    return [(e.stage, e.state) for e in events if isinstance(e, StageEvent)]


def test_stages_run_in_order_each_handed_what_the_one_before_made(runtime: FakeRuntime, settings: Settings) -> None:
    fakes, events = FakeStages(runtime), []
    service = _serve(fakes, settings, events, name="iris", cpus=0.5, memory="256Mi", pids=64)

    stages = [s for s, state in _states(events) if state != "started"]
    assert stages == ["capture", "base", "render", "build", "run", "ready", "parity", "push", "export"]
    assert all(state == "done" for s, state in _states(events) if s not in ("push", "export") and state != "started")
    assert ("push", "skipped") in _states(events) and ("export", "skipped") in _states(events)
    # capture gets the model and sample; base the chosen base; render the captured bundle; build the context
    (_, model, sample, name), (_, base), (_, bundle, out_dir), (_, context, tag), (_, kmodel, kbundle, hooks) = fakes.calls
    assert model is MODEL and sample is SAMPLE and name == "iris"
    assert bundle == Bundle() and out_dir == settings.home / "serve" / "iris" / "context"
    assert base == "localhost/mlpack/python:3.11" and context == Context(out_dir) and tag == "mlpack/iris:latest"
    assert kmodel is MODEL and kbundle == bundle and hooks is None
    # the builder's typed events reach the progress sink translated
    assert BuildStepEvent(1, 1, "COPY model /app", "done", size=2048, seconds=0.1) in events
    # run gets the built image and the limits; nothing else was running
    [(what, run_name, port, image, limits, beside)] = runtime.log
    assert (what, run_name, port, beside) == ("run", "iris", None, ())
    assert image == service.image and limits == Limits(cpus=0.5, memory="256Mi", pids=64)
    # the container was asked the bundle's sample and answered like the kernel
    assert runtime.servers[0].requests == [{"inputs": SAMPLE.tolist()}]
    assert service.parity is not None and service.parity.passed and service.url == runtime.containers["iris"].url
    assert set(service.timings) >= {"capture", "render", "base", "build", "run", "ready", "parity"}
    assert json.loads((settings.home / "serve" / "iris" / "service.json").read_text())["image"] == "mlpack/iris:latest"


def test_a_second_serve_replaces_the_first_only_once_the_new_one_is_verified(
        runtime: FakeRuntime, settings: Settings) -> None:
    first = _serve(FakeStages(runtime), settings, name="iris")
    runtime.log.clear()
    events: list[Event] = []
    second = _serve(FakeStages(runtime), settings, events, name="iris")

    # the new container starts beside the running one, under another name, and takes over its name
    assert runtime.log[0][:3] == ("run", "iris-next", None) and runtime.log[0][5] == ("iris",)
    assert runtime.log[1:] == [("remove", "iris"), ("rename", "iris-next", "iris")]
    assert ("swap", "done") in _states(events)
    assert _states(events).index(("swap", "started")) > _states(events).index(("parity", "done"))
    assert first.url is None and second.container.name == "iris" and second.url == runtime.containers["iris"].url


def test_replacing_a_service_on_a_fixed_port_restarts_the_verified_image_there(
        runtime: FakeRuntime, settings: Settings) -> None:
    _serve(FakeStages(runtime), settings, name="iris", port=18080)
    runtime.log.clear()
    second = _serve(FakeStages(runtime), settings, name="iris", port=18080)
    # the old container holds the port: the candidate runs on a free one, then again on the port
    assert [entry[:3] for entry in runtime.log if entry[0] == "run"] == [("run", "iris-next", None), ("run", "iris", 18080)]
    assert ("remove", "iris") in runtime.log and ("remove", "iris-next") in runtime.log
    assert second.container.name == "iris" and not second.container.removed


def test_replace_false_refuses_and_leaves_the_running_service(runtime: FakeRuntime, settings: Settings) -> None:
    first = _serve(FakeStages(runtime), settings, name="iris")
    with pytest.raises(ServeError, match="a service called 'iris' is running") as info:
        _serve(FakeStages(runtime), settings, name="iris", replace=False)
    assert info.value.stage == "run" and first.url is not None
    assert [entry[0] for entry in runtime.log] == ["run"]


def test_a_failed_build_stops_the_pipeline_before_run(runtime: FakeRuntime, settings: Settings) -> None:
    events: list[Event] = []
    fakes = FakeStages(runtime, build_error=BuildError("RUN exited 1", exit_code=1, output="boom"))
    with pytest.raises(BuildError) as info:
        _serve(fakes, settings, events, name="iris")
    assert info.value.stage == "build" and runtime.log == []
    assert _states(events)[-1] == ("build", "failed") and [c[0] for c in fakes.calls][-1] == "build"

    fakes = FakeStages(runtime, build_error=RuntimeError("a bug"))
    with pytest.raises(ServeError, match="RuntimeError: a bug") as info:
        _serve(fakes, settings, name="iris")
    assert info.value.stage == "build" and "debug=True" in info.value.hint


def test_a_container_that_exits_before_ready_is_stopped_and_kept_for_its_log(settings: Settings) -> None:
    runtime = FakeRuntime(exits=True)
    try:
        with pytest.raises(RunError, match="exited with status 1 before it was ready") as info:
            _serve(FakeStages(runtime), settings, name="iris")
        err = info.value
        assert err.stage == "ready" and "No module named 'sklearn'" in err.message
        container = runtime.containers["iris"]
        assert ("stop", "iris") in runtime.log and not container.removed  # `mlpack logs iris` still works
        assert err.service.container is container
    finally:
        for server in runtime.servers:
            server.close()


def test_a_container_that_answers_differently_is_left_running_and_the_old_one_still_serves(
        runtime: FakeRuntime, settings: Settings) -> None:
    first = _serve(FakeStages(runtime), settings, name="iris")
    runtime.answer = {"label": [0, 1]}  # the next container disagrees with the kernel on row 2
    runtime.log.clear()
    with pytest.raises(ServeError, match="does not answer like the model") as info:
        _serve(FakeStages(runtime), settings, name="iris")
    err = info.value
    assert err.stage == "parity" and not err.parity.passed and "the previous iris still serves" in err.hint
    assert [entry[0] for entry in runtime.log] == ["run"]  # nothing stopped, removed or renamed
    assert err.service.url == runtime.containers["iris-next"].url and first.url == runtime.containers["iris"].url


def test_an_interrupt_removes_the_new_container(runtime: FakeRuntime, settings: Settings) -> None:
    fakes = FakeStages(runtime, expect_error=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        _serve(fakes, settings, name="iris")
    assert runtime.log[1:] == [("stop", "iris"), ("remove", "iris")] and runtime.containers == {}


def test_no_run_builds_and_skips_the_container_stages(runtime: FakeRuntime, settings: Settings) -> None:
    events: list[Event] = []
    service = _serve(FakeStages(runtime), settings, events, name="iris", run=False)
    assert runtime.log == [] and service.container is None and service.image is not None
    assert [s for s, state in _states(events) if state == "skipped"] == ["run", "ready", "parity", "push", "export"]
