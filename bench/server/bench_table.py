"""Load test: a table model next to the iris model, same server, same wrk cells.

    python bench/server/bench_table.py [--duration 3] [--rounds 1] [--connections 32]

Three mlpack servers (one uvicorn worker each, defaults): ``iris`` (the
tensor LogisticRegression of bench_server.py, one row ``[[...4 floats]]``),
``table-onnx`` (a ColumnTransformer of OneHotEncoder + StandardScaler +
passthrough into a LogisticRegression on a mixed-dtype DataFrame, converted
to ONNX with one input per column, asked with one record), and
``table-python`` (LightGBM on a pandas category column, the python flavour:
the server rebuilds the DataFrame for every batch), and ``text-onnx``
(TfidfVectorizer + LogisticRegression on free text with string labels,
ONNX with one string input, asked with one sentence). Reuses bench_server's
process, wrk and CPU-accounting helpers.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from bench.server.bench_server import PY, Server, capture_models, loadavg, lua, start, stop, tree_cpu_s, tree_rss_mb, wait_answering, wrk  # noqa: E402


def capture_tables(work: Path) -> dict[str, Path]:
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    import mlpack.bundle as mb

    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame({
        "age": rng.integers(18, 80, n),
        "income": rng.normal(50_000, 12_000, n).round(2),
        "city": pd.Series(rng.choice(["oslo", "rome", "lima", "kyiv"], n), dtype=object),
        "member": rng.random(n) > 0.5,
    })
    labels = np.where(frame["income"] + 300 * frame["age"] > 62_000, "high", "low")
    out = {"table-onnx": work / "table-onnx", "table-python": work / "table-python"}
    model = Pipeline([
        ("ct", ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), ["city"]),
                                  ("num", StandardScaler(), ["income"]),
                                  ("pass", "passthrough", ["age", "member"])])),
        ("lr", LogisticRegression(max_iter=500)),
    ]).fit(frame, labels)
    mb.capture(model, frame[:64], name="table-onnx", path=out["table-onnx"])
    import lightgbm

    cat = frame[["age", "income"]].assign(city=pd.Categorical(frame["city"]))
    booster = lightgbm.LGBMRegressor(n_estimators=50, min_child_samples=5, verbose=-1).fit(cat, frame["income"] / 1000)
    mb.capture(booster, cat[:64], name="table-python", path=out["table-python"])

    from sklearn.feature_extraction.text import TfidfVectorizer

    words = np.array(["good", "great", "fun", "bad", "awful", "boring", "movie", "plot", "actor", "scene"])
    texts = [" ".join(rng.choice(words, 8)) for _ in range(n)]
    moods = ["up" if sum(w in ("good", "great", "fun") for w in t.split()) > 2 else "down" for t in texts]
    text = Pipeline([("tf", TfidfVectorizer()), ("lr", LogisticRegression(max_iter=500))]).fit(texts, moods)
    out["text-onnx"] = work / "text-onnx"
    mb.capture(text, texts[:64], name="text-onnx", path=out["text-onnx"])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--connections", default="32")
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "mlpack-bench-table"))
    args = ap.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    iris = capture_models(work, (8,))["iris"]
    tables = capture_tables(work)
    record = {"age": 41, "income": 52_000.5, "city": "rome", "member": True}
    bodies = {
        "iris": json.dumps({"inputs": [[5.1, 3.5, 1.4, 0.2]]}).encode(),
        "table-onnx": json.dumps({"inputs": [record]}).encode(),
        "table-python": json.dumps({"inputs": [{k: record[k] for k in ("age", "income", "city")}]}).encode(),
        "text-onnx": json.dumps({"inputs": ["a great fun movie with a boring plot and a good actor"]}).encode(),
    }
    paths = {"iris": iris, **tables}
    servers = [Server(name, [PY, "-m", "mlpack.server", "--bundle", str(paths[name]), "--host", "127.0.0.1", "--port", "{port}",
                              "--grpc-port", "0"],  # REST only: four servers, one gRPC port
                      bodies[name]) for name in ("iris", "table-onnx", "table-python", "text-onnx")]
    logdir = work / "logs"
    logdir.mkdir(exist_ok=True)
    results = []
    load_before = loadavg()
    try:
        for s in servers:
            start(s, logdir)
        for s in servers:
            print(f"  {s.name}: {wait_answering(s).decode()[:120]}")
        scripts = {s.name: lua(s.body, work / f"{s.name}.lua") for s in servers}
        for s in servers:
            wrk(s, 8, 1, scripts[s.name])
        for conns in (int(c) for c in args.connections.split(",")):
            for s in servers:
                runs = []
                for _ in range(args.rounds):
                    cpu = tree_cpu_s(s.proc.pid)
                    run = wrk(s, conns, args.duration, scripts[s.name])
                    run["cpu_us"] = (tree_cpu_s(s.proc.pid) - cpu) / max(1, run["requests"]) * 1e6
                    runs.append(run)
                cell = {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50_ms", "p99_ms", "cpu_us")}
                cell.update(app=s.name, connections=conns, non2xx=sum(r["non2xx"] for r in runs), rss_mb=tree_rss_mb(s.proc.pid))
                results.append(cell)
    finally:
        for s in servers:
            stop(s)
    print(f"\nload average before {load_before}, after {loadavg()}; {args.duration}s per cell, {args.rounds} round(s)")
    print(f"{'app':14s} {'conns':>5s} {'req/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s} {'CPU us/req':>10s} {'non-2xx':>8s} {'RSS MB':>7s}")
    for r in results:
        print(f"{r['app']:14s} {r['connections']:5d} {r['rps']:9.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f}"
              f" {r['cpu_us']:10.0f} {r['non2xx']:8d} {r['rss_mb']:7.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
