"""Push and pull throughput: mlpack's registry client against skopeo, same image, same run.

    python bench/oci/bench_transfer.py [--image REF --home MLPACK_HOME] [--size-mb 96] [--repeat 3]

Each measurement gets a fresh docker-registry on 127.0.0.1 (so neither tool
can skip or mount blobs the other uploaded) and an empty destination store.
Without --image, an image of incompressible random layers is made. Prints
MB/s for each tool and direction and the ratio mlpack/skopeo (target: >= 1/1.5).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from mlpack.oci.layer import Entry, LayerOptions, write_entries  # noqa: E402
from mlpack.oci.image import Image  # noqa: E402
from mlpack.oci.layout import Store  # noqa: E402
from mlpack.oci.registry import pull, push  # noqa: E402
from mlpack.settings import Settings  # noqa: E402
from tests.plugins.oci import start_registry  # noqa: E402


def _make_image(store: Store, size_mb: int) -> Image:
    per = max(size_mb // 4, 1) << 20
    layers = [write_entries(store, [Entry(f"data/{i}.bin", data=os.urandom(per))], LayerOptions(compress_level=1))
              for i in range(4)]
    return store.resolve(store.put_image({"config": {"Cmd": ["true"]}}, layers, ref="localhost/bench/transfer:1"))


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _skopeo(*args: str) -> None:
    proc = subprocess.run(["skopeo", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"skopeo {' '.join(args)} failed: {proc.stderr}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", help="image in the store at --home (default: make a random one)")
    ap.add_argument("--home", help="MLPACK_HOME holding --image")
    ap.add_argument("--size-mb", type=int, default=96)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if shutil.which("skopeo") is None:
        raise SystemExit("skopeo is not installed (apt-get install skopeo)")
    work = Path(tempfile.mkdtemp(prefix="bench-oci-", dir="/var/tmp"))
    env_home = os.environ.get("HOME")
    os.environ["HOME"] = str(work / "home")  # a fresh skopeo blob-info cache: no mounts from earlier runs
    try:
        if args.image:
            src = Settings.from_env({"MLPACK_HOME": args.home or os.environ.get("MLPACK_HOME", "")})
            store = Store(src.store_dir)
            image = store.resolve(args.image)
        else:
            src = Settings.from_env({"MLPACK_HOME": str(work / "src")})
            store = Store(src.store_dir)
            image = _make_image(store, args.size_mb)
        name = image.ref or image.digest
        mb = image.size / 1e6
        results: dict[str, list[float]] = {k: [] for k in ("mlpack push", "skopeo push", "mlpack pull", "skopeo pull")}
        for i in range(args.repeat):
            with start_registry(work / f"reg-m{i}") as reg:
                ref = reg.ref(f"bench/m:{i}")
                results["mlpack push"].append(_timed(lambda: push(image, ref, settings=src, store=store)))
                dst = Settings.from_env({"MLPACK_HOME": str(work / f"pull-m{i}")})
                results["mlpack pull"].append(_timed(lambda: pull(ref, settings=dst)))
            with start_registry(work / f"reg-s{i}") as reg:
                ref = reg.ref(f"bench/s:{i}")
                results["skopeo push"].append(_timed(lambda: _skopeo(
                    "copy", "-q", "--dest-tls-verify=false", f"oci:{store.root}:{name}", f"docker://{ref}")))
                results["skopeo pull"].append(_timed(lambda: _skopeo(
                    "copy", "-q", "--src-tls-verify=false", f"docker://{ref}", f"oci:{work / f'pull-s{i}'}:x")))
            for p in (work / f"pull-m{i}", work / f"pull-s{i}", work / f"reg-m{i}", work / f"reg-s{i}"):
                shutil.rmtree(p, ignore_errors=True)
        print(f"image {name}: {mb:.1f} MB in {len(image.layers)} layers, {args.repeat} runs each, median")
        med = {k: statistics.median(v) for k, v in results.items()}
        for key, secs in med.items():
            print(f"  {key:<12} {secs:6.2f} s  {mb / secs:7.1f} MB/s")
        for op in ("push", "pull"):
            ratio = med[f"mlpack {op}"] / med[f"skopeo {op}"]
            verdict = "OK" if ratio <= 1.5 else "SLOWER THAN TARGET"
            print(f"  {op}: mlpack takes {ratio:.2f}x skopeo's time (target <= 1.5x): {verdict}")
        return 0
    finally:
        if env_home is not None:
            os.environ["HOME"] = env_home
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
