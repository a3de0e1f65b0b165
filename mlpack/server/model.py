"""The loaded model as the HTTP layer sees it: specs, hooks, and one ``infer`` coroutine.

Loading goes through ``Bundle.load`` (hash verification) and
``Bundle.load_predictor`` (the one code path that runs a model, ONNX or
python flavour), so the server runs exactly what capture checked.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mlpack.bundle.hooks import HookFailed, Hooks, load_file
from mlpack.errors import ServeError
from mlpack.server.batcher import MicroBatcher
from mlpack.server.config import ServerConfig
from mlpack.server.metrics import Metrics
from mlpack.server.tensors import Spec, invalid

__all__ = ["ModelRunner", "load_hooks", "load_runner"]

# Below this time per single-row run the model runs on the event loop itself:
# handing a 10 µs call to a thread costs more than it saves.
INLINE_BELOW_S = 0.0002
# Below this, one intra-op thread (see load_runner).
SINGLE_THREAD_BELOW_S = 0.001


def load_hooks(path: str | Path | None) -> Hooks:
    """A bundle's hooks.py, through the one hooks contract (mlpack.bundle.hooks)."""
    return load_file(path, ServeError)


class ModelRunner:
    """Runs requests through preprocess -> (micro-batched) model -> postprocess."""

    def __init__(
        self,
        predictor: Any,
        inputs: list[Spec],
        outputs: list[Spec],
        *,
        name: str,
        config: ServerConfig,
        metrics: Metrics,
        hooks: Hooks | None = None,
        sample: dict[str, np.ndarray] | None = None,
        flavor: str = "onnx",
        table: Any = None,
        in_flight: Callable[[], int] | None = None,
    ) -> None:
        self.predictor = predictor
        self.inputs = inputs
        self.outputs = outputs
        self.name = name
        self.flavor = flavor
        self.table = table  # the bundle's TableSchema (table or text model), else None
        self.sample = sample or {}
        self.metrics = metrics
        self.hooks = hooks or Hooks()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlpack-model")
        self.batchable = bool(inputs) and all(len(s.shape) >= 1 and s.shape[0] is None for s in inputs) and all(
            len(s.shape) >= 1 and s.shape[0] is None for s in outputs
        )
        self.batcher: MicroBatcher | None = None
        if config.batching and self.batchable and config.max_batch_size > 1:
            self.batcher = MicroBatcher(
                self._run,
                self._executor,
                max_rows=config.max_batch_size,
                max_wait_s=config.max_batch_wait_ms / 1000.0,
                in_flight=in_flight or (lambda: metrics.in_flight),
                on_run=metrics.model_run,
            )
        self.inline = False
        self.warm_seconds = float("inf")
        self.threads: int | None = None

        self._session_run = _session_runner(predictor) if self.hooks.preprocess is None else None

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._session_run is not None:
            return self._session_run(feeds)
        return self.predictor.run(feeds)

    def warm_up(self) -> float:
        """Run the sample's first row once; pick inline or threaded execution; returns seconds."""
        if not self.sample:
            return self.warm_seconds
        feeds = {k: np.asarray(v)[:1] if self.batchable else np.asarray(v) for k, v in self.sample.items()}
        self._run(feeds)  # the first run allocates
        seconds = float("inf")
        for _ in range(5):  # the best of a few: a busy neighbour must not decide this
            start = time.perf_counter()
            self._run(feeds)
            seconds = min(seconds, time.perf_counter() - start)
        self.warm_seconds = seconds
        self.inline = seconds < INLINE_BELOW_S
        if self.batcher is not None:
            self.batcher.inline = self.inline
        return seconds

    async def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, Any]:
        """Outputs by name for validated ``feeds``; ServeError(422) for hook rejections."""
        hooks = self.hooks
        if hooks.preprocess is not None:
            feeds = _hook(hooks.before, feeds)
        if self.batcher is not None:
            outputs = await self.batcher.submit(feeds)
        elif self.inline:
            start = time.perf_counter()
            outputs = self._run(feeds)
            self.metrics.model_run(time.perf_counter() - start, _rows(feeds), 1)
        else:
            loop = asyncio.get_running_loop()
            start = time.perf_counter()
            outputs = await loop.run_in_executor(self._executor, self._run, feeds)
            self.metrics.model_run(time.perf_counter() - start, _rows(feeds), 1)
        if hooks.postprocess is not None:
            outputs = _hook(hooks.after, outputs)
        return outputs

    def close(self) -> None:
        self._executor.shutdown(wait=True)


def _session_runner(predictor: Any) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None:
    """``predictor.run`` without its feed check, for an onnxruntime predictor (else None).

    The check (names, dtypes, shapes) is the one :func:`mlpack.server.tensors.coerce`
    already made, more strictly, on every feed the server builds; without a
    preprocess hook nothing changes the feeds in between, so a second pass
    would only cost time (about a third of a small model's run). onnxruntime's
    own failures still become the predictor's ServeError.
    """
    from mlpack.bundle.predictor import OnnxPredictor  # noqa: PLC0415 - numpy only

    if type(predictor) is not OnnxPredictor:
        return None
    run = predictor.session.run
    names = [o.name for o in predictor.outputs]
    ndarray = np.ndarray

    def session_run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            values = run(names, feeds)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own untyped errors
            raise ServeError(f"the model failed on this input: {exc}", hint="check the input values", status=400) from None
        return {name: v if type(v) is ndarray else np.asarray(v) for name, v in zip(names, values)}

    return session_run


def _rows(feeds: dict[str, np.ndarray]) -> int:
    for arr in feeds.values():
        return int(arr.shape[0]) if getattr(arr, "ndim", 0) else 1
    return 0


def _hook(step: Callable[[dict], dict], value: dict) -> dict:
    """One side of the hooks contract: a rejection is the client's (422), any other
    failure the bundle's (500, with the hook's own message and its traceback kept)."""
    try:
        return step(value)
    except HookFailed as exc:
        if exc.rejected:
            raise invalid(f"{exc.name} rejected the input: {exc.error}") from None
        raise ServeError(str(exc), status=500, hook=exc.name, traceback=exc.traceback,
                         hint="the bundle's hooks.py failed; its traceback is in the server log") from None


def load_runner(
    bundle_or_path: Any, *, config: ServerConfig, metrics: Metrics, threads: int, in_flight: Callable[[], int] | None = None
) -> ModelRunner:
    """Load a bundle (path or loaded Bundle), its predictor and hooks; warm the model up.

    ``in_flight`` counts the requests in the server, for the micro-batcher
    (default: the middleware's in-flight count).
    """
    bundle = bundle_or_path
    if isinstance(bundle_or_path, (str, Path)):
        from mlpack.bundle import Bundle  # the bundle package imports numpy/yaml only

        bundle = Bundle.load(bundle_or_path)
    predictor = bundle.load_predictor(threads=threads)
    runner = _runner(bundle, predictor, config=config, metrics=metrics, in_flight=in_flight)
    runner.warm_up()
    if runner.warm_seconds < SINGLE_THREAD_BELOW_S and threads > 1 and runner.flavor == "onnx":
        # onnxruntime's intra-op threads spin between runs: for a model that
        # answers in well under a millisecond they burn the container's CPU
        # quota (measured here: 900 instead of 340 CPU us per request for a
        # 100-1024-1024 MLP) and the parallelism saves next to nothing.
        runner.close()
        runner = _runner(bundle, bundle.load_predictor(threads=1), config=config, metrics=metrics, in_flight=in_flight)
        runner.warm_up()
        threads = 1
    runner.threads = threads
    return runner


def _runner(
    bundle: Any, predictor: Any, *, config: ServerConfig, metrics: Metrics, in_flight: Callable[[], int] | None
) -> ModelRunner:
    return ModelRunner(
        predictor,
        [Spec.of(s) for s in bundle.inputs],
        [Spec.of(s) for s in bundle.outputs],
        name=config.model_name or str(bundle.name),
        config=config,
        metrics=metrics,
        hooks=load_hooks(getattr(bundle, "hooks_path", None)),
        sample=_sample(bundle),
        flavor=str(getattr(bundle, "flavor", "onnx")),
        table=getattr(bundle, "table", None),
        in_flight=in_flight,
    )


def _sample(bundle: Any) -> dict[str, np.ndarray]:
    try:
        sample = bundle.sample()
    except Exception:  # noqa: BLE001 - a bundle without sample.npz still serves
        return {}
    return {k: np.asarray(v) for k, v in (sample or {}).items()}

