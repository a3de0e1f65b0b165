"""What a RUN step's network costs: seconds per trivial RUN step with each ``--network``.

    python bench/builder/bench_run_network.py [--home DIR] [--base REF] [--steps 10] [--rounds 5]

Builds a Dockerfile of ``--steps`` trivial RUN steps (``RUN echo N > /fN``)
with ``--no-cache`` through the CLI (``python -m mlpack build``, what a user
runs), once per network per round, the networks alternating so that all see
the same load on a shared machine:

  default  the step's own namespace with a slirp4netns uplink (the default)
  none     the step's own namespace with only ``lo``
  host     the host's namespace (the old default; now only on request)

Prints the median seconds per step of each and the uplink's extra cost
(default - none), and writes ``<home>/bench-run-network.json``. The base image
must be in the home's store (``mlpack base bootstrap`` makes
localhost/mlpack/python:3.11; the test suite's busybox image works too).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NETWORKS = ("default", "none", "host")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--home", default=os.environ.get("MLPACK_HOME", "/var/tmp/mlpack-bench-build"))
    ap.add_argument("--base", default="localhost/mlpack/python:3.11")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    env = dict(os.environ, MLPACK_HOME=args.home, PYTHONPATH=str(REPO))
    per_step: dict[str, list[float]] = {n: [] for n in NETWORKS}
    with tempfile.TemporaryDirectory(prefix="bench-run-network-") as ctx:
        lines = [f"FROM {args.base}"] + [f"RUN echo {i} > /f{i}" for i in range(args.steps)]
        Path(ctx, "Dockerfile").write_text("\n".join(lines) + "\n")
        for _ in range(args.rounds):
            for network in NETWORKS:
                started = time.perf_counter()
                subprocess.run([sys.executable, "-m", "mlpack", "build", "-q", "--no-cache", "--network", network,
                                ctx], env=env, check=True, stdout=subprocess.DEVNULL)
                per_step[network].append((time.perf_counter() - started) / args.steps)
    result = {n: round(statistics.median(v), 4) for n, v in per_step.items()}
    result["uplink_extra"] = round(result["default"] - result["none"], 4)
    for name, value in result.items():
        print(f"{name:>13}: {value:.3f} s per RUN step")
    Path(args.home, "bench-run-network.json").write_text(json.dumps({"median_s_per_step": result,
                                                                     "samples": per_step}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
