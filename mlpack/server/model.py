"""The loaded model as the HTTP layer sees it: specs, hooks, and one ``infer`` coroutine.

Loading goes through ``Bundle.load`` (hash verification) and
``Bundle.load_predictor`` (the one code path that runs a model, ONNX or
python flavour), so the server runs exactly what capture checked.
"""

from __future__ import annotations

import asyncio
import importlib.util
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import numpy as np

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


def load_hooks(path: str | Path | None) -> ModuleType | None:
    """Import a bundle's hooks.py as a private module (never via sys.path)."""
    if path is None or not Path(path).is_file():
        return None
    name = "mlpack_bundle_hooks"
    spec = importlib.util.spec_from_file_location(name, str(path))
    if spec is None or spec.loader is None:  # pragma: no cover - a .py file always has a loader
        raise ServeError(f"cannot import hooks from {path}", hint="hooks.py must be a Python source file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ServeError(
            f"importing the bundle's hooks.py failed: {type(exc).__name__}: {exc}",
            hint="fix hooks.py in the bundle (it may only import what the image installs)",
        ) from exc
    return module


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
        hooks: ModuleType | None = None,
        sample: dict[str, np.ndarray] | None = None,
        flavor: str = "onnx",
        table: Any = None,
    ) -> None:
        self.predictor = predictor
        self.inputs = inputs
        self.outputs = outputs
        self.name = name
        self.flavor = flavor
        self.table = table  # the bundle's TableSchema (table or text model), else None
        self.sample = sample or {}
        self.metrics = metrics
        self._pre: Callable | None = getattr(hooks, "preprocess", None)
        self._post: Callable | None = getattr(hooks, "postprocess", None)
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
                in_flight=lambda: metrics.in_flight,
                on_run=metrics.model_run,
            )
        self.inline = False
        self.warm_seconds = float("inf")
        self.threads: int | None = None

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
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
        if self._pre is not None:
            feeds = _call_hook(self._pre, feeds, "preprocess")
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
        if self._post is not None:
            outputs = self._post(outputs)
            if not isinstance(outputs, dict):
                raise TypeError(f"hooks.postprocess must return a dict, returned {type(outputs).__name__}")
        return outputs

    def close(self) -> None:
        self._executor.shutdown(wait=True)


def _rows(feeds: dict[str, np.ndarray]) -> int:
    for arr in feeds.values():
        return int(arr.shape[0]) if getattr(arr, "ndim", 0) else 1
    return 0


def _call_hook(fn: Callable, feeds: dict[str, np.ndarray], name: str) -> dict[str, np.ndarray]:
    try:
        out = fn(feeds)
    except (ValueError, TypeError) as exc:
        # A hook that validates its input says so with ValueError: that is the client's fault.
        raise invalid(f"{name} rejected the input: {exc}") from None
    if not isinstance(out, dict):
        raise TypeError(f"hooks.{name} must return a dict, returned {type(out).__name__}")
    return out


def load_runner(bundle_or_path: Any, *, config: ServerConfig, metrics: Metrics, threads: int) -> ModelRunner:
    """Load a bundle (path or loaded Bundle), its predictor and hooks; warm the model up."""
    bundle = bundle_or_path
    if isinstance(bundle_or_path, (str, Path)):
        from mlpack.bundle import Bundle  # the bundle package imports numpy/yaml only

        bundle = Bundle.load(bundle_or_path)
    predictor = bundle.load_predictor(threads=threads)
    runner = _runner(bundle, predictor, config=config, metrics=metrics)
    runner.warm_up()
    if runner.warm_seconds < SINGLE_THREAD_BELOW_S and threads > 1 and runner.flavor == "onnx":
        # onnxruntime's intra-op threads spin between runs: for a model that
        # answers in well under a millisecond they burn the container's CPU
        # quota (measured here: 900 instead of 340 CPU us per request for a
        # 100-1024-1024 MLP) and the parallelism saves next to nothing.
        runner.close()
        runner = _runner(bundle, bundle.load_predictor(threads=1), config=config, metrics=metrics)
        runner.warm_up()
        threads = 1
    runner.threads = threads
    return runner


def _runner(bundle: Any, predictor: Any, *, config: ServerConfig, metrics: Metrics) -> ModelRunner:
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
    )


def _sample(bundle: Any) -> dict[str, np.ndarray]:
    try:
        sample = bundle.sample()
    except Exception:  # noqa: BLE001 - a bundle without sample.npz still serves
        return {}
    return {k: np.asarray(v) for k, v in (sample or {}).items()}

