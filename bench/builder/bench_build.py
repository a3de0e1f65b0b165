"""mlpack's embedded builder against `buildah bud --layers` on the rendered sklearn ONNX image.

    python bench/builder/bench_build.py [--home DIR] [--base-layout OCI_DIR] [--rebuilds 3] [--no-buildah]
                                        [--cold-runs 2] [--cli-code DIR]

Both tools build the same rendered context (a captured iris LogisticRegression
with the offline base ``localhost/mlpack/python:3.11``), rendered as ``mlpack
build BUNDLE`` and ``serve()`` render it: the lock's wheels (and uv, the
installer) from mlpack's wheel cache as the named build context ``wheels``,
which both tools get (``--build-context wheels=DIR``); ``--index`` renders as
``mlpack render`` alone does instead (pip in the RUN step asks the index). The
base image is present in their storage and their RUN cache mounts (pip/uv
download caches) warmed by one untimed build each:

  cold     no step cache (mlpack: ``cache/build`` removed; buildah: built and
           intermediate images removed), base present, download caches warm;
           the tools alternate (median of --cold-runs each) so both see the
           same load on a shared machine.
  rebuild  only the model changed: bundle/ is swapped for a fresh capture of
           the model with other coefficients before every rebuild (captured
           outside the timing, never built before), so each rebuild writes the
           model's layer, config and manifest and reuses every other layer.

mlpack is timed as a CLI process (``python -m mlpack build``, what a user
runs; its own CPU time, user + system, is printed too: the figure that
survives a busy machine; for cold builds buildah's is printed too, with the
runtimes and steps it waited for) and, for rebuilds, also in-process
(``mlpack.builder.build()``, what a notebook pays). ``--cold-runs 0`` skips
the cold builds (one untimed build still warms every cache). ``--cli-code
DIR`` also times the mlpack of another checkout (say, main's head in a
``git worktree``) from the CLI, alternating with the two tools: its cold
builds on the context it renders itself (its own Dockerfile) and each
rebuild on a model of its own: before and after in one run.
buildah runs with runc (crun refuses this hybrid cgroup host without a
mount-namespace workaround) and host networking; mlpack's RUN
steps have their own namespace with a slirp4netns uplink
(bench/builder/bench_run_network.py measures what that costs). Prints a table, then one more
cold build's per-step breakdown (in-process, from the builder's StepDone
events: wall seconds and CPU seconds, the builder's own and that of the
processes it waited for, RUN steps' sandboxes included), and writes
``<home>/bench-build.json``.
The home defaults to /var/tmp/mlpack-bench-build and is kept between runs
(caches stay warm); the base comes from --base-layout (an OCI layout holding
localhost/mlpack/python:3.11) or is bootstrapped with mmdebstrap.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

from mlpack.oci.layout import Store  # noqa: E402
from mlpack.settings import Settings  # noqa: E402

BASE_REF = "localhost/mlpack/python:3.11"
CA = "/etc/ssl/certs/ca-certificates.crt"
MLPACK_TAG = "localhost/bench/iris-mlpack:1"
BUILDAH_TAG = "localhost/bench/iris-buildah:1"
EPOCH = "1700000000"


def sh(argv: list[str], **kw) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def]
    return subprocess.run(argv, check=True, **kw)


def timed(argv: list[str], env: dict[str, str] | None = None, log: Path | None = None) -> float:
    return timed_cpu(argv, env, log)[0]


def timed_cpu(argv: list[str], env: dict[str, str] | None = None, log: Path | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and the children it waited for); run from /."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with open(log or os.devnull, "ab") as out:
        proc = subprocess.run(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd="/")
    took = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({proc.returncode}); see {log}")
    return took, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def capture_bundles(home: Path) -> tuple[Path, Path]:
    """Two captures of the same model family with different coefficients."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import mlpack

    X, y = load_iris(return_X_y=True)
    out = []
    for name, c in (("a", 1.0), ("b", 0.3)):
        path = home / f"bundle-{name}"
        if not (path / "mlpack.yaml").exists():
            shutil.rmtree(path, ignore_errors=True)
            model = LogisticRegression(C=c, max_iter=500).fit(X, y)
            mlpack.capture(model, X[:20].astype(np.float32), name="iris", path=str(path))
        out.append(path)
    return out[0], out[1]


def fresh_bundle(home: Path, rng: random.Random) -> Path:
    """A capture of the model with coefficients never built before (a random C): a model-only change."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import mlpack

    X, y = load_iris(return_X_y=True)
    path = home / "bundle-fresh"
    shutil.rmtree(path, ignore_errors=True)
    model = LogisticRegression(C=0.05 + rng.random(), max_iter=500).fit(X, y)
    mlpack.capture(model, X[:20].astype(np.float32), name="iris", path=str(path))
    return path


def swap_bundle(ctx: Path, bundle: Path) -> None:
    target = ctx / "bundle"
    shutil.rmtree(target)
    shutil.copytree(bundle, target)


def _cpu() -> tuple[float, float]:
    """CPU seconds (user + system) of this process and of the children it waited for."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def step_breakdown(ctx: Path, settings: Settings, named: list[str]) -> dict[str, object]:
    """One more cold build, in-process, timing each step from the builder's events; "other" is
    what no step accounts for (reading the context, stage setup, writing the manifest). CPU is
    the builder's own and its children's (a RUN step's sandbox: runtime, shell, the command)."""
    from mlpack.builder import build
    from mlpack.builder.events import StepCached, StepDone, StepStarted

    shutil.rmtree(settings.cache_dir / "build", ignore_errors=True)
    steps: list[tuple[str, str, float, int | None, float, float]] = []
    mark: list[tuple[float, float]] = [(0.0, 0.0)]

    def progress(event: object) -> None:
        if isinstance(event, StepStarted):
            mark[0] = _cpu()
        elif isinstance(event, StepDone):
            me, kids = _cpu()
            steps.append((event.stage_name, event.instruction, event.seconds, event.size,
                          me - mark[0][0], kids - mark[0][1]))
        elif isinstance(event, StepCached):
            steps.append((event.stage_name, event.instruction, 0.0, event.size, 0.0, 0.0))

    cpu0 = _cpu()
    started = time.perf_counter()
    build(ctx, tag=MLPACK_TAG, settings=settings, source_date_epoch=int(EPOCH), build_contexts=named,
          progress=progress)
    total = time.perf_counter() - started
    cpu1 = _cpu()
    own, kids = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    print(f"\ncold build, per step (in-process, {total:.2f} s; CPU {own:.2f} s builder + {kids:.2f} s children):")
    print(f"{'stage':10}{'seconds':>9}{'share':>7}{'cpu own':>9}{'cpu kids':>9}{'layer MB':>10}  instruction")
    for stage, instruction, seconds, size, cpu_own, cpu_kids in steps:
        if not seconds and not size:
            continue  # metadata (ENV, LABEL, ...) and FROM: nothing to time
        mb = f"{size / 1e6:10.1f}" if size else f"{'-':>10}"
        print(f"{stage[:10]:10}{seconds:9.2f}{seconds / total:7.0%}{cpu_own:9.2f}{cpu_kids:9.2f}{mb}  "
              f"{' '.join(instruction.split())[:60]}")
    other = total - sum(s[2] for s in steps)
    other_own, other_kids = own - sum(s[4] for s in steps), kids - sum(s[5] for s in steps)
    print(f"{'':10}{other:9.2f}{other / total:7.0%}{other_own:9.2f}{other_kids:9.2f}{'':>10}  "
          "(other: context, stages, manifest)")
    return {"total_s": total, "cpu_own_s": own, "cpu_children_s": kids,
            "steps": [{"stage": st, "instruction": i, "seconds": sec, "size": sz, "cpu_own_s": co, "cpu_children_s": ck}
                      for st, i, sec, sz, co, ck in steps], "other_s": other}


def render_other(code: Path, bundle: Path, ctx: Path, mhome: Path) -> list[str]:
    """The context the mlpack of ``code`` renders for ``bundle`` (its own Dockerfile and helper
    scripts) at ``ctx``; returns its named build contexts as NAME=DIR."""
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from mlpack.builder.depsmode import render_for_build\n"
        "from mlpack.dockerfile import RenderOptions\n"
        "from mlpack.oci.layout import Store\n"
        "from mlpack.settings import Settings\n"
        "settings = Settings.from_env({'MLPACK_HOME': sys.argv[3]})\n"
        f"options = RenderOptions(base='local', source_date_epoch={EPOCH})\n"
        "r = render_for_build(Path(sys.argv[1]), options, settings, Store(settings.store_dir), deps='run',\n"
        "                     out_dir=Path(sys.argv[2]))\n"
        "print(json.dumps({k: str(v) for k, v in r.contexts.items()}))\n"
    )
    shutil.rmtree(ctx, ignore_errors=True)
    out = subprocess.run([sys.executable, "-c", script, str(bundle), str(ctx), str(mhome)], check=True,
                         capture_output=True, text=True, cwd="/", env=dict(os.environ, PYTHONPATH=str(code)))
    contexts = json.loads(out.stdout.strip().splitlines()[-1])
    return [f"{name}={path}" for name, path in contexts.items()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", default="/var/tmp/mlpack-bench-build")
    ap.add_argument("--base-layout", help="OCI layout that holds " + BASE_REF)
    ap.add_argument("--rebuilds", type=int, default=3)
    ap.add_argument("--cold-runs", type=int, default=2, help="cold builds per tool (median reported)")
    ap.add_argument("--no-buildah", action="store_true")
    ap.add_argument("--index", action="store_true",
                    help="render as `mlpack render` does (pip asks the index) instead of with the wheel cache")
    ap.add_argument("--cli-code", metavar="DIR", type=Path,
                    help="also time the CLI rebuild with the mlpack of this checkout")
    args = ap.parse_args()

    home = Path(args.home)
    home.mkdir(parents=True, exist_ok=True)
    mhome = home / "mlpack"
    settings = Settings.from_env({"MLPACK_HOME": str(mhome)})
    store = Store(settings.store_dir)
    store.init()
    from mlpack.oci.base import bootstrap, current

    if current(store) is None:  # missing, or made by an older recipe (other trims)
        if args.base_layout:
            sh(["skopeo", "copy", "-q", f"oci:{args.base_layout}:{BASE_REF}", f"oci:{settings.store_dir}:{BASE_REF}"])
        else:
            bootstrap(settings)
    # "base present": unpacked once, as a pulled base is before anyone builds on it
    from mlpack.oci.layercache import layer_dirs

    layer_dirs(store, store.resolve(BASE_REF), settings)

    bundle_a, _ = capture_bundles(home)
    ctx = home / "ctx"
    shutil.rmtree(ctx, ignore_errors=True)  # rendered each run: the wheels context links into the cache
    from mlpack.dockerfile import RenderOptions, render

    options = RenderOptions(base="local", source_date_epoch=int(EPOCH))
    if args.index:
        rendered = render(bundle_a, options, out_dir=ctx)
    else:
        from mlpack.builder.depsmode import render_for_build

        rendered = render_for_build(bundle_a, options, settings, store, deps="run", out_dir=ctx)
    named = [f"{name}={path}" for name, path in rendered.contexts.items()]
    swap_bundle(ctx, bundle_a)

    here = Path(__file__).resolve().parents[2]
    # run from / with the checkout on PYTHONPATH: the mlpack measured is the one asked for, not the cwd's
    env = dict(os.environ, MLPACK_HOME=str(mhome), SOURCE_DATE_EPOCH=EPOCH, PYTHONPATH=str(here))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed mlpack has its .pyc files
    other_env = dict(env, PYTHONPATH=str(args.cli_code)) if args.cli_code else None
    contexts = [arg for pair in named for arg in ("--build-context", pair)]
    mlpack_cli = [sys.executable, "-m", "mlpack", "build", "-q", *contexts, "-t", MLPACK_TAG, str(ctx)]
    other_cli: list[str] = []
    if args.cli_code:  # its own rendering of the same bundle: a template change is part of what is compared
        other_ctx = home / "ctx-other"
        other_named = render_other(args.cli_code, bundle_a, other_ctx, mhome)
        swap_bundle(other_ctx, bundle_a)
        other_cli = [sys.executable, "-m", "mlpack", "build", "-q",
                     *[arg for pair in other_named for arg in ("--build-context", pair)], "-t", MLPACK_TAG,
                     str(other_ctx)]
    broot, brun = home / "buildah" / "root", home / "buildah" / "run"
    storage = ["--root", str(broot), "--runroot", str(brun), "--storage-driver", "overlay"]
    buildah_cli = ["buildah", *storage, "bud", "-q", "--layers", "--pull=never", "--runtime", shutil.which("runc") or "runc",
                   "--network", "host", "--secret", f"id=ca-bundle,src={CA}", *contexts, "-t", BUILDAH_TAG, str(ctx)]
    use_buildah = not args.no_buildah and shutil.which("buildah") is not None
    log = home / "bench-build.log"
    if use_buildah:
        from mlpack.oci.base import RUNTIME_REF, runtime_image

        runtime_image(store, RUNTIME_REF)  # the runtime stage's base, made from the base if missing
        for ref in (BASE_REF, RUNTIME_REF):
            probe = subprocess.run(["buildah", *storage, "inspect", "--type", "image", ref], capture_output=True)
            if probe.returncode != 0:
                sh(["skopeo", "copy", "-q", f"oci:{settings.store_dir}:{ref}",
                    f"containers-storage:[overlay@{broot}+{brun}]{ref}"])

    # warm the download caches (untimed)
    print("warming download caches (one build each, untimed) ...", flush=True)
    timed(mlpack_cli, env, log)
    if other_env is not None:
        timed(other_cli, other_env, log)
    if use_buildah:
        timed(buildah_cli, env, log)

    results: dict[str, object] = {"machine_load": os.getloadavg()}

    def cold_mlpack() -> tuple[float, float]:
        shutil.rmtree(settings.cache_dir / "build", ignore_errors=True)
        return timed_cpu(mlpack_cli, env, log)

    def cold_other() -> tuple[float, float]:
        shutil.rmtree(settings.cache_dir / "build", ignore_errors=True)
        return timed_cpu(other_cli, other_env, log)

    def cold_buildah() -> tuple[float, float]:
        subprocess.run(["buildah", *storage, "rmi", "-f", BUILDAH_TAG], capture_output=True)
        subprocess.run(["buildah", *storage, "rmi", "--prune"], capture_output=True)
        return timed_cpu(buildah_cli, env, log)

    # cold: no step cache, base present, download caches warm; alternating the
    # order so that both tools see the same (shared, noisy) machine load
    cold: dict[str, list[float]] = {"mlpack": [], "other": [], "buildah": []}
    cold_cpu: dict[str, list[float]] = {"mlpack": [], "other": [], "buildah": []}
    order = [("mlpack", cold_mlpack)]
    if other_env is not None:
        order.append(("other", cold_other))
    if use_buildah:
        order.append(("buildah", cold_buildah))
    for i in range(args.cold_runs):
        for name, fn in (order if i % 2 == 0 else order[::-1]):
            took, cpu = fn()
            cold[name].append(took)
            cold_cpu[name].append(cpu)
            print(f"{name:7} cold   {took:.2f} s, CPU {cpu:.2f} s", flush=True)
    cold_m, cold_b, cold_o = cold["mlpack"], cold["buildah"], cold["other"]
    if cold_m:
        results["mlpack_cold_s"] = statistics.median(cold_m)
    if cold_b:
        results["buildah_cold_s"] = statistics.median(cold_b)
    if cold_o:
        results["other_cold_s"] = statistics.median(cold_o)
    for name, cpus in cold_cpu.items():
        if cpus:
            results[f"{name}_cold_cpu_s"] = statistics.median(cpus)
    results["cold_runs"] = cold
    results["cold_runs_cpu"] = cold_cpu

    # model-only rebuilds: a model never built before each time (captured outside the timing)
    from mlpack.builder import build

    cli, cli_cpu, api, bud = [], [], [], []
    other, other_cpu = [], []
    rng = random.Random()
    if args.rebuilds:  # every step but the model's cached, whichever cold build came last (untimed)
        timed(mlpack_cli, env, log)
        if other_env is not None:
            timed(other_cli, other_env, log)
    for i in range(args.rebuilds):
        fresh = fresh_bundle(home, rng)
        swap_bundle(ctx, fresh)
        wall, cpu = timed_cpu(mlpack_cli, env, log)
        cli.append(wall)
        cli_cpu.append(cpu)
        if other_env is not None:
            swap_bundle(home / "ctx-other", fresh_bundle(home, rng))
            wall, cpu = timed_cpu(other_cli, other_env, log)
            other.append(wall)
            other_cpu.append(cpu)
        if use_buildah:
            bud.append(timed(buildah_cli, env, log))
        swap_bundle(ctx, fresh_bundle(home, rng))
        started = time.perf_counter()
        build(ctx, tag=MLPACK_TAG, settings=settings, source_date_epoch=int(EPOCH), build_contexts=named)
        api.append(time.perf_counter() - started)
    results["mlpack_rebuild_cli_s"] = statistics.median(cli)
    results["mlpack_rebuild_cli_cpu_s"] = statistics.median(cli_cpu)
    results["mlpack_rebuild_api_s"] = statistics.median(api)
    if bud:
        results["buildah_rebuild_s"] = statistics.median(bud)
    if bud and cold_m:
        results["cold_ratio"] = results["mlpack_cold_s"] / results["buildah_cold_s"]  # type: ignore[operator]
    results["rebuilds"] = {"cli": cli, "cli_cpu": cli_cpu, "api": api, "buildah": bud}
    if other:
        results["other_cli"] = {"code": str(args.cli_code), "wall": other, "cpu": other_cpu}

    print()
    print(f"{'':28}{'mlpack':>12}{'buildah':>12}")
    if cold_m:
        print(f"{'cold build':28}{results['mlpack_cold_s']:>11.2f}s"
              + (f"{results['buildah_cold_s']:>11.2f}s" if use_buildah else f"{'-':>12}"))
        print(f"{'  CPU (user+sys, children)':28}{results['mlpack_cold_cpu_s']:>11.2f}s"
              + (f"{results['buildah_cold_cpu_s']:>11.2f}s" if use_buildah else f"{'-':>12}"))
    print(f"{'model-only rebuild (CLI)':28}{results['mlpack_rebuild_cli_s']:>11.3f}s"
          + (f"{results['buildah_rebuild_s']:>11.2f}s" if bud else f"{'-':>12}"))
    print(f"{'  its own CPU (user+sys)':28}{results['mlpack_rebuild_cli_cpu_s']:>11.3f}s{'-':>12}")
    print(f"{'model-only rebuild (API)':28}{results['mlpack_rebuild_api_s']:>11.3f}s{'-':>12}")
    if cold_o:
        print(f"cold build (CLI) with {args.cli_code}: {results['other_cold_s']:.2f} s, CPU "
              f"{results['other_cold_cpu_s']:.2f} s (medians, alternating with the above)"
              + (f"; its ratio to buildah {results['other_cold_s'] / results['buildah_cold_s']:.2f}, in CPU "
                 f"{results['other_cold_cpu_s'] / results['buildah_cold_cpu_s']:.2f}" if cold_b else ""))
    if other:
        print(f"model-only rebuild (CLI) with {args.cli_code}: {statistics.median(other):.3f} s, "
              f"own CPU {statistics.median(other_cpu):.3f} s (medians, alternating with the above)")
    if bud and cold_m:
        print(f"cold ratio mlpack/buildah: {results['cold_ratio']:.2f} (target <= 0.5), in CPU "
              f"{results['mlpack_cold_cpu_s'] / results['buildah_cold_cpu_s']:.2f}; "
              f"model-only rebuild from the CLI: target < 0.1 s")
    if cold_m:
        results["breakdown"] = step_breakdown(ctx, settings, named)
    print(f"load average during the run: {os.getloadavg()}")
    (home / "bench-build.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
