"""Prometheus metrics in a few dozen lines: counters, a gauge, histograms, text exposition.

Small own code instead of prometheus_client: the server needs four metric
kinds, and recording must cost well under a microsecond per request because
it sits on every request's path. Single event loop per worker, so no locks
(the model thread only records through the loop).
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass
from typing import Iterable

__all__ = ["Histogram", "Metrics", "CONTENT_TYPE", "OPENMETRICS_TYPE", "InferStatistics", "INFER_ENDPOINTS", "exposition"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: tuple[str, ...], values: tuple[str, ...], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _num(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


class Histogram:
    """A Prometheus histogram keyed by label values."""

    def __init__(self, name: str, help: str, labels: tuple[str, ...], buckets: Iterable[float]) -> None:
        self.name, self.help, self.labels = name, help, labels
        self.buckets = tuple(buckets)
        self._series: dict[tuple[str, ...], list] = {}

    def series(self, *labels: str) -> list:
        """The ``[bucket counts, sum, count]`` list of one label set (made on first use), for callers that keep it."""
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = [[0] * (len(self.buckets) + 1), 0.0, 0]
        return series

    def observe(self, value: float, *labels: str) -> None:
        series = self._series.get(labels) or self.series(*labels)
        series[0][bisect.bisect_left(self.buckets, value)] += 1
        series[1] += value
        series[2] += 1

    def count(self, *labels: str) -> int:
        series = self._series.get(labels)
        return series[2] if series else 0

    def expose(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for values, (counts, total, n) in sorted(self._series.items()):
            running = 0
            for bound, c in zip(self.buckets + (float("inf"),), counts):
                running += c
                le = 'le="' + _num(bound) + '"'
                lines.append(f"{self.name}_bucket{_labels(self.labels, values, le)} {running}")
            lines.append(f"{self.name}_sum{_labels(self.labels, values)} {_num(total)}")
            lines.append(f"{self.name}_count{_labels(self.labels, values)} {n}")
        return lines


# Endpoints whose requests are inferences (the statistics count them); the gRPC
# method is recorded under its path with method "GRPC" and the status code's name.
INFER_ENDPOINTS = frozenset(
    {
        "/predict",
        "/v2/models/{model_name}/infer",
        "/v2/models/{model_name}/versions/{model_version}/infer",
        "/inference.GRPCInferenceService/ModelInfer",
    }
)
_OK = frozenset({"200", "OK"})


@dataclass(frozen=True)
class InferStatistics:
    """Inference counters summed over both transports (Triton's statistics read them)."""

    ok: int
    ok_seconds: float
    failed: int
    failed_seconds: float
    runs: int
    run_seconds: float
    rows: int
    last_inference_ms: float


class Metrics:
    """Every metric the server exports, recorded by the middleware and the model runner.

    Recording sits on every request's path, so :meth:`request_done` finds the
    request counter and the latency series of an (endpoint, method, status)
    in one dict lookup and :meth:`model_run` keeps its three series at hand.
    """

    def __init__(self) -> None:
        # (endpoint, method, status as given) -> [count, latency series]
        self._cells: dict[tuple[str, str, object], list] = {}
        self.in_flight = 0
        self.ready = 0
        self.load_seconds = 0.0
        self.latency = Histogram(
            "mlpack_request_duration_seconds", "Time from request start to response end.", ("endpoint", "status"), LATENCY_BUCKETS
        )
        self.inference = Histogram(
            "mlpack_inference_duration_seconds", "Time of one model run (one micro-batch).", (), LATENCY_BUCKETS
        )
        self.batch = Histogram("mlpack_batch_size", "Rows per model run.", (), BATCH_BUCKETS)
        self.batch_requests = Histogram("mlpack_batch_requests", "Requests merged into one model run.", (), BATCH_BUCKETS)
        self.last_run = 0.0  # wall-clock time of the last model run
        self._runs = (self.inference.series(), self.batch.series(), self.batch_requests.series())

    @property
    def requests(self) -> dict[tuple[str, str, str], int]:
        """Requests so far by (endpoint, method, status text)."""
        out: dict[tuple[str, str, str], int] = {}
        for (endpoint, method, status), (n, _) in self._cells.items():
            key = (endpoint, method, str(status))
            out[key] = out.get(key, 0) + n
        return out

    def request_done(self, endpoint: str, method: str, status: int | str, seconds: float) -> None:
        cell = self._cells.get((endpoint, method, status))
        if cell is None:
            cell = self._cells[(endpoint, method, status)] = [0, self.latency.series(endpoint, str(status))]
        cell[0] += 1
        series = cell[1]
        series[0][bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        series[1] += seconds
        series[2] += 1

    def model_run(self, seconds: float, rows: int, requests: int) -> None:
        self.last_run = time.time()
        run, batch, merged = self._runs
        run[0][bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        run[1] += seconds
        run[2] += 1
        batch[0][bisect.bisect_left(BATCH_BUCKETS, rows)] += 1
        batch[1] += rows
        batch[2] += 1
        merged[0][bisect.bisect_left(BATCH_BUCKETS, requests)] += 1
        merged[1] += requests
        merged[2] += 1

    def infer_statistics(self) -> InferStatistics:
        """Inference requests (ok and failed, with their time), model runs and rows so far."""
        ok = failed = 0
        ok_s = failed_s = 0.0
        for (endpoint, status), (_, total, n) in self.latency._series.items():
            if endpoint in INFER_ENDPOINTS:
                if status in _OK:
                    ok, ok_s = ok + n, ok_s + total
                else:
                    failed, failed_s = failed + n, failed_s + total
        runs = self.inference._series.get((), [None, 0.0, 0])
        rows = self.batch._series.get((), [None, 0.0, 0])
        return InferStatistics(ok, ok_s, failed, failed_s, runs[2], runs[1], int(rows[1]), self.last_run * 1000.0)

    def expose(self, *, openmetrics: bool = False) -> bytes:
        """The Prometheus text exposition (format 0.0.4), or OpenMetrics 1.0.0.

        The two differ where it matters to parsers: OpenMetrics names a counter's
        family without ``_total`` and ends with ``# EOF``.
        """
        family = "mlpack_requests" if openmetrics else "mlpack_requests_total"
        lines = [
            f"# HELP {family} Requests by endpoint, method and status (gRPC: method GRPC, status the code's name).",
            f"# TYPE {family} counter",
        ]
        for (endpoint, method, code), n in sorted(self.requests.items()):
            lines.append(f"mlpack_requests_total{_labels(('endpoint', 'method', 'status'), (endpoint, method, code))} {n}")
        lines += [
            "# HELP mlpack_requests_in_flight Requests being handled now.",
            "# TYPE mlpack_requests_in_flight gauge",
            f"mlpack_requests_in_flight {self.in_flight}",
            "# HELP mlpack_model_ready 1 once the model is loaded and serving.",
            "# TYPE mlpack_model_ready gauge",
            f"mlpack_model_ready {self.ready}",
            "# HELP mlpack_model_load_seconds Time it took to load the bundle and the model.",
            "# TYPE mlpack_model_load_seconds gauge",
            f"mlpack_model_load_seconds {_num(self.load_seconds)}",
        ]
        for hist in (self.latency, self.inference, self.batch, self.batch_requests):
            lines += hist.expose()
        if openmetrics:
            lines.append("# EOF")
        return ("\n".join(lines) + "\n").encode()


def exposition(metrics: Metrics, accept: str) -> tuple[bytes, str]:
    """The body and content type ``accept`` asks for: OpenMetrics when named, else Prometheus text."""
    if "application/openmetrics-text" in accept:
        return metrics.expose(openmetrics=True), OPENMETRICS_TYPE
    return metrics.expose(), CONTENT_TYPE
