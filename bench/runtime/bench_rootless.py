"""Rootless next to root, in one run: cold and warm build of a serving image, start to first answer.

    python bench/runtime/bench_rootless.py --user alice [--runs 3] [--base-home DIR]

Run as root. ``--user`` is an ordinary user with a subordinate id range and
a cgroup delegation (``mlpack system delegate alice``). Both sides run the
same CLI (``/usr/bin/python3 -m mlpack`` with this checkout and this
interpreter's site-packages on PYTHONPATH; the checkout must be readable by
the user) in fresh homes: the base image comes from ``--base-home`` (a home
holding localhost/mlpack/python:3.11) by save/load, the context is one
rendered iris model. cold = first build (pip's downloads included), warm =
the same build again (all cached); start = ``mlpack run -d -p ... --cpus 1
--memory 512Mi`` to the first 200 from /v2/health/ready, median of --runs,
root and rootless alternating. Prints a table; exit 0.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
PYTHON = "/usr/bin/python3"
BASE = "localhost/mlpack/python:3.11"


def cli(user: str | None, home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "MLPACK_HOME": str(home),
           "PYTHONPATH": f"{ROOT}:{sysconfig.get_paths()['purelib']}", "PYTHONDONTWRITEBYTECODE": "1"}
    if user:
        env["HOME"] = pwd.getpwnam(user).pw_dir
        argv = ["runuser", "-u", user, "--", "env", "-i", *[f"{k}={v}" for k, v in env.items()]]
    else:
        env["HOME"] = "/root"
        argv = ["env", "-i", *[f"{k}={v}" for k, v in env.items()]]
    proc = subprocess.run([*argv, PYTHON, "-m", "mlpack", *args], capture_output=True, text=True, cwd="/")
    if proc.returncode != 0:
        raise SystemExit(f"mlpack {' '.join(args)} as {user or 'root'} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def timed(fn, *args) -> float:
    t0 = time.monotonic()
    fn(*args)
    return time.monotonic() - t0


def start(user: str | None, home: Path) -> float:
    t0 = time.monotonic()
    cid = cli(user, home, "run", "-d", "--name", "bench", "-p", "127.0.0.1:0:8080", "--cpus", "1",
              "--memory", "512Mi", "localhost/bench/iris:1").stdout.split()[-1]
    import json

    port = json.loads((home / "containers" / cid / "record.json").read_text())["ports"][0]["host_port"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2).status == 200:
                break
        except OSError:
            time.sleep(0.01)
    took = time.monotonic() - t0
    cli(user, home, "rm", "-f", "bench")
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--user", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--base-home", default=os.environ.get("MLPACK_TEST_HOME", "/var/lib/mlpack"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (it compares root with --user)")
    ent = pwd.getpwnam(args.user)
    work = Path(tempfile.mkdtemp(prefix="mlpack-bench-rootless-", dir="/var/tmp"))
    work.chmod(0o755)
    try:
        import numpy as np
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression

        import mlpack
        from mlpack.dockerfile import RenderOptions

        x, y = load_iris(return_X_y=True)
        bundle = mlpack.capture(LogisticRegression(max_iter=500).fit(x, y), x[::4].astype(np.float32), name="iris",
                                path=work / "bundle")
        mlpack.render(bundle, RenderOptions(base="local"), out_dir=work / "ctx")
        tar = work / "base.tar"
        cli(None, Path(args.base_home), "save", "-o", str(tar), BASE)
        homes = {None: work / "root-home", args.user: work / "user-home"}
        for who, home in homes.items():
            home.mkdir()
        for p in [work, *work.rglob("*")]:
            os.lchown(p, ent.pw_uid, ent.pw_gid)
        homes[None].chmod(0o700)
        os.chown(homes[None], 0, 0)
        figures: dict[str | None, dict[str, float]] = {}
        for who, home in homes.items():
            cli(who, home, "load", "-i", str(tar))
            build = ("build", "-q", "-t", "localhost/bench/iris:1", str(work / "ctx"))
            figures[who] = {"cold": timed(cli, who, home, *build), "warm": timed(cli, who, home, *build)}
        starts: dict[str | None, list[float]] = {who: [] for who in homes}
        for _ in range(args.runs):
            for who, home in homes.items():
                starts[who].append(start(who, home))
        print(f"{'':10}{'cold build':>12}{'warm build':>12}{'start (median)':>16}   starts")
        for who in homes:
            f = figures[who]
            print(f"{who or 'root':10}{f['cold']:>11.1f}s{f['warm']:>11.1f}s{statistics.median(starts[who]):>15.2f}s   "
                  + " ".join(f"{s:.2f}" for s in starts[who]))
    finally:
        for who, home in ((None, work / "root-home"), (args.user, work / "user-home")):
            if home.exists():
                subprocess.run(["rm", "-rf", "--one-file-system", str(home)], check=False)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
