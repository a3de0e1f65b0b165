"""Size report of serving images: per layer and per package, uncompressed, gzip and zstd.

    python bench/image/size_report.py [--home DIR] [--build] [--baseline plain|none|REF]
                                      [--image LABEL=STORE_DIR:REF ...] [--top 25] [--json OUT]

With --build, the sklearn ONNX image (a captured iris LogisticRegression,
rendered FROM the offline base and built by mlpack's builder) is built into
the home's store as ``localhost/bench/iris-slim:1``; --baseline plain (the
default with --build) also builds, in the same run, the same stack the plain
way: a Debian python3 base bootstrapped without mlpack's trims
(``localhost/mlpack/python-plain:3.11``) and one stage ``python3 -m venv`` +
``pip install -r requirements.lock`` + the serving code and bundle, nothing
stripped (minbase, with apt; docs and man pages dropped as Debian's slim
images drop them). --image adds any image of any OCI layout (for example the image
built from the previous main, in another helper's store), read only.

Each layer is read from the store and decompressed once; its gzip size is the
stored blob when the layer is gzip, and zstd (level 3, what ``--compression
zstd`` writes) is computed here, with the time each takes to decompress (the
cost of unpacking on a pull). Per-package sizes add up the tar entries of
every layer (a later layer's copy of a path replaces the earlier), grouped
by site-packages top-level name and by system directory. Sizes are in MB
(10^6 bytes); the ratio column divides by the first image (the baseline).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import re
import shutil
import sys
import tarfile
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mlpack.oci.image import Image  # noqa: E402

from mlpack.oci.layout import Store  # noqa: E402
from mlpack.settings import Settings  # noqa: E402

SLIM_TAG = "localhost/bench/iris-slim:1"
PLAIN_TAG = "localhost/bench/iris-plain:1"
PLAIN_BASE = "localhost/mlpack/python-plain:3.11"
ZSTD_LEVEL = 3
_SITE = re.compile(r"^(?:opt/venv|usr/local|usr)/lib/python3\.\d+/site-packages/([^/]+)")
_DIST = re.compile(r"^(.+?)-[0-9][^/]*\.(?:dist|egg)-info$")

PLAIN_DOCKERFILE = """\
# The same stack the plain way: Debian python3, a venv, pip install, nothing stripped.
FROM {base}
COPY requirements.lock /tmp/requirements.lock
RUN --mount=type=secret,id=ca-bundle \\
    set -eu; \\
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi; \\
    python3 -m venv /opt/venv; \\
    /opt/venv/bin/pip install -r /tmp/requirements.lock
COPY app/ /opt/mlpack/app/
COPY bundle/ /opt/mlpack/bundle/
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    PYTHONPATH=/opt/mlpack/app MLPACK_BUNDLE=/opt/mlpack/bundle
ENTRYPOINT ["/opt/venv/bin/python", "-m", "mlpack.server"]
"""


@dataclass
class LayerSize:
    created_by: str
    media_type: str
    stored: int
    uncompressed: int
    gzip: int
    zstd: int
    gunzip_s: float
    unzstd_s: float


@dataclass
class ImageSize:
    label: str
    ref: str
    layers: list[LayerSize] = field(default_factory=list)
    groups: dict[str, int] = field(default_factory=dict)

    def total(self, key: str) -> float:
        return sum(getattr(layer, key) for layer in self.layers)


def group_of(name: str) -> str:
    """The report line a tar path counts towards."""
    name = name.lstrip("./")
    m = _SITE.match(name)
    if m:
        top = m.group(1)
        d = _DIST.match(top)
        if d:
            return "site-packages/*.dist-info"
        top = top.split(".", 1)[0] if top.endswith((".py", ".pth")) or ".cpython-" in top else top
        return f"site-packages/{top}"
    parts = name.split("/")
    if parts[:2] == ["usr", "lib"] and len(parts) > 3:
        return "/".join(parts[:3])
    return "/".join(parts[:2]) if len(parts) > 2 else parts[0]


def _decompress(data: bytes, media_type: str) -> bytes:
    if media_type.endswith("zstd"):
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    if media_type.endswith("gzip"):
        return gzip.decompress(data)
    return data


def measure(label: str, store: Store, image: Image) -> ImageSize:
    import zstandard

    out = ImageSize(label=label, ref=image.ref or image.digest)
    history = [h for h in image.config.history if not h.get("empty_layer")]
    files: dict[str, tuple[str, int]] = {}
    for i, desc in enumerate(image.layers):
        blob = store.read_blob(desc["digest"])
        media = desc.get("mediaType", "")
        raw = _decompress(blob, media)
        gz = blob if media.endswith("gzip") else _gzip(raw)
        zs = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(raw)
        t0 = time.perf_counter()
        gzip.decompress(gz)
        t1 = time.perf_counter()
        zstandard.ZstdDecompressor().decompress(zs)
        t2 = time.perf_counter()
        created = history[i].get("created_by", "") if i < len(history) else ""
        out.layers.append(LayerSize(created[:60], media.rsplit(".", 1)[-1], len(blob), len(raw), len(gz), len(zs),
                                    t1 - t0, t2 - t1))
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            for member in tar:
                path = member.name.lstrip("./")
                base = os.path.basename(path)
                if base.startswith(".wh."):
                    gone = os.path.join(os.path.dirname(path), base[4:])
                    for key in [k for k in files if k == gone or k.startswith(gone + "/")]:
                        del files[key]
                    continue
                files[path] = (group_of(path), member.size if member.isfile() else 0)
    for group, size in files.values():
        out.groups[group] = out.groups.get(group, 0) + size
    return out


def _gzip(raw: bytes) -> bytes:
    comp = zlib.compressobj(6, zlib.DEFLATED, 31)
    return comp.compress(raw) + comp.flush()


def mb(n: float) -> str:
    return f"{n / 1e6:8.1f}"


def print_report(images: list[ImageSize], top: int) -> None:
    base = images[0]
    print("\n## Totals (MB; ratio = this image / " + base.label + ")\n")
    print(f"| image | layers | uncompressed | gzip | zstd | ratio unc. | ratio gzip | gunzip s | unzstd s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for img in images:
        print(f"| {img.label} | {len(img.layers)} | {mb(img.total('uncompressed'))} | {mb(img.total('gzip'))} | "
              f"{mb(img.total('zstd'))} | {img.total('uncompressed') / base.total('uncompressed'):.3f} | "
              f"{img.total('gzip') / base.total('gzip'):.3f} | {img.total('gunzip_s'):.2f} | {img.total('unzstd_s'):.2f} |")
    for img in images:
        print(f"\n## Layers of {img.label} ({img.ref})\n")
        print("| # | created by | stored as | uncompressed | gzip | zstd | gunzip s | unzstd s |")
        print("|---:|---|---|---:|---:|---:|---:|---:|")
        for i, layer in enumerate(img.layers):
            print(f"| {i} | `{layer.created_by}` | {layer.media_type} | {mb(layer.uncompressed)} | {mb(layer.gzip)} | "
                  f"{mb(layer.zstd)} | {layer.gunzip_s:.2f} | {layer.unzstd_s:.2f} |")
    keys = sorted({k for img in images for k in img.groups}, key=lambda k: -max(i.groups.get(k, 0) for i in images))
    print(f"\n## Largest packages and directories (MB, uncompressed, top {top})\n")
    print("| path | " + " | ".join(img.label for img in images) + " |")
    print("|---|" + "---:|" * len(images))
    for key in keys[:top]:
        print(f"| {key} | " + " | ".join(mb(img.groups.get(key, 0)).strip() for img in images) + " |")


def capture_bundle(home: Path) -> Path:
    """A captured iris LogisticRegression (kept in the home between runs)."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import mlpack

    path = home / "bundle-iris"
    if not (path / "mlpack.yaml").exists():
        shutil.rmtree(path, ignore_errors=True)
        X, y = load_iris(return_X_y=True)
        model = LogisticRegression(max_iter=500).fit(X, y)
        mlpack.capture(model, X[:4].astype("float32"), name="iris", path=path)
    return path


def build_images(settings: Settings, baseline: str) -> None:
    from mlpack.builder import build
    from mlpack.dockerfile import RenderOptions, render
    from mlpack.oci.base import BASE_REF, BaseOptions, bootstrap, current

    store = Store(settings.store_dir)
    store.init()
    for ref, options in [(BASE_REF, BaseOptions())] + (
            [(PLAIN_BASE, BaseOptions(ref=PLAIN_BASE, variant="minbase", slim=False, purge=(),
                                      purge_essential=(), builder_only=()))]
            if baseline == "plain" else []):
        if current(store, options) is None:  # missing, or made by an older recipe
            bootstrap(settings, options, log=lambda m: print(f"[base] {m}", file=sys.stderr))
    bundle = capture_bundle(settings.home)
    work = settings.home / "contexts"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    t0 = time.perf_counter()
    ctx = render(bundle, RenderOptions(base="local"), out_dir=work / "slim")
    build(ctx, tag=SLIM_TAG, settings=settings)
    print(f"[build] {SLIM_TAG} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    if baseline == "plain":
        plain = work / "plain"
        shutil.copytree(ctx.path, plain)
        (plain / "Dockerfile").write_text(PLAIN_DOCKERFILE.format(base=PLAIN_BASE))
        t0 = time.perf_counter()
        build(plain, tag=PLAIN_TAG, settings=settings)
        print(f"[build] {PLAIN_TAG} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", default=os.environ.get("MLPACK_TEST_HOME", "/var/tmp/mlpack-bench-image"))
    ap.add_argument("--build", action="store_true", help="build the sklearn image (and the plain baseline)")
    ap.add_argument("--baseline", default="plain", help="plain (built), none, or a ref in the home's store")
    ap.add_argument("--image", action="append", default=[], metavar="LABEL=STORE_DIR:REF",
                    help="another image to report, from any OCI layout (read only)")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = ap.parse_args(argv)
    settings = Settings.from_env({"MLPACK_HOME": args.home})
    if args.build:
        build_images(settings, args.baseline)
    store = Store(settings.store_dir)
    wanted: list[tuple[str, Store, str]] = []
    if args.baseline == "plain":
        wanted.append(("plain", store, PLAIN_TAG))
    elif args.baseline != "none":
        wanted.append(("baseline", store, args.baseline))
    for spec in args.image:
        label, _, where = spec.partition("=")
        layout, _, ref = where.partition(":")
        wanted.append((label, Store(layout), ref))
    if args.build or SLIM_TAG in {i.ref for i in store.list()}:
        wanted.append(("slim", store, SLIM_TAG))
    if not wanted:
        ap.error("nothing to report: pass --build or --image")
    images = [measure(label, st, st.resolve(ref)) for label, st, ref in wanted]
    print_report(images, args.top)
    if args.json:
        args.json.write_text(json.dumps([asdict(i) for i in images], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
