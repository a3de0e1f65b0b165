"""The port forwarder's cost: per-request latency and the monitor's threads and memory under idle connections.

    python bench/runtime/bench_forward.py [--code DIR] [--runtime crun] [--requests 2000] [--idle 2000]

``--code`` is the checkout whose mlpack is measured (default: this one), so
an older forwarder can be measured with the same script. The container runs
a one-thread asyncio echo server (the host's /usr/bin/python3, /usr mounted
read-only) under --pids-limit 128. Measured, in order:
  rtt       sequential 4-byte round trips on one connection (median, p99 us)
  connect   sequential connect + round trip + close (median, p99 us)
  idle      the monitor's Threads and VmRSS before and with N idle connections
Needs root (containers). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[2]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--code", default=str(HERE))
    p.add_argument("--runtime", default="crun")
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--idle", type=int, default=2000)
    args = p.parse_args()
    sys.path.insert(0, str(HERE))
    from tests.integration.security import hostpython  # noqa: PLC0415 - imports no mlpack
    from tests.integration.security.hostpython import ECHO, process_status, round_trip  # noqa: PLC0415

    sys.path.insert(0, args.code)  # the mlpack measured
    from mlpack.runtime import ImageSource, run  # noqa: PLC0415
    from mlpack.settings import Settings  # noqa: PLC0415
    from mlpack.types import Limits  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="bench-forward-") as tmp:
        settings = Settings.from_env({"MLPACK_HOME": f"{tmp}/home", "MLPACK_RUNTIME": args.runtime})
        root = hostpython.make_root(Path(tmp) / "root")
        src = ImageSource([root], hostpython.config(ExposedPorts={"7000/tcp": {}}), ref="hostpython-dir")
        c = run(src, command=[hostpython.PYTHON, "-c", ECHO], volumes=["/usr:/usr:ro"], limits=Limits(pids=128),
                settings=settings)
        try:
            host, port = c.url.removeprefix("http://").split(":")
            addr = (host, int(port))
            for chunk in c.follow_logs():
                if "listening" in chunk:
                    break
            rtt, conn = [], []
            with socket.create_connection(addr, timeout=30) as s:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for _ in range(args.requests):
                    t = time.perf_counter()
                    round_trip(s)
                    rtt.append(time.perf_counter() - t)
            for _ in range(args.requests // 4):
                t = time.perf_counter()
                with socket.create_connection(addr, timeout=30) as s:
                    round_trip(s)
                conn.append(time.perf_counter() - t)
            monitor = c.state()["monitor_pid"]
            before = process_status(monitor)
            idle = [socket.create_connection(addr, timeout=30) for _ in range(args.idle)]
            time.sleep(1.0)  # a benchmark, not a test: let the monitor take them all in
            during = process_status(monitor)
            for s in idle:
                s.close()
        finally:
            c.remove(force=True)

    def us(xs: list[float]) -> dict[str, float]:
        xs = sorted(xs)
        return {"median_us": round(statistics.median(xs) * 1e6, 1), "p99_us": round(xs[int(len(xs) * 0.99)] * 1e6, 1)}

    import mlpack  # noqa: PLC0415

    print(json.dumps({"code": str(Path(mlpack.__file__).parents[1]), "runtime": args.runtime, "rtt": us(rtt), "connect": us(conn),
                      "idle": args.idle, "monitor_before": before, "monitor_with_idle": during}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
