"""``mlpack.serve``: the whole pipeline from a model in memory to a verified container.

capture -> render -> (base image) -> build -> run -> wait ready -> replay the
sample through ``POST /predict`` and compare with the kernel's own prediction
(the *container parity* check) -> optional push and Kubernetes export.

Every stage reports :mod:`mlpack.progress` events and a failure in any of them
surfaces as an :class:`~mlpack.errors.MlpackError` whose ``stage`` names the
pipeline stage, so front doors can say "stage build failed: ..." without a
traceback. The stage packages are imported lazily, when their stage runs.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from mlpack import parity as _parity
from mlpack.endpoint import predict_http, summarize_log, to_payload, wait_ready
from mlpack.errors import MlpackError, ServeError
from mlpack.progress import LogEvent, Sink, StageEvent, adapt_build_event
from mlpack.settings import Settings
from mlpack.types import Limits

__all__ = ["ServeOptions", "Service", "serve", "DEFAULT_BASE", "predict_http", "to_payload", "summarize_log"]

DEFAULT_BASE = "localhost/mlpack/python:3.11"
# The port mlpack-serve listens on inside the image.
CONTAINER_PORT = 8080
GRPC_CONTAINER_PORT = 8081  # its gRPC inference service, published on a free port


@dataclass(frozen=True)
class ServeOptions:
    """What ``mlpack.serve`` and ``%%containerize`` do, in one typed value."""

    name: str = "model"
    cpus: float | None = 1.0
    memory: int | str | None = "1g"
    pids: int | None = 256
    gpus: int | str | None = None
    port: int | None = None  # host port on 127.0.0.1; None picks a free one
    base: str | None = None  # base image ref; None = "local" (bootstrapped offline)
    push: str | None = None  # registry reference to push the image to
    k8s: str | Path | None = None  # directory for Kubernetes manifests
    run: bool = True  # False stops after build (and push / export)
    hooks_source: str | None = None  # preprocess/postprocess, shipped as hooks.py
    tag: str | None = None  # image tag; default mlpack/<name>:latest
    ready_timeout: float = 60.0
    replace: bool = True  # stop and remove a container of the same name first

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

    def __init__(self, *, name: str, options: ServeOptions, bundle: Any, image: Any,
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
            return str(self.container.health or self.container.status)
        except ContainerNotFound:
            return "removed"

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
          settings: Settings | None = None, progress: Sink | None = None,
          **kwargs: Any) -> Service:
    """Capture, render, build and run ``model``, then verify the container answers
    ``sample`` like the model does. Keyword arguments are :class:`ServeOptions` fields."""
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
    # The container this one replaces is removed while the image builds.
    replacing = _Background(_remove_named, options.name, settings) if options.run and options.replace else None
    work = settings.home / "serve" / options.name

    with pipe.stage("capture") as info:
        from mlpack.bundle import capture
        bundle_dir = work / "bundle"
        shutil.rmtree(bundle_dir, ignore_errors=True)
        bundle_dir.parent.mkdir(parents=True, exist_ok=True)
        bundle = capture(model, sample, name=options.name, path=bundle_dir,
                         hooks_source=options.hooks_source)
        info["detail"] = f"{bundle.flavor}/{bundle.framework}"

    with pipe.stage("render"):
        context = _render(bundle, options, work / "context")
    base = getattr(context, "base_image", None) or options.base or DEFAULT_BASE

    with pipe.stage("base", detail=str(base)) as info:
        info["detail"] = _ensure_base(str(base), settings, pipe)

    with pipe.stage("build", detail=options.image_tag) as info:
        from mlpack.builder import build
        image = build(context, tag=options.image_tag, settings=settings, progress=pipe.build_events)
        info["detail"] = f"{options.image_tag} {str(getattr(image, 'digest', ''))[:19]}"

    service = Service(name=options.name, options=options, bundle=bundle, image=image)
    if not options.run:
        for name in ("run", "ready", "parity"):
            pipe.skip(name, "--no-run")
        _ship(pipe, service, image, options, limits, settings)
        service.timings = pipe.timings
        return service

    with pipe.stage("run") as info:
        if replacing is not None:
            replacing.join()
        service.container = _run(image, options, limits, settings)
        info["detail"] = str(service.url)
    try:
        with pipe.stage("ready"):
            wait_ready(service.container, timeout=options.ready_timeout)
        with pipe.stage("parity") as info:
            expected = _parity.kernel_outputs(model, sample, bundle, options.hooks_source)
            feeds = _parity.sample_feeds(bundle)
            actual = predict_http(service.url, to_payload(feeds if len(feeds) > 1 else next(iter(feeds.values()))))
            service.first_prediction_at = time.monotonic()
            service.first_prediction_s = service.first_prediction_at - t0
            service.parity = _parity.compare(expected, actual)
            info["detail"] = service.parity.summary()
            if not service.parity.passed:
                raise ServeError("the container does not answer like the model in the kernel: "
                                 + service.parity.summary(),
                                 hint="the container keeps running for inspection: "
                                      "service.logs(), then service.stop()",
                                 parity=service.parity)
        # Only an image that answered like the kernel is pushed and exported.
        _ship(pipe, service, image, options, limits, settings)
    except MlpackError as exc:
        exc.service = service  # so a caller can still inspect or stop it
        if not isinstance(exc, ServeError) or getattr(exc, "parity", None) is None:
            _quiet_stop(service)
        raise
    except BaseException:  # Ctrl-C in the notebook: leave no container behind
        _quiet_stop(service)
        raise
    service.timings = pipe.timings
    return service


def _ship(pipe: _Pipeline, service: Service, image: Any, options: ServeOptions, limits: Limits,
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
            from mlpack.cli.export import image_info
            from mlpack.kube import export_k8s

            # The manifests pin the pushed digest when there is one, else name the local image.
            source = (image_info(image, reference=options.push, digest=service.pushed)
                      if service.pushed else image_info(image))
            started = pipe.timings.get("run", 0.0) + pipe.timings.get("ready", 0.0)
            if started:
                source = replace(source, start_seconds=started)  # measured start-to-ready
            service.k8s_dir = Path(options.k8s)
            export_k8s(source, limits, service.k8s_dir, None)
            info["detail"] = f"{service.k8s_dir} ({source.reference})"
    else:
        pipe.skip("export", "no --k8s")


def _render(bundle: Any, options: ServeOptions, out_dir: Path) -> Any:
    from mlpack.dockerfile import RenderOptions, render

    # "local" is the base bootstrapped from Debian packages: it needs no registry.
    render_options = RenderOptions(base=options.base or "local", port=CONTAINER_PORT)
    shutil.rmtree(out_dir, ignore_errors=True)
    return render(bundle, render_options, out_dir=out_dir)


def _ensure_base(base: str, settings: Settings, pipe: _Pipeline) -> str:
    """Make sure the base image is in the store: present, bootstrapped offline, or pulled."""
    from mlpack.errors import ImageNotFound
    from mlpack.oci.layout import Store

    try:
        Store(settings.store_dir).resolve(base)
        return f"{base} (in store)"
    except ImageNotFound:
        pass
    from mlpack.oci.base import BASE_REF, bootstrap

    if base == BASE_REF:
        # No registry needed: the local base is made from Debian packages, once per store.
        pipe.emit(LogEvent(f"bootstrapping {base} from Debian packages (once per store)"))
        bootstrap(settings, log=lambda line: pipe.emit(LogEvent(line, source="base")))
        return f"{base} (bootstrapped)"
    from mlpack.oci.registry import pull

    pipe.emit(LogEvent(f"pulling {base}"))
    pull(base, settings=settings)
    return f"{base} (pulled)"


def _remove_named(name: str, settings: Settings) -> None:
    """Remove the container called ``name`` if there is one (re-running a cell replaces it)."""
    from mlpack import runtime
    from mlpack.errors import ContainerNotFound

    try:
        runtime.get_container(settings, name).remove(force=True)
    except ContainerNotFound:
        pass


class _Background:
    """One function on a thread; ``join()`` re-raises what it raised."""

    def __init__(self, fn: Any, *args: Any) -> None:
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._call, args=(fn, *args), daemon=True)
        self.thread.start()

    def _call(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except BaseException as exc:  # handed to join()
            self.error = exc

    def join(self) -> None:
        self.thread.join()
        if self.error is not None:
            raise self.error


def _run(image: Any, options: ServeOptions, limits: Limits, settings: Settings) -> Any:
    from mlpack import runtime

    ports = {CONTAINER_PORT: options.port or 0, GRPC_CONTAINER_PORT: 0}  # container port -> host port (0: a free one)
    return runtime.run(image, limits=limits, ports=ports, name=options.name, settings=settings)


def _quiet_stop(service: Service) -> None:
    try:
        service.stop()
    except Exception:  # already failing; the first error is the one to show
        pass
