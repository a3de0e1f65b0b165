"""Load test: minimal FastAPI+orjson baseline vs mlpack's server vs BentoML, same ONNX model,
with the ceiling of the HTTP stack itself and mlpack's gRPC service beside its HTTP.

    python bench/server/bench_server.py [--duration 3] [--rounds 1] [--out results.json]
        [--apps ceiling,baseline,mlpack] [--ref /path/to/another/checkout]

Needs ``wrk`` (apt-get install -y wrk). BentoML runs from its own venv
(default /tmp/bentovenv, made with ``python -m venv /tmp/bentovenv &&
/tmp/bentovenv/bin/pip install bentoml onnxruntime numpy``); without it that
column is skipped and says so. All servers listen on 127.0.0.1, run one
worker each and are started before the first cell, then the cells are
interleaved (every app at 1 connection, then every app at 8, ...) so that a
noisy neighbour on the machine hits all of them alike. Each cell is a bounded
wrk run; with --rounds N the median of N runs is reported.

``mlserver-grpc`` is MLServer 1.7's gRPC on the same model (its scikit-learn
runtime; from --mlserver-venv, made with ``python -m venv /tmp/mlservervenv &&
/tmp/mlservervenv/bin/pip install mlserver mlserver-sklearn``), loaded with
the same client as mlpack's gRPC. ``ceiling`` is a raw ASGI app on the same uvicorn + uvloop + httptools stack
that answers a fixed JSON document (ceiling_app.py): the most any app can do
here. ``mlpack-grpc`` and ``mlpack-pyhttp`` load the same mlpack process
through gRPC and through HTTP with the same kind of client (grpc_load.py,
Python closed loops: wrk speaks no gRPC), so their ratio compares the
protocols, not the clients. ``mlpack-h2load`` loads the same gRPC service
with nghttp2's h2load, a C client like wrk (``mlpack`` is HTTP through wrk),
when h2load is installed (apt-get install -y nghttp2-client). ``mlpack-v2``
is the same process's HTTP V2 infer (``/v2/models/iris/infer``, JSON) through
wrk: the Open Inference Protocol's HTTP twin of gRPC's ModelInfer, where
``mlpack`` is the simpler REST ``/predict``. mlpack's gRPC
is its own ASGI app on uvicorn's zttp HTTP/2 (mlpack/server/grpc/), not
grpcio's server; the server CPU time per call is reported for both.

``--apps`` picks the rows (default: all of them); ``--ref DIR`` adds a row
``mlpack-ref``, the same server run from another checkout of mlpack (say
``git worktree add /tmp/ref main``), measured in the same run, interleaved
with the rest: a before/after comparison that the machine's load cannot skew
(with ``mlpack-h2load`` in the rows, ``mlpack-ref-h2load`` loads its gRPC port too).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grpc_load import grpc_load, http_load  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PY = sys.executable


def capture_models(work: Path, hidden: tuple[int, ...]) -> dict[str, Path]:
    """The iris LogisticRegression and the 100-feature MLP (``hidden`` layers), captured with mlpack."""
    sys.path.insert(0, str(REPO))
    import mlpack.bundle as mb
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPRegressor

    out = {}
    iris = work / "iris"
    if not (iris / "mlpack.yaml").exists():
        x, y = load_iris(return_X_y=True)
        x = x.astype(np.float32)
        mb.capture(LogisticRegression(max_iter=500).fit(x, y), x[:8], name="iris", path=iris)
    out["iris"] = iris
    mlp = work / ("mlp100-" + "x".join(map(str, hidden)))
    if not (mlp / "mlpack.yaml").exists():
        rng = np.random.default_rng(0)
        x = rng.normal(size=(512, 100)).astype(np.float32)
        y = x @ rng.normal(size=100)
        model = MLPRegressor(hidden_layer_sizes=hidden, max_iter=5, random_state=0).fit(x, y)
        mb.capture(model, x[:8], name="mlp100", path=mlp)
    out["mlp100"] = mlp
    return out


def mlserver_repository(work: Path) -> Path:
    """The same iris LogisticRegression for MLServer's scikit-learn runtime (one process, no extra workers)."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    root = work / "mlserver"
    (root / "iris").mkdir(parents=True, exist_ok=True)
    x, y = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=500).fit(x.astype(np.float32), y), root / "iris" / "model.joblib")
    (root / "iris" / "model-settings.json").write_text(
        json.dumps({"name": "iris", "implementation": "mlserver_sklearn.SKLearnModel", "parameters": {"uri": "./model.joblib"}})
    )
    (root / "settings.json").write_text(json.dumps({"parallel_workers": 0, "metrics_endpoint": None, "debug": False}))
    return root


@dataclass
class Server:
    name: str
    cmd: list[str]
    body: bytes
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = REPO
    path: str = "/predict"
    port: int = 0
    grpc_port: int = 0
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(server: Server, logdir: Path) -> None:
    server.port = free_port()
    server.grpc_port = free_port()
    fill = lambda text: text.replace("{port}", str(server.port)).replace("{grpc_port}", str(server.grpc_port))  # noqa: E731
    cmd = [fill(c) for c in server.cmd]
    server.env = {k: fill(v) for k, v in server.env.items()}
    log = (logdir / f"{server.name}.log").open("wb")
    server.proc = subprocess.Popen(
        cmd, cwd=server.cwd, env={**os.environ, **server.env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def wait_answering(server: Server, timeout: float = 180) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc is not None and server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.proc.returncode}")
        try:
            req = urllib.request.Request(server.url, data=server.body, headers={"content-type": "application/json"})
            with urllib.request.urlopen(req, timeout=2) as r:
                if r.status == 200:
                    return r.read()
        except OSError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{server.name} did not answer within {timeout}s")


def stop(server: Server) -> None:
    if server.proc is None or server.proc.poll() is not None:
        return
    os.killpg(server.proc.pid, signal.SIGTERM)
    try:
        server.proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait(5)


def _tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process tree (all threads)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return total / tick


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MB."""
    total = 0
    for p in _tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


def client_threads(connections: int) -> int:
    """Threads of a C load client (wrk, h2load): the same for both protocols."""
    return 1 if connections < 32 else 2


def wrk(server: Server, connections: int, duration: int, script: Path, path: str | None = None) -> dict:
    threads = client_threads(connections)
    url = server.url if path is None else f"http://127.0.0.1:{server.port}{path}"
    proc = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{int(duration)}s", "--latency", "--timeout", "5s", "-s", str(script), url],
        capture_output=True,
        text=True,
        timeout=duration + 30,
    )
    out = proc.stdout
    if "Requests/sec" not in out:
        raise RuntimeError(f"wrk failed against {server.name}: {out[-500:]} {proc.stderr[-500:]}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {"rps": rps, "requests": requests, "p50_ms": p50, "p99_ms": p99, "non2xx": int(bad.group(1)) if bad else 0, "socket_errors": errors.group(0) if errors else ""}


GRPC_INFER = "/inference.GRPCInferenceService/ModelInfer"
APPS = ("ceiling", "baseline", "mlpack", "mlpack-v2", "bentoml", "mlserver", "mlpack-pyhttp", "mlpack-grpc", "mlpack-h2load", "mlserver-grpc",
        "mlp-unbatched", "mlp-batched")


def grpc_request(row: list[float]) -> bytes:
    """A ModelInferRequest for one iris row, the tensor in raw_input_contents (as tritonclient sends it)."""
    sys.path.insert(0, str(REPO))
    from mlpack.server.grpc.messages import message

    request = message("ModelInferRequest")(model_name="iris")
    request.inputs.add(name="input", datatype="FP32", shape=[1, len(row)])
    request.raw_input_contents.append(np.asarray([row], dtype=np.float32).tobytes())
    return request.SerializeToString()


def check_grpc(server: Server, body: bytes, labels: list[int]) -> None:
    """The gRPC answer must carry the same label as the HTTP ones."""
    import grpc

    from mlpack.server.grpc.messages import message

    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        answer = message("ModelInferResponse").FromString(channel.unary_unary(GRPC_INFER)(body, timeout=10))
    index = [o.name for o in answer.outputs].index("label")
    got = np.frombuffer(answer.raw_output_contents[index], dtype=np.int64).tolist()
    assert got == labels, f"mlpack over gRPC answered {got}, over HTTP {labels}"


# A connection is retired after this many calls (mlpack.server.grpc.h2.STREAMS_PER_CONNECTION);
# h2load does not follow a GOAWAY to a new connection, so it is given no more calls than that.
H2LOAD_CALLS_PER_CONNECTION = 3500


def h2load(server: Server, connections: int, body: bytes, duration: float) -> dict:
    """gRPC unary calls from nghttp2's h2load (C, like wrk): 4 connections (fewer below 4 calls
    in flight) with the rest as concurrent streams, as many threads as wrk gets for as many
    connections; runs of it back to back for ``duration`` seconds (one run makes at most
    H2LOAD_CALLS_PER_CONNECTION calls a connection). It reports a mean, not percentiles:
    p50_ms holds the mean, p99_ms is not measured (nan)."""
    conns = min(4, connections)
    framed = Path(tempfile.mkdtemp()) / "call.bin"
    framed.write_bytes(b"\x00" + len(body).to_bytes(4, "big") + body)
    ok = failed = 0
    seconds = weighted_ms = 0.0
    try:
        while seconds < duration:
            proc = subprocess.run(
                ["h2load", "-n", str(conns * H2LOAD_CALLS_PER_CONNECTION), "-c", str(conns), "-m", str(max(1, connections // conns)),
                 "-t", str(min(conns, client_threads(connections))),
                 "-d", str(framed), "-H", "content-type: application/grpc", "-H", "te: trailers",
                 f"http://127.0.0.1:{server.grpc_port}{GRPC_INFER}"],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            out = proc.stdout
            done = re.search(r"(\d+) succeeded, (\d+) failed", out)
            if done is None:
                raise RuntimeError(f"h2load failed against {server.name}: {out[-500:]} {proc.stderr[-500:]}")
            calls, rps = int(done.group(1)), float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))
            if not calls or not rps:
                raise RuntimeError(f"h2load made no call to {server.name}: {out[-500:]}")
            ok += calls
            failed += int(done.group(2))
            seconds += calls / rps
            weighted_ms += calls * _ms(re.search(r"time for request:\s+\S+\s+\S+\s+(\S+)", out).group(1))
    finally:
        shutil.rmtree(framed.parent, ignore_errors=True)
    return {"rps": ok / seconds, "requests": ok, "p50_ms": weighted_ms / max(1, ok), "p99_ms": float("nan"), "non2xx": failed}


V2_INFER = "/v2/models/iris/infer"
V2_BODY = json.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}).encode()


def measure(kind: str, server: Server, connections: int, duration: int, script: Path, grpc_body: bytes) -> dict:
    if kind == "wrk-v2":  # the protocol's HTTP infer, the same operation as gRPC's ModelInfer
        return wrk(server, connections, duration, script, V2_INFER)
    if kind == "h2load":
        return h2load(server, connections, grpc_body, duration)
    if kind == "grpc":
        return grpc_load(f"127.0.0.1:{server.grpc_port}", GRPC_INFER, grpc_body, connections, duration)
    if kind == "pyhttp":
        return http_load("127.0.0.1", server.port, "/predict", server.body, connections, duration)
    return wrk(server, connections, duration, script)


def lua(body: bytes, path: Path) -> Path:
    path.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body.decode())}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    return path


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=3, help="seconds per cell (whole seconds, as wrk takes them)")
    ap.add_argument("--rounds", type=int, default=1, help="runs per cell (median reported)")
    ap.add_argument("--connections", default="1,8,32")
    ap.add_argument("--batch-connections", type=int, default=64)
    ap.add_argument(
        "--mlp-hidden",
        default="1024,1024",
        help="hidden layers of the 100-feature MLP (one row: ~110 us in onnxruntime here, about half"
        " the HTTP cost of a request, so batching has something to save; with 256,256 (~20 us) HTTP"
        " dominates and batching can win at most ~10%%)",
    )
    ap.add_argument("--bento-venv", default="/tmp/bentovenv")
    ap.add_argument("--mlserver-venv", default="/tmp/mlservervenv")
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "mlpack-bench"))
    ap.add_argument("--out", help="write the results as JSON here")
    ap.add_argument(
        "--apps",
        default=",".join(APPS),
        help=f"rows to run, comma-separated (default: all of {', '.join(APPS)}; mlpack-ref comes with --ref)",
    )
    ap.add_argument("--ref", help="another checkout of mlpack: adds the row mlpack-ref, its server on the same model")
    args = ap.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    apps = set(args.apps.split(","))
    unknown = apps - set(APPS)
    if unknown:
        ap.error(f"unknown app {sorted(unknown)[0]!r}; choose from {', '.join(APPS)}")
    if args.ref:
        apps.add("mlpack-ref")
    if {"mlpack-pyhttp", "mlpack-grpc", "mlpack-h2load", "mlserver-grpc"} & apps:
        apps.add("mlpack")  # those cells load the mlpack (or mlserver) process
    if "mlserver-grpc" in apps:
        apps.add("mlserver")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    models = capture_models(work, tuple(int(h) for h in args.mlp_hidden.split(",")))
    iris_onnx = str(models["iris"] / "model.onnx")
    row = json.dumps({"inputs": [[5.1, 3.5, 1.4, 0.2]]}).encode()
    grpc_body = grpc_request([5.1, 3.5, 1.4, 0.2])
    mlp_row = json.dumps({"inputs": [np.round(np.random.default_rng(1).normal(size=100), 4).tolist()]}).encode()
    uvicorn_common = ["--host", "127.0.0.1", "--port", "{port}", "--no-access-log", "--log-level", "warning"]
    servers = [
        Server("ceiling", [PY, "-m", "uvicorn", "bench.server.ceiling_app:app", *uvicorn_common], row),
        Server("baseline", [PY, "-m", "uvicorn", "bench.server.baseline_app:app", *uvicorn_common], row, {"BASELINE_MODEL": iris_onnx}),
        Server(
            "mlpack",
            [PY, "-m", "mlpack.server", "--bundle", str(models["iris"]), "--host", "127.0.0.1", "--port", "{port}", "--grpc-port", "{grpc_port}"],
            row,
        ),
    ]
    if args.ref:
        ref = Path(args.ref).resolve()
        servers.append(
            Server(
                "mlpack-ref",
                [PY, "-m", "mlpack.server", "--bundle", str(models["iris"]), "--host", "127.0.0.1", "--port", "{port}", "--grpc-port", "{grpc_port}"],
                row,
                {"PYTHONPATH": str(ref)},
                cwd=ref,  # python -m puts the working directory first on sys.path
            )
        )
    bento = Path(args.bento_venv) / "bin" / "bentoml"
    notes = []
    if bento.exists():
        servers.append(
            Server(
                "bentoml",
                [str(bento), "serve", "bento_service:Model", "--host", "127.0.0.1", "--port", "{port}"],
                row,
                {"BASELINE_MODEL": iris_onnx, "BENTOML_DO_NOT_TRACK": "True"},
                cwd=HERE,
            )
        )
    else:
        notes.append(f"BentoML skipped: {bento} not found (see the module docstring to install it)")
    mlserver = Path(args.mlserver_venv) / "bin" / "mlserver"
    if mlserver.exists():
        v2_row = json.dumps({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}).encode()
        servers.append(
            Server(
                "mlserver",
                [str(mlserver), "start", str(mlserver_repository(work))],
                v2_row,
                {"MLSERVER_HOST": "127.0.0.1", "MLSERVER_HTTP_PORT": "{port}", "MLSERVER_GRPC_PORT": "{grpc_port}", "MLSERVER_METRICS_PORT": "0"},
                path="/v2/models/iris/infer",
            )
        )
    else:
        notes.append(f"MLServer skipped: {mlserver} not found (python -m venv {args.mlserver_venv} && {args.mlserver_venv}/bin/pip install mlserver mlserver-sklearn)")
    mlp = [
        Server("mlp-unbatched", [PY, "-m", "mlpack.server", "--bundle", str(models["mlp100"]), "--no-batching", "--host", "127.0.0.1", "--port", "{port}", "--grpc-port", "0"], mlp_row),
        Server("mlp-batched", [PY, "-m", "mlpack.server", "--bundle", str(models["mlp100"]), "--host", "127.0.0.1", "--port", "{port}", "--grpc-port", "0"], mlp_row),
    ]
    servers = [s for s in servers if s.name in apps or s.name == "baseline"]  # baseline: the reference answer
    mlp = [s for s in mlp if s.name in apps]
    logdir = work / "logs"
    logdir.mkdir(exist_ok=True)
    results: list[dict] = []
    load_before = loadavg()
    try:
        for s in servers + mlp:
            start(s, logdir)
        answers = {s.name: wait_answering(s) for s in servers + mlp}
        ref = json.loads(answers["baseline"])["outputs"]["label"]
        if "mlserver" in answers:
            assert json.loads(answers["mlserver"])["outputs"][0]["data"] == ref, "mlserver answered differently"
        for name in ("mlpack", "mlpack-ref", "bentoml"):
            if name in answers:
                assert json.loads(answers[name])["outputs"]["label"] == ref, f"{name} answered differently"
        if "mlpack-grpc" in apps:
            check_grpc(next(s for s in servers if s.name == "mlpack"), grpc_body, ref)
        scripts = {s.name: lua(s.body, work / f"{s.name}.lua") for s in servers + mlp}
        for s in servers + mlp:  # warm up: JITs, allocators, connection pools
            wrk(s, 8, 1, scripts[s.name])
        mlpack_server = next((s for s in servers if s.name == "mlpack"), None)
        cells = [(s, int(c), "wrk", s.name) for c in args.connections.split(",") for s in servers if s.name != "mlserver" and s.name in apps]
        if "mlpack-v2" in apps and mlpack_server is not None:
            scripts["mlpack-v2"] = lua(V2_BODY, work / "mlpack-v2.lua")
            cells += [(mlpack_server, int(c), "wrk-v2", "mlpack-v2") for c in args.connections.split(",")]
        cells += [
            (mlpack_server, int(c), kind, f"mlpack-{kind}")
            for c in args.connections.split(",") for kind in ("pyhttp", "grpc") if f"mlpack-{kind}" in apps
        ]
        if "mlpack-h2load" in apps:
            if shutil.which("h2load"):
                cells += [(mlpack_server, int(c), "h2load", "mlpack-h2load") for c in args.connections.split(",")]
                cells += [(s, int(c), "h2load", "mlpack-ref-h2load")
                          for c in args.connections.split(",") for s in servers if s.name == "mlpack-ref"]
            else:
                notes.append("mlpack-h2load skipped: h2load not found (apt-get install -y nghttp2-client)")
        cells += [(s, int(c), "grpc", "mlserver-grpc") for c in args.connections.split(",") for s in servers if s.name == "mlserver" and "mlserver-grpc" in apps]
        cells += [(s, args.batch_connections, "wrk", s.name) for s in mlp]
        for s, conns, kind, label in cells:
            runs = []
            for _ in range(args.rounds):
                cpu = tree_cpu_s(s.proc.pid)
                run = measure(kind, s, conns, args.duration, scripts.get(label, scripts[s.name]), grpc_body)
                run["cpu_us"] = (tree_cpu_s(s.proc.pid) - cpu) / max(1, run["requests"]) * 1e6
                runs.append(run)
            cell = {key: statistics.median(r[key] for r in runs) for key in ("rps", "p50_ms", "p99_ms", "cpu_us")}
            cell.update(app=label, connections=conns, non2xx=sum(r["non2xx"] for r in runs), rss_mb=tree_rss_mb(s.proc.pid))
            results.append(cell)
            print(f"  {label:14s} c={conns:<3d} {cell['rps']:9.0f} req/s  p50 {cell['p50_ms']:7.2f} ms  p99 {cell['p99_ms']:7.2f} ms  cpu {cell['cpu_us']:6.0f} us/req  rss {cell['rss_mb']:6.1f} MB", flush=True)
    finally:
        for s in servers + mlp:
            stop(s)
    load_after = loadavg()

    print(f"\nload average before {load_before}, after {load_after}; {os.cpu_count()} CPUs; {args.duration}s per cell, {args.rounds} round(s)")
    print("(CPU us/req: server CPU time, all its threads and processes, per answered request; it")
    print(" stays meaningful when other load on the machine distorts req/s and latencies)")
    print(f"{'app':17s} {'conns':>5s} {'req/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s} {'CPU us/req':>10s} {'non-2xx':>8s} {'RSS MB':>7s}")
    for r in results:
        print(
            f"{r['app']:17s} {r['connections']:5d} {r['rps']:9.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f}"
            f" {r['cpu_us']:10.0f} {r['non2xx']:8d} {r['rss_mb']:7.1f}"
        )
    by = {(r["app"], r["connections"]): r for r in results}
    top = max(int(c) for c in args.connections.split(","))
    summary = {}
    pairs = [
        ("mlpack", "ceiling", top),
        ("mlpack-ref", "ceiling", top),
        ("mlpack-ref", "baseline", top),
        ("mlpack", "mlpack-ref", top),
        ("mlpack", "baseline", top),
        ("mlpack", "bentoml", top),
        ("mlpack-grpc", "mlpack-pyhttp", top),
        ("mlpack-h2load", "mlpack", top),
        ("mlpack-h2load", "mlpack-v2", top),
        ("mlpack-h2load", "mlpack-ref-h2load", top),
        ("mlpack-grpc", "mlserver-grpc", top),
        ("mlp-batched", "mlp-unbatched", args.batch_connections),
    ]
    for a, b, conns in pairs:
        ra, rb = by.get((a, conns)), by.get((b, conns))
        if ra and rb:
            key = f"{a}/{b} at {conns} connections"
            summary[key] = {
                "throughput": ra["rps"] / rb["rps"],
                "cpu_per_request": rb["cpu_us"] / ra["cpu_us"],
                "p99": ra["p99_ms"] / rb["p99_ms"],
            }
            print(
                f"{key}: {ra['rps'] / rb['rps']:.2f}x req/s, {rb['cpu_us'] / ra['cpu_us']:.2f}x fewer CPU us per request,"
                f" p99 {ra['p99_ms']:.2f} vs {rb['p99_ms']:.2f} ms"
            )
    grpc_row, http_row = by.get(("mlpack-grpc", top)), by.get(("mlpack-pyhttp", top))
    if grpc_row and http_row:
        print(f"mlpack server CPU per call at {top} connections (same Python client): gRPC {grpc_row['cpu_us']:.0f} us,"
              f" HTTP {http_row['cpu_us']:.0f} us")
    if (mlpack_row := by.get(("mlpack", top))) is not None:
        print(f"mlpack resident memory with HTTP and gRPC on: {mlpack_row['rss_mb']:.1f} MB")
    for note in notes:
        print(note)
    if args.out:
        Path(args.out).write_text(json.dumps({"results": results, "summary": summary, "load": [load_before, load_after], "notes": notes}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
