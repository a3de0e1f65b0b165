"""`mlpack build` against `buildah bud` on the same contexts: image config and files.

Each context of fidelity_contexts.py is built by both; the final root
filesystems (type, mode, owner, content or link target; mtimes left out)
and the config fields a Dockerfile sets are compared. A difference must be
listed in the context's ``differs`` (each one documented in
docs/dockerfile.md as a deliberate BuildKit-compatible choice), so a new
difference fails, and so does one that went away. Cold and cached build
times of both are written to ``<run home>/buildah-fidelity.json``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
import time
from pathlib import Path

import pytest

from mlpack.builder import build
from mlpack.builder.check import check
from mlpack.oci.layout import Store
from mlpack.settings import Settings
from tests.integration.dockerfile.conftest import Buildah, _lowercase_path
from tests.integration.dockerfile.fidelity_contexts import CONTEXTS, Context

pytestmark = [pytest.mark.slow, pytest.mark.build, pytest.mark.timeout(1800)]

CONFIG_KEYS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "Labels", "ExposedPorts", "Volumes",
               "StopSignal", "OnBuild", "Healthcheck", "Shell")
# Files buildah's chroot isolation leaves as mount points of a RUN; not content.
RUN_MOUNTPOINTS = {"etc/hosts", "etc/resolv.conf", "etc/hostname", "run", "run/.containerenv"}
TIMES: dict[str, dict[str, float]] = {}


BASE = "localhost/fidelity/busybox:1"


@pytest.fixture(scope="module")
def base_in_both(buildah: Buildah, busybox_httpd_image: str, run_settings: Settings, tmp_path_factory) -> str:
    """busybox rebuilt by mlpack (which gives it a history: buildah 1.28 refuses bases without
    one), in mlpack's store and in buildah's storage."""
    ctx = tmp_path_factory.mktemp("fidelity-base")
    (ctx / "Dockerfile").write_text(f"FROM {busybox_httpd_image}\nLABEL fidelity.base=1\n")
    build(ctx, tag=BASE, settings=run_settings, source_date_epoch=1_700_000_000)
    if not buildah.has_image(BASE):
        out = buildah.run("pull", "-q", f"oci:{_lowercase_path(run_settings.store_dir)}:{BASE}")
        if not buildah.has_image(BASE):
            buildah.run("tag", out.stdout.strip().splitlines()[-1], BASE)
    return BASE


def _write(ctx: Context, root: Path, base: str) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Dockerfile").write_text(ctx.dockerfile.replace("{BASE}", base))
    for name, data in ctx.files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
        path.chmod(ctx.modes.get(name, 0o644))


def _tree(layers: list[bytes]) -> dict[str, tuple]:
    """Final root filesystem of ``layers`` (uncompressed tars) with whiteouts applied."""
    tree: dict[str, tuple] = {}
    for data in layers:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            members = tar.getmembers()
            for m in members:
                name = m.name.removeprefix("./").rstrip("/") if m.name not in (".", "./") else ""
                parent, _, base = name.rpartition("/")
                if base == ".wh..wh..opq":
                    for key in [k for k in tree if k.startswith(parent + "/")]:
                        del tree[key]
                    continue
                if base.startswith(".wh."):
                    gone = (parent + "/" if parent else "") + base[4:]
                    for key in [k for k in tree if k == gone or k.startswith(gone + "/")]:
                        del tree[key]
                    continue
                if not name:
                    continue
                if m.islnk():
                    target = m.linkname.removeprefix("./")
                    tree[name] = tree.get(target, ("missing hardlink target", target))
                elif m.isreg():
                    f = tar.extractfile(m)
                    digest = hashlib.sha256(f.read() if f else b"").hexdigest()[:16]
                    tree[name] = ("file", oct(m.mode & 0o7777), m.uid, m.gid, digest)
                elif m.issym():
                    tree[name] = ("symlink", m.linkname, m.uid, m.gid)
                elif m.isdir():
                    tree[name] = ("dir", oct(m.mode & 0o7777), m.uid, m.gid)
                else:
                    tree[name] = (f"type {m.type!r}", oct(m.mode & 0o7777), m.uid, m.gid)
    return tree


def _decompress(data: bytes) -> bytes:
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def _mlpack_image(settings: Settings, root: Path, ctx: Context) -> tuple[dict, dict[str, tuple], float, float]:
    tag = f"localhost/fidelity/{ctx.name}:mlpack"
    t0 = time.monotonic()
    build(root, tag=tag, settings=settings, target=ctx.target, no_cache=True)
    cold = time.monotonic() - t0
    t0 = time.monotonic()
    image = build(root, tag=tag, settings=settings, target=ctx.target)
    cached = time.monotonic() - t0
    store = Store(settings.store_dir)
    layers = [_decompress(store.blob_path(layer["digest"]).read_bytes()) for layer in image.layers]
    return dict(image.config.blob), _tree(layers), cold, cached


def _buildah_image(buildah: Buildah, root: Path, ctx: Context, work: Path) -> tuple[dict, dict[str, tuple], float, float]:
    tag = f"localhost/fidelity/{ctx.name}:buildah"
    args = ["bud", "--isolation", "chroot", "--layers", "--format", "docker", "--pull=never", "-t", tag]
    if ctx.target:
        args += ["--target", ctx.target]
    t0 = time.monotonic()
    buildah.run(*args, "--no-cache", str(root))
    cold = time.monotonic() - t0
    t0 = time.monotonic()
    buildah.run(*args, str(root))
    cached = time.monotonic() - t0
    layout = work / "layout"
    buildah.run("push", "-q", tag, f"oci:{layout}:latest")
    blob = lambda digest: (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()  # noqa: E731
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads(blob(index["manifests"][-1]["digest"]))
    layers = [_decompress(blob(layer["digest"])) for layer in manifest["layers"]]
    docker = buildah.inspect(tag).get("Docker", {})
    config = {"config": dict(docker.get("config") or {}), "author": docker.get("author")}
    labels = {k: v for k, v in (config["config"].get("Labels") or {}).items() if k != "io.buildah.version"}
    config["config"]["Labels"] = labels  # buildah's own version label is no part of the Dockerfile
    return config, _tree(layers), cold, cached


def _differences(mine: tuple[dict, dict], theirs: tuple[dict, dict]) -> dict[str, tuple]:
    out: dict[str, tuple] = {}
    for key in CONFIG_KEYS:
        a, b = mine[0]["config"].get(key) or None, theirs[0]["config"].get(key) or None
        if a != b:
            out[f"config:{key}"] = (a, b)
    if (mine[0].get("author") or None) != (theirs[0].get("author") or None):
        out["config:author"] = (mine[0].get("author"), theirs[0].get("author"))
    for path in sorted(set(mine[1]) | set(theirs[1])):
        if path in RUN_MOUNTPOINTS:
            continue
        a, b = mine[1].get(path), theirs[1].get(path)
        if a != b:
            out[f"file:{path}"] = (a, b)
    return out


@pytest.mark.parametrize("ctx", CONTEXTS, ids=[c.name for c in CONTEXTS])
def test_same_image_as_buildah(ctx: Context, buildah: Buildah, base_in_both: str, run_settings: Settings,
                               run_home: Path, tmp_path: Path) -> None:
    root = tmp_path / "ctx"
    _write(ctx, root, base_in_both)
    ours = _mlpack_image(run_settings, root, ctx)
    if ctx.buildah_refuses is not None:
        with pytest.raises(AssertionError, match=re.escape(ctx.buildah_refuses)):
            _buildah_image(buildah, root, ctx, tmp_path)
        return
    theirs = _buildah_image(buildah, root, ctx, tmp_path)
    TIMES[ctx.name] = {"mlpack_cold_s": round(ours[2], 3), "mlpack_cached_s": round(ours[3], 3),
                       "buildah_cold_s": round(theirs[2], 3), "buildah_cached_s": round(theirs[3], 3)}
    (run_home / "buildah-fidelity.json").write_text(json.dumps(TIMES, indent=2))
    diff = _differences(ours[:2], theirs[:2])
    assert set(diff) == set(ctx.differs), json.dumps(diff, indent=1, default=str)


@pytest.mark.parametrize("ctx", CONTEXTS, ids=[c.name for c in CONTEXTS])
def test_check_finds_no_error_in_the_contexts(ctx: Context) -> None:
    """`mlpack build --check` accepts every context both builders build (warnings aside)."""
    findings = check(ctx.dockerfile.replace("{BASE}", BASE), target=ctx.target)
    assert [f for f in findings if f.severity == "error"] == []
    assert bool(findings) == (ctx.name == "tabs-legacy")  # the legacy KEY value forms warn
