"""``mlpack.serve``: the whole pipeline from a model in memory to a verified container.

capture -> (base image) -> render -> build -> run -> wait ready -> replay the
sample through ``POST /predict`` and compare with the kernel's own prediction
(the *container parity* check) -> optional push and Kubernetes export.

Every stage reports :mod:`mlpack.progress` events and a failure in any of them
surfaces as an :class:`~mlpack.errors.MlpackError` whose ``stage`` names the
pipeline stage, so front doors can say "stage build failed: ..." without a
traceback. The stage packages are imported lazily, when their stage runs.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlpack import parity as _parity
from mlpack.endpoint import predict_http, summarize_log, to_payload, wait_ready
from mlpack.errors import MlpackError, ServeError
from mlpack.progress import LogEvent, Sink, StageEvent, adapt_build_event
from mlpack.settings import Settings
from mlpack.types import DEFAULT_GRPC_PORT, DEFAULT_PORT, Limits

if TYPE_CHECKING:  # pragma: no cover
    from mlpack.bundle import Bundle
    from mlpack.dockerfile import BuildContext
    from mlpack.oci.image import Image
    from mlpack.runtime import Container

__all__ = ["ServeOptions", "Service", "Stages", "serve", "services", "predict_http", "to_payload", "summarize_log"]

# The ports mlpack-serve listens on inside the image; the gRPC one is published on a free port.
CONTAINER_PORT = DEFAULT_PORT
GRPC_CONTAINER_PORT = DEFAULT_GRPC_PORT


@dataclass(frozen=True)
class ServeOptions:
    """What ``mlpack.serve`` and ``%%containerize`` do, in one typed value."""

    name: str | None = None  # None: the model's class plus a short hash of its content
    cpus: float | None = 1.0
    memory: int | str | None = "1g"
    pids: int | None = 256
    gpus: int | str | None = None
    port: int | None = None  # host port on 127.0.0.1; None picks a free one
    base: str | None = None  # base image ref or "local"; None: choose_base (the store's registry base, else the offline one)
    push: str | None = None  # registry reference to push the image to
    k8s: str | Path | None = None  # directory for Kubernetes manifests
    run: bool = True  # False stops after build (and push / export)
    hooks_source: str | None = None  # preprocess/postprocess, shipped as hooks.py
    tag: str | None = None  # image tag; default mlpack/<name>:latest
    ready_timeout: float = 60.0
    replace: bool = True  # replace a service of the same name (blue/green); False refuses
    dynamic_axes: Any = None  # torch: {"input": [1]} or "input:1", axes whose length varies in use
    detach: bool = False  # keep serving after this process (script, kernel) exits
    # packages to add to the image: "name==version" / "name" specs, or a requirements file's path
    requirements: tuple[str, ...] | str | Path | None = None
    # how the lock gets into the image: "run" (a RUN step), "context" (installed by mlpack, no RUN),
    # "auto" (context only where RUN steps cannot run: no crun, namespaces refused)
    deps: str = "auto"

    def limits(self) -> Limits:
        return Limits(cpus=self.cpus, memory=self.memory, pids=self.pids, gpus=self.gpus)

    @property
    def image_tag(self) -> str:
        return self.tag or f"mlpack/{self.name}:latest"


class Service:
    """A model served from a running container, verified against the kernel.

    ``url``, ``predict(x)``, ``predict_all(x)``, ``logs()``, ``stats()``,
    ``health``, ``stop()``; usable as a context manager (stops on exit).
    ``parity`` is the container parity result, ``timings`` the seconds each
    stage took, ``first_prediction_s`` the time from the call to the first
    answer from the container.
    """

    def __init__(self, *, name: str, options: ServeOptions, bundle: Bundle, image: Image,
                 container: Any = None, parity: _parity.ParityResult | None = None,
                 timings: dict[str, float] | None = None, first_prediction_s: float | None = None,
                 pushed: str | None = None, k8s_dir: Path | None = None) -> None:
        self.name = name
        self.options = options
        self.bundle = bundle
        self.image = image
        self.container = container
        self.parity = parity
        self.timings = dict(timings or {})
        self.first_prediction_s = first_prediction_s
        self.first_prediction_at: float | None = None  # time.monotonic() of the first answer
        self.pushed = pushed
        self.k8s_dir = k8s_dir
        self.limits = options.limits()

    # -- the container ---------------------------------------------------
    @property
    def url(self) -> str | None:
        """``http://127.0.0.1:PORT`` of the serving port, None when not running."""
        if self.container is None:
            return None
        from mlpack.errors import ContainerNotFound

        try:
            self.container.state()  # a container removed meanwhile (replaced, `mlpack rm`) has none
            return self.container.url
        except ContainerNotFound:
            return None

    @property
    def grpc_url(self) -> str | None:
        """``127.0.0.1:PORT`` of the gRPC inference service (what gRPC clients take), None when not running."""
        if self.url is None:
            return None
        pick = next((p for p in self.container.ports if p["container_port"] == GRPC_CONTAINER_PORT), None)
        return f"127.0.0.1:{pick['host_port']}" if pick else None

    @property
    def health(self) -> str:
        """The HEALTHCHECK status (starting, healthy, unhealthy), else the container's status."""
        if self.container is None:
            return "not running"
        from mlpack.errors import ContainerNotFound

        try:
            health = str(self.container.health or self.container.status)
        except ContainerNotFound:
            return "removed"
        if health == "starting" and self.parity is not None and self.parity.passed:
            return "healthy"  # ready and verified; the HEALTHCHECK's first probe is only later
        return health

    def _require_running(self) -> Any:
        if self.container is None or self.url is None:
            raise ServeError(f"service {self.name!r} has no running container",
                             hint="serve it again without --no-run (run=False), or after stop()")
        return self.container

    def predict_all(self, x: Any, *, timeout: float = 30.0) -> dict[str, np.ndarray]:
        """All outputs by name, as numpy arrays, for the inputs ``x``."""
        self._require_running()
        return predict_http(self.url, to_payload(x), timeout=timeout)

    def predict(self, x: Any, *, timeout: float = 30.0) -> np.ndarray:
        """The first output (what ``model.predict`` returns: labels, values) for ``x``."""
        outputs = self.predict_all(x, timeout=timeout)
        return next(iter(outputs.values()))

    def logs(self, tail: int | None = None) -> str:
        """The container's stdout and stderr so far (the last ``tail`` lines when given)."""
        if self.container is None:
            raise ServeError(f"service {self.name!r} has no container (stopped, or --no-run)",
                             hint="logs of a stopped service are gone with its container")
        text = self.container.logs()
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        if tail is not None:
            text = "\n".join(str(text).splitlines()[-tail:])
        return str(text)

    def stats(self) -> Any:
        """CPU, memory and pids use of the container against its limits."""
        return self._require_running().stats()

    def stop(self) -> None:
        """Stop the container and remove it; the image stays in the store."""
        from mlpack.errors import ContainerNotFound

        _OWNED.pop(id(self), None)
        container, self.container = self.container, None
        if container is None:
            return
        try:
            try:
                container.stop()
            finally:
                container.remove(force=True)
        except ContainerNotFound:
            pass  # already removed (replaced by a newer run, or `mlpack rm`)

    def __enter__(self) -> "Service":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        verdict = "n/a" if self.parity is None else ("ok" if self.parity.passed else "FAILED")
        return f"<Service {self.name} url={self.url} health={self.health} parity={verdict}>"

    def _verdict(self) -> str:
        if self.parity is None:
            return "n/a"
        return self.parity.summary() if self.parity.passed else "FAILED: " + self.parity.summary()

    def _repr_html_(self) -> str:
        import html

        rows = [("url", self.url or "not running"), ("health", self.health), ("parity", self._verdict()),
                ("image", self.options.image_tag), ("limits", str(self.limits)),
                ("stops", "never (detached)" if self.options.detach else "when this kernel exits")]
        body = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                       for k, v in rows)
        return f"<table><caption>mlpack service <b>{html.escape(self.name)}</b></caption>{body}</table>"

    @classmethod
    def get(cls, name: str, *, settings: Settings | None = None) -> "Service":
        """The service called ``name`` that is running now, whoever started it (a notebook
        that reconnects finds its services again); ServeError when there is none."""
        from mlpack import runtime
        from mlpack.errors import ContainerNotFound

        settings = settings or Settings.from_env()
        try:
            container = runtime.get_container(settings, name)
        except ContainerNotFound:
            raise ServeError(f"there is no service called {name!r}",
                             hint="mlpack.services() lists the running ones") from None
        record = _read_record(settings, name)
        bundle = None
        try:
            from mlpack.bundle import Bundle

            bundle = Bundle.load(settings.home / "serve" / name / "bundle")
        except MlpackError:
            pass  # the bundle was removed or replaced: the container still serves
        options = ServeOptions(name=name, detach=True, tag=record.get("image"))
        return cls(name=name, options=options, bundle=bundle, image=record.get("image"), container=container)


def services(*, settings: Settings | None = None) -> list[Service]:
    """The services running now (started by ``mlpack.serve`` or ``%%containerize``)."""
    settings = settings or Settings.from_env()
    root = settings.home / "serve"
    found = []
    for record in sorted(root.glob("*/service.json")) if root.is_dir() else []:
        try:
            service = Service.get(record.parent.name, settings=settings)
        except ServeError:
            continue
        if service.url is not None and service.container.running():
            found.append(service)
    return found


# Services this process started without detach: stopped when it exits.
_OWNED: dict[int, Service] = {}
_ATEXIT: list[bool] = []


def _own(service: Service) -> None:
    if service.options.detach:
        return
    _OWNED[id(service)] = service
    if not _ATEXIT:
        import atexit

        atexit.register(_stop_owned)
        _ATEXIT.append(True)


def _stop_owned() -> None:
    for service in list(_OWNED.values()):
        try:
            service.stop()
        except Exception:  # exiting: stop the others anyway
            pass


def _record_path(settings: Settings, name: str) -> Path:
    return settings.home / "serve" / name / "service.json"


def _read_record(settings: Settings, name: str) -> dict[str, Any]:
    import json

    try:
        return json.loads(_record_path(settings, name).read_text())
    except (OSError, ValueError):
        return {}


def _write_record(settings: Settings, service: Service) -> None:
    import json
    import os

    path = _record_path(settings, service.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"name": service.name, "image": service.options.image_tag,
                               "detach": service.options.detach, "pid": os.getpid()}))
    tmp.replace(path)


# -- the pipeline ------------------------------------------------------------
class _Pipeline:
    """Runs the stages in order, timing each and naming it in any failure."""

    def __init__(self, progress: Sink | None) -> None:
        self.progress = progress
        self.timings: dict[str, float] = {}

    def emit(self, event: Any) -> None:
        if self.progress is not None:
            self.progress(event)

    def build_events(self, event: Any) -> None:
        adapted = adapt_build_event(event)
        if adapted is not None:
            self.emit(adapted)

    @contextmanager
    def stage(self, name: str, detail: str = "") -> Iterator[dict]:
        info = {"detail": detail}
        self.emit(StageEvent(name, "started", detail=detail))
        started = time.monotonic()
        try:
            yield info
        except MlpackError as exc:
            exc.stage = name  # the pipeline's name for where it failed
            self.emit(StageEvent(name, "failed", time.monotonic() - started, exc.message))
            raise
        except Exception as exc:
            self.emit(StageEvent(name, "failed", time.monotonic() - started, str(exc)))
            raise ServeError(f"{type(exc).__name__}: {exc}", stage=name,
                             hint="an unexpected error inside mlpack or the model; rerun with "
                                  "debug=True (%%containerize --debug) for the traceback") from exc
        self.timings[name] = time.monotonic() - started
        self.emit(StageEvent(name, "done", self.timings[name], info.get("detail", "")))

    def skip(self, name: str, why: str) -> None:
        self.emit(StageEvent(name, "skipped", detail=why))


def serve(model: Any, sample: Any, *, options: ServeOptions | None = None,
          settings: Settings | None = None, progress: Sink | None = None, stages: Stages | None = None,
          **kwargs: Any) -> Service:
    """Capture, render, build and run ``model``, then verify the container answers
    ``sample`` like the model does. Keyword arguments are :class:`ServeOptions` fields;
    ``stages`` replaces what the stages call (:class:`Stages`; tests of the orchestration)."""
    known = {f.name for f in fields(ServeOptions)}
    unknown = set(kwargs) - known
    if unknown:
        raise ServeError(f"unknown serve option(s): {', '.join(sorted(unknown))}",
                         hint=f"known options: {', '.join(sorted(known))}", stage="config")
    if options is None:
        options = ServeOptions(**kwargs)
    elif kwargs:
        options = replace(options, **kwargs)
    settings = settings or Settings.from_env()
    limits = options.limits()  # validate before any work
    if options.k8s and not options.push:
        # Manifests must name an image the cluster can pull, pinned by digest:
        # a name in the local store is neither, so say so before building.
        raise ServeError("Kubernetes export needs the image in a registry",
                         hint="add --push REGISTRY/REPO:TAG (push=... in Python); the manifests "
                              "then pin the pushed digest", stage="config")
    t0 = time.monotonic()
    pipe = _Pipeline(progress)
    stages = stages or Stages()

    with pipe.stage("capture") as info:
        named = options.name is not None
        bundle, name = stages.capture(model, sample, options, settings)
        options = replace(options, name=name)
        info["detail"] = f"{bundle.flavor}/{bundle.framework}" + ("" if named else f" as {name}")
    work = settings.home / "serve" / name

    base = stages.choose(bundle, options, settings)  # decided once (choose_base), passed down
    with pipe.stage("base", detail=base) as info:
        info["detail"] = stages.base(base, settings, pipe.emit)

    with pipe.stage("render"):
        context = stages.render(bundle, options, base, work / "context", settings, pipe.emit)

    with pipe.stage("build", detail=options.image_tag) as info:
        try:
            image = stages.build(context, tag=options.image_tag, settings=settings, progress=pipe.build_events)
        except MlpackError as exc:
            raise _explain_build(exc) from None
        info["detail"] = f"{options.image_tag} {str(image.digest)[:19]}"

    service = Service(name=name, options=options, bundle=bundle, image=image)
    if not options.run:
        for stage in ("run", "ready", "parity"):
            pipe.skip(stage, "--no-run")
        _ship(pipe, service, image, options, limits, settings)
        service.timings = pipe.timings
        return service

    with pipe.stage("run") as info:
        # Blue/green: a running service of this name keeps serving until the new
        # container is ready and verified; only then is it stopped.
        old = _running(name, settings, options, stages.find)
        run_name = name if old is None else f"{name}-next"
        _remove_named(run_name, settings, stages.find)  # a failed start of an earlier call, kept for its log
        port = None if old is not None and options.port else options.port  # the old one holds it
        service.container = stages.run(image, options, limits, settings, name=run_name, port=port)
        info["detail"] = str(service.url) + ("" if old is None else f" (beside the running {name})")
    try:
        with pipe.stage("ready"):
            wait_ready(service.container, timeout=options.ready_timeout)
        with pipe.stage("parity") as info:
            expected = stages.expect(model, sample, bundle, options.hooks_source)
            feeds = _parity.sample_feeds(bundle)
            actual = _ask(service, feeds)
            service.first_prediction_at = time.monotonic()
            service.first_prediction_s = service.first_prediction_at - t0
            service.parity = _parity.compare(expected, actual)
            info["detail"] = service.parity.summary()
            if not service.parity.passed:
                raise ServeError("the container does not answer like the model in the kernel: "
                                 + service.parity.summary(),
                                 hint="the container keeps running for inspection: "
                                      "service.logs(), then service.stop()"
                                      + ("" if old is None else f"; the previous {name} still serves"),
                                 parity=service.parity)
        if old is not None:
            with pipe.stage("swap", detail=f"{run_name} replaces {name}") as info:
                _swap(service, old, name, image, options, limits, settings, stages.run)
                info["detail"] = f"{service.url} serves {name}"
        # Only an image that answered like the kernel is pushed and exported.
        _ship(pipe, service, image, options, limits, settings)
    except MlpackError as exc:
        exc.service = service  # so a caller can still inspect or stop it
        if getattr(exc, "parity", None) is not None:
            pass  # answers differently: left running for inspection
        elif exc.stage == "ready":
            _quiet_halt(service)  # stopped, kept: its log stays readable (mlpack logs NAME)
        else:
            _quiet_stop(service)
        raise
    except BaseException:  # Ctrl-C in the notebook: leave no container behind
        _quiet_stop(service)
        raise
    service.timings = pipe.timings
    _write_record(settings, service)
    _own(service)
    return service


# What pip and uv say when the index has no such package or version.
_NOT_FOUND = (re.compile(r"No matching distribution found for ([^\s]+)"),
              re.compile(r"Because ([^\s]+) was not found in the package registry"),
              re.compile(r"Because there is no version of ([^\s]+)"))


def _explain_build(exc: MlpackError) -> MlpackError:
    """A build that failed because a locked package is nowhere to be found says which,
    instead of ending in the installer's dump."""
    output = str(getattr(exc, "output", "") or "") + "\n" + exc.message
    for pattern in _NOT_FOUND:
        match = pattern.search(output)
        if match:
            package = match.group(1).rstrip(".,:")
            from mlpack.errors import BuildError

            return BuildError(f"the image cannot install {package}: the package index has no such "
                              "package or version", package=package, output=getattr(exc, "output", None),
                              hint="check the name and the pin (requirements=[...], --pip); a package of "
                                   "your own must be installed from its directory (pip install -e DIR) "
                                   "so capture ships its wheel")
    return exc


def _ask(service: Service, feeds: dict[str, Any]) -> dict[str, Any]:
    """The container's raw answer for the sample; a failure carries the log's last lines
    (a hook's traceback is there)."""
    from mlpack.endpoint import log_tail

    try:
        return predict_http(service.url, to_payload(feeds if len(feeds) > 1 else next(iter(feeds.values()))),
                            raw=True)
    except ServeError as exc:
        tail = log_tail(service.container)
        raise ServeError(f"{exc.message}; the last lines of the container's log:\n{tail}" if tail else exc.message,
                         hint=exc.hint, status=getattr(exc, "status", None), logs=tail) from None


def _capture(model: Any, sample: Any, options: ServeOptions, settings: Settings) -> tuple[Any, str]:
    """The bundle under ``<home>/serve/<name>/bundle`` and the service's name: the one
    given, else the model's class plus the first 8 hex digits of the captured model's
    hash, so two different models never take each other's place by accident."""
    import tempfile

    from mlpack.bundle import Bundle, capture

    root = settings.home / "serve"
    if options.name:
        bundle_dir = root / options.name / "bundle"
        bundle_dir.parent.mkdir(parents=True, exist_ok=True)
        return capture(model, sample, name=options.name, path=bundle_dir, hooks_source=options.hooks_source,
                       requirements=options.requirements, dynamic_axes=options.dynamic_axes), options.name
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".capture-", dir=root))
    try:
        bundle = capture(model, sample, path=staging / "bundle", hooks_source=options.hooks_source,
                         requirements=options.requirements, dynamic_axes=options.dynamic_axes)
        name = f"{bundle.name[:54].rstrip('._-')}-{bundle.model_sha256[:8]}"
        target = root / name / "bundle"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        (staging / "bundle").rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Bundle.load(target), name


def _running(name: str, settings: Settings, options: ServeOptions, find: Callable[[Settings, str], Any]) -> Any:
    """The live container serving ``name``, None when there is none (an exited one is removed)."""
    from mlpack.errors import ContainerNotFound

    try:
        container = find(settings, name)
    except ContainerNotFound:
        return None
    if not container.running():
        container.remove(force=True)
        return None
    if not options.replace:
        raise ServeError(f"a service called {name!r} is running", stage="run",
                         hint="stop it first, pick another name, or pass replace=True")
    return container


def _swap(service: Service, old: Container, name: str, image: Image, options: ServeOptions, limits: Limits,
          settings: Settings, run: Callable[..., Any]) -> None:
    """The verified new container takes over ``name`` from ``old``."""
    from mlpack.errors import ContainerNotFound

    try:
        old.remove(force=True)
    except ContainerNotFound:
        pass
    if options.port:
        # The host port was the old container's: the verified image starts again on it.
        _quiet_stop(service)
        service.container = run(image, options, limits, settings, name=name, port=options.port)
        wait_ready(service.container, timeout=options.ready_timeout)
    else:
        service.container.rename(name)


def _ship(pipe: _Pipeline, service: Service, image: Image, options: ServeOptions, limits: Limits,
          settings: Settings) -> None:
    """Push and export, each when asked for."""
    if options.push:
        with pipe.stage("push", detail=options.push) as info:
            from mlpack.oci.registry import push

            service.pushed = push(image, options.push, settings=settings)
            info["detail"] = f"{options.push} {str(service.pushed)[:19]}"
    else:
        pipe.skip("push", "no --push")
    if options.k8s:
        with pipe.stage("export", detail=str(options.k8s)) as info:
            from mlpack.kube import export_k8s
            from mlpack.pipeline.export import image_info

            # The manifests pin the pushed digest when there is one, else name the local image.
            source = (image_info(image, reference=options.push, digest=service.pushed)
                      if service.pushed else image_info(image))
            started = pipe.timings.get("run", 0.0) + pipe.timings.get("ready", 0.0)
            if started:
                source = replace(source, start_seconds=started)  # measured start-to-ready
            service.k8s_dir = Path(options.k8s)
            export_k8s(source, limits, service.k8s_dir, None)
            info["detail"] = f"{service.k8s_dir} ({source.reference.familiar()})"
    else:
        pipe.skip("export", "no --k8s")


def _choose_base(bundle: Bundle, options: ServeOptions, settings: Settings) -> str:
    """Without a --base, the registry's base when the store has it, else the offline base
    (bootstrapped from Debian packages by the base stage: no registry needed)."""
    from mlpack.dockerfile import RenderOptions
    from mlpack.dockerfile.options import choose_base
    from mlpack.oci.layout import Store

    store = Store(settings.store_dir)
    python = RenderOptions().python_version(bundle.python_version)
    return choose_base(options.base, python, present=store.has)


def _render(bundle: Bundle, options: ServeOptions, base: str, out_dir: Path, settings: Settings,
            emit: Sink) -> BuildContext:
    """The build context, FROM ``base`` (in the store by now: RUN-free deps read its interpreter,
    a RUN install its platform for the wheels)."""
    from mlpack.builder.depsmode import choose_deps, render_for_build
    from mlpack.dockerfile import RenderOptions
    from mlpack.oci.layout import Store

    render_options = RenderOptions(base=base, port=CONTAINER_PORT)
    shutil.rmtree(out_dir, ignore_errors=True)
    say = lambda text: emit(LogEvent(text))  # noqa: E731
    deps = choose_deps(options.deps, settings, say)
    return render_for_build(bundle, render_options, settings, Store(settings.store_dir), deps=deps,
                            out_dir=out_dir, say=say)


def _ensure_base(base: str, settings: Settings, emit: Sink) -> str:
    """Make sure the base image is in the store: present, bootstrapped offline, or pulled.
    The offline base counts as present only when this mlpack's recipe made it (its trims
    change between versions): an older one is bootstrapped again."""
    from mlpack.errors import ImageNotFound
    from mlpack.oci.base import BASE_REF, bootstrap, current
    from mlpack.oci.layout import Store

    store = Store(settings.store_dir)
    if base == BASE_REF:
        if current(store) is not None:
            return f"{base} (in store)"
        # No registry needed: the local base is made from Debian packages, once per store and recipe.
        again = store.has(base)
        emit(LogEvent(f"bootstrapping {base} from Debian packages "
                      + ("again (the store's was made by an older recipe)" if again else "(once per store)")))
        bootstrap(settings, log=lambda line: emit(LogEvent(line, source="base")))
        return f"{base} (bootstrapped)"
    try:
        store.resolve(base)
        return f"{base} (in store)"
    except ImageNotFound:
        pass
    from mlpack.oci.registry import pull

    emit(LogEvent(f"pulling {base}"))
    pull(base, settings=settings)
    return f"{base} (pulled)"


def _remove_named(name: str, settings: Settings, find: Callable[[Settings, str], Any]) -> None:
    """Remove the container called ``name`` if there is one."""
    from mlpack.errors import ContainerNotFound

    try:
        find(settings, name).remove(force=True)
    except ContainerNotFound:
        pass


def _run(image: Image, options: ServeOptions, limits: Limits, settings: Settings, *, name: str,
         port: int | None) -> Container:
    from mlpack import runtime

    # container port -> host port (0: a free one); the gRPC service always on a free one
    ports = {CONTAINER_PORT: port or 0, GRPC_CONTAINER_PORT: 0}
    return runtime.run(image, limits=limits, ports=ports, name=name, settings=settings)


def _build(context: Any, *, tag: str, settings: Settings, progress: Callable[[Any], None]) -> Any:
    from mlpack.builder import BuildOptions, build

    return build(context, BuildOptions(tag=tag), settings=settings, progress=progress)


def _find(settings: Settings, name: str) -> Any:
    """The container called ``name``; ContainerNotFound when there is none."""
    from mlpack import runtime

    return runtime.get_container(settings, name)


def _quiet_halt(service: Service) -> None:
    """Stop a failed container but keep it (and its log) until ``mlpack rm``."""
    try:
        service.container.stop()
    except Exception:  # already failing; the first error is the one to show
        pass


def _quiet_stop(service: Service) -> None:
    try:
        service.stop()
    except Exception:  # already failing; the first error is the one to show
        pass


@dataclass(frozen=True)
class Stages:
    """What :func:`serve` calls for each stage: its seams. The defaults are the real stage
    packages; a unit test of the orchestration passes fakes (no export, build or container)."""

    capture: Callable[[Any, Any, ServeOptions, Settings], tuple[Any, str]] = _capture  # -> (bundle, name)
    choose: Callable[[Any, ServeOptions, Settings], str] = _choose_base  # -> the base image reference
    base: Callable[[str, Settings, Sink], str] = _ensure_base  # -> what was done, for the progress line
    render: Callable[[Any, ServeOptions, str, Path, Settings, Sink], Any] = _render  # -> BuildContext
    build: Callable[..., Any] = _build  # (context, *, tag, settings, progress) -> image
    find: Callable[[Settings, str], Any] = _find  # -> container; ContainerNotFound
    run: Callable[..., Any] = _run  # (image, options, limits, settings, *, name, port) -> container
    expect: Callable[[Any, Any, Any, str | None], dict[str, Any]] = _parity.kernel_outputs  # the kernel's answer
