"""Start-to-first-HTTP-200: `mlpack run` against the bare OCI runtime on the same unpacked layers.

    python bench/runtime/bench_start.py [--image REF] [--runs 5] [--cpus 0.5] [--home DIR] [--cli-code DIR]

Image choice, first found: --image; the serving image built by the test
suite (localhost/mlpack-test/sklearn-serving:1, probed at /v2/health/live);
the offline base image (localhost/mlpack/python:3.11, running
``python3 -m http.server``); with --busybox the test busybox rootfs running
``httpd`` (measures the runtime's own cost, the server starts in ~1 ms).

Per run and alternating, so both see the same machine load:
  bare    ``<runtime> run`` on an overlay of the same layer directories with
          mlpack's config.json (same limits and hardening), host network;
          timed from the runtime's exec to the first 200.
  mlpack  ``python -m mlpack run -d -p PORT:CPORT --cpus ...`` in a fresh
          process (private network namespace + port forwarder), timed from
          the CLI's exec to the first 200 through the published port; its own
          CPU time (user + system of the CLI process, not of the container or
          its monitor) is printed too: the figure that survives machine load.
  mlpack-cli (DIR)  (--cli-code DIR) the same with the mlpack of another
          checkout (say, the previous commit's), for before/after in one run.
  api     ``mlpack.runtime.run()`` in this process (no CLI start-up).
  bare-against  (--against REF) the bare runtime on another image, for the
          ratio of two images' server starts in the same run.
Then the per-request cost of each network mode (sequential GETs through the
forwarder vs. direct on the host network). Prints a table; exit 0.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mlpack.runtime import ImageSource, image_source, run, select_runtime  # noqa: E402
from mlpack.runtime.host import CGROUP_PARENT  # noqa: E402
from mlpack.runtime.cgroups import remove_cgroup  # noqa: E402
from mlpack.runtime.mounts import mount_overlay, umount  # noqa: E402
from mlpack.runtime.spec import ContainerSpec, ProcessSpec, build_config, merge_env, process_args, resolve_user  # noqa: E402
from mlpack.settings import Settings  # noqa: E402
from mlpack.types import Limits  # noqa: E402

SERVING_REF = "localhost/mlpack-test/sklearn-serving:1"
BASE_REF = "localhost/mlpack/python:3.11"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def first_200(port: int, path: str, started: float, timeout: float = 60.0) -> float:
    """Seconds from ``started`` to the first 200 on 127.0.0.1:port (polling every 10 ms)."""
    deadline = started + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return time.monotonic() - started
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.01)
    raise TimeoutError(f"no 200 on port {port}{path} within {timeout}s")


def request_latency(port: int, path: str, n: int = 200) -> float:
    """Median seconds per GET over one keep-alive connection (bounded: n requests)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        times.append(time.perf_counter() - t)
        if resp.getheader("connection", "").lower() == "close" or resp.version == 10:
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.close()
    return statistics.median(times)


def pick_image(args: argparse.Namespace, settings: Settings) -> tuple[object, list[str] | None, int, str]:
    """(image or ImageSource, command or None, container port, probe path); the command gets {port}."""
    if args.busybox:
        root = Path(args.busybox)
        return (ImageSource([root], {"Cmd": ["httpd"]}, ref="busybox-dir"),
                ["httpd", "-f", "-p", "127.0.0.1:{port}", "-h", "/www"], 8080, "/")
    from mlpack.oci.layout import Store

    store = Store(settings.store_dir)
    candidates = [args.image] if args.image else [SERVING_REF, BASE_REF]
    for ref in candidates:
        try:
            img = store.resolve(ref)
        except Exception:
            continue
        exposed = list(img.config.tcp_ports)
        if ref == BASE_REF or not exposed:
            return img, ["python3", "-m", "http.server", "{port}", "--bind", "127.0.0.1"], 8000, "/"
        return img, None, exposed[0], args.path or "/v2/health/live"
    sys.exit(f"none of {candidates} is in the store at {settings.store_dir}: build the serving image, "
             f"run `mlpack base bootstrap`, or pass --busybox ROOTFS")


def bare_once(src: ImageSource, command: list[str] | None, cport: int, path: str, settings: Settings,
              limits: Limits) -> float:
    """The runtime alone on an overlay of the same layers; host network so the probe reaches it."""
    rt = select_runtime(settings)
    work = Path(tempfile.mkdtemp(prefix="bare-", dir=settings.home))
    for d in ("rootfs", "upper", "work"):
        (work / d).mkdir()
    cid = "bench-bare-" + work.name.split("-")[-1]
    port = free_port()
    args = [a.replace("{port}", str(port)) for a in command] if command else list(process_args(src.config, None))
    env = merge_env(src.config.env, {"MLPACK_PORT": str(port)})
    mount_overlay(list(src.lowerdirs), work / "upper", work / "work", work / "rootfs")
    try:
        uid, gid, groups, _ = resolve_user(work / "rootfs", src.config.user)
        spec = ContainerSpec(rootfs=work / "rootfs", network="host", limits=limits,
                             cgroups_path=f"/{CGROUP_PARENT}/{cid}",
                             process=ProcessSpec(args=tuple(args), env=env, cwd=src.config.working_dir or "/",
                                                 uid=uid, gid=gid, additional_gids=groups))
        (work / "config.json").write_text(json.dumps(build_config(spec)))
        rt.root.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        proc = subprocess.Popen(rt.argv("run", "--bundle", str(work), cid), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            return first_200(port, path, started)
        finally:
            rt.call("kill", cid, "KILL", check=False)
            proc.wait(timeout=30)
            rt.call("delete", "--force", cid, check=False)
            remove_cgroup(f"/{CGROUP_PARENT}/{cid}")
    finally:
        umount(work / "rootfs")
        shutil.rmtree(work, ignore_errors=True)


HERE = Path(__file__).resolve().parents[2]


def mlpack_cli_once(ref: str, command: list[str] | None, cport: int, path: str, settings: Settings,
                    limits: Limits, network: str = "private", code: Path = HERE) -> tuple[float, float]:
    """(start-to-200 seconds, the CLI process's own CPU seconds) of ``python -m mlpack run`` with
    the mlpack of checkout ``code`` (on PYTHONPATH, run from / so that no cwd shadows it)."""
    port = free_port()
    inner = cport if network == "private" else port
    cmd = [sys.executable, "-m", "mlpack", "run", "-d", "--cpus", str(limits.cpus), "--network", network,
           "-p", f"{port}:{inner}", "-e", f"MLPACK_PORT={inner}", ref]
    if command:
        cmd += [a.replace("{port}", str(inner)) for a in command]
    env = {**os.environ, "MLPACK_HOME": str(settings.home), "PYTHONPATH": str(code)}
    # An installed mlpack has its .pyc files; a dev shell that sets
    # PYTHONDONTWRITEBYTECODE would time the compiler at every CLI start.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if settings.runtime:
        env["MLPACK_RUNTIME"] = settings.runtime
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True, cwd="/")
    try:
        took = first_200(port, path, started)
    finally:
        # read both pipes to EOF (the CLI has exited by then: its monitor holds neither), then
        # reap it with wait4 for its rusage; bounded: the CLI exits once the container runs
        out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        cid = out.strip()
        if cid:
            subprocess.run([sys.executable, "-m", "mlpack", "rm", "-f", cid], env=env, capture_output=True, cwd="/")
        elif err:
            print(err, file=sys.stderr)
    return took, usage.ru_utime + usage.ru_stime


def api_once(src: object, command: list[str] | None, cport: int, path: str, settings: Settings,
             limits: Limits, network: str = "private") -> tuple[float, float]:
    """(start-to-200 seconds, median per-request latency) through mlpack.runtime.run()."""
    port = free_port()
    inner = cport if network == "private" else port
    cmd = [a.replace("{port}", str(inner)) for a in command] if command else None
    started = time.monotonic()
    c = run(src, command=cmd, limits=limits, ports=[f"{port}:{inner}"], network=network, settings=settings,
            env={"MLPACK_PORT": str(inner)})
    try:
        t = first_200(port, path, started)
        return t, request_latency(port, path)
    finally:
        c.remove(force=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image")
    ap.add_argument("--against", metavar="REF",
                    help="also time the bare runtime on this image (say, the previous release's), alternating, "
                         "and print the ratio of the two servers' starts")
    ap.add_argument("--busybox", metavar="ROOTFS", help="run busybox httpd from this rootfs directory instead")
    ap.add_argument("--path", help="probe path (default / or /v2/health/live for a serving image)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--cpus", type=float, default=0.5)
    ap.add_argument("--home", help="MLPACK_HOME (default: the environment's)")
    ap.add_argument("--runtime", help="crun or runc (default: mlpack's choice)")
    ap.add_argument("--cli-code", metavar="DIR", type=Path,
                    help="also time `python -m mlpack run` with the mlpack of this checkout, alternating")
    args = ap.parse_args()
    env = dict(os.environ)
    if args.home:
        env["MLPACK_HOME"] = args.home
    if args.runtime:
        env["MLPACK_RUNTIME"] = args.runtime
    settings = Settings.from_env(env)
    limits = Limits(cpus=args.cpus)
    image, command, cport, path = pick_image(args, settings)
    path = args.path or path
    src = image_source(image, settings)  # unpacks the layers once, outside every timing
    ref = src.ref or ""
    rt = select_runtime(settings)
    print(f"image {src.ref} ({len(src.lowerdirs)} layers), runtime {rt.name}, cpus {args.cpus}, "
          f"probe {path}, {args.runs} runs each")
    results: dict[str, list[float]] = {"bare": [], "mlpack-cli": [], "mlpack-api": [], "mlpack-api-host": []}
    cpu: dict[str, list[float]] = {"mlpack-cli": []}
    other_cli = f"mlpack-cli ({args.cli_code})" if args.cli_code else None
    if other_cli:
        results[other_cli] = []
        cpu[other_cli] = []
    if args.against:
        from mlpack.oci.layout import Store

        other = image_source(Store(settings.store_dir).resolve(args.against), settings)
        results["bare-against"] = []
    lat: dict[str, list[float]] = {"private (forwarder)": [], "host (direct)": []}
    for i in range(args.runs):
        results["bare"].append(bare_once(src, command, cport, path, settings, limits))
        if args.against:
            results["bare-against"].append(bare_once(other, command, cport, path, settings, limits))
        if not args.busybox:
            runs = [("mlpack-cli", HERE)] + ([(other_cli, args.cli_code)] if other_cli else [])
            for name, code in (runs if i % 2 == 0 else runs[::-1]):
                t, c = mlpack_cli_once(ref, command, cport, path, settings, limits, code=code)
                results[name].append(t)
                cpu[name].append(c)
        t, lp = api_once(src, command, cport, path, settings, limits)
        results["mlpack-api"].append(t)
        lat["private (forwarder)"].append(lp)
        t, lh = api_once(src, command, cport, path, settings, limits, network="host")
        results["mlpack-api-host"].append(t)
        lat["host (direct)"].append(lh)
    bare = statistics.median(results["bare"])
    w = max(22, *(len(n) + 1 for n in results))
    print(f"{'start to first 200':{w}}{'median s':>10}{'min s':>8}{'max s':>8}{'vs bare':>9}")
    for name, vals in results.items():
        if not vals:
            continue
        med = statistics.median(vals)
        print(f"{name:{w}}{med:10.3f}{min(vals):8.3f}{max(vals):8.3f}{(med / bare - 1) * 100:+8.1f}%")
    for name, vals in cpu.items():
        if vals:
            print(f"{name} own CPU: median {statistics.median(vals):.3f} s (min {min(vals):.3f}, max {max(vals):.3f})")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.against:
        print(f"server start, {src.ref} / {args.against} (bare, medians): "
              f"{bare / statistics.median(results['bare-against']):.2f}x")
    print(f"{'per GET (keep-alive)':22}{'median ms':>10}")
    for name, vals in lat.items():
        print(f"{name:22}{statistics.median(vals) * 1000:10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
