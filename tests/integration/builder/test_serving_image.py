"""The rendered Dockerfile of a captured model builds, runs, and matches buildah's image."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from mlpack.endpoint import wait_ready
from mlpack.oci.layercache import flatten
from mlpack.oci.layout import Store
from mlpack.settings import Settings
from tests.conftest import require_tool

pytestmark = [pytest.mark.build, pytest.mark.slow]


def _tree(root: Path) -> dict[str, tuple[int, int, int, int]]:
    """path -> (mode, uid, gid, size) of every entry (timestamps left out on purpose)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            size = 0 if os.path.isdir(path) and not os.path.islink(path) else st.st_size
            out[os.path.relpath(path, root)] = (st.st_mode, st.st_uid, st.st_gid, size)
    return out


def test_serving_image_config_and_layers(serving_image) -> None:  # type: ignore[no-untyped-def]
    cfg = serving_image.config.blob["config"]
    assert cfg["User"] == "10001:10001"
    assert cfg["Entrypoint"][-2:] == ["-m", "mlpack.server"]
    assert cfg["ExposedPorts"] == {"8080/tcp": {}, "8081/tcp": {}}  # HTTP and gRPC
    assert cfg["Healthcheck"]["Interval"] == 30 * 10**9 and cfg["Healthcheck"]["StartPeriod"] == 60 * 10**9
    assert any(e.startswith("MLPACK_BUNDLE=") for e in cfg["Env"])
    assert cfg["Labels"]["io.mlpack.model.framework"] == "sklearn"
    history = serving_image.config.blob["history"]
    assert sum(1 for h in history if not h.get("empty_layer")) == len(serving_image.layers)
    assert history[-1]["created_by"].startswith("COPY bundle/") or any(
        h["created_by"].startswith("COPY bundle/") for h in history)


def test_serving_image_runs_and_predicts(serving_image, run_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    from mlpack.runtime import run

    container = run(serving_image.ref, settings=run_settings, name=f"builder-serving-{os.getpid()}")
    try:
        url = container.url
        assert url, "the image EXPOSEs 8080, run should publish it"
        wait_ready(container, timeout=90)
        body = json.dumps({"inputs": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}).encode()
        req = urllib.request.Request(f"{url}/predict", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            answer = json.loads(resp.read())
        assert resp.status == 200 and answer, answer
    finally:
        container.remove(force=True)


def test_buildah_builds_the_same_file_list(serving_context, serving_image, run_settings: Settings,  # type: ignore[no-untyped-def]
                                           tmp_path: Path) -> None:
    buildah = require_tool("buildah")
    skopeo = require_tool("skopeo")
    runc = require_tool("runc")  # crun needs the hybrid-cgroup workaround buildah does not do
    root, runroot = tmp_path / "storage", tmp_path / "run"
    storage = ["--root", str(root), "--runroot", str(runroot), "--storage-driver", "overlay"]
    for base in serving_context.base_images:  # the offline base and its runtime image
        subprocess.run([skopeo, "copy", "-q", f"oci:{run_settings.store_dir}:{base}",
                        f"containers-storage:[overlay@{root}+{runroot}]{base}"], check=True, timeout=300)
    try:
        subprocess.run([buildah, *storage, "bud", "--layers", "--pull=never", "--runtime", runc, "--network", "host",
                        "--secret", "id=ca-bundle,src=/etc/ssl/certs/ca-certificates.crt",
                        "-t", "localhost/buildah-serving:1", str(serving_context.path)],
                       check=True, timeout=1200, capture_output=True)
        layout = tmp_path / "buildah-oci"
        subprocess.run([buildah, *storage, "push", "-q", "localhost/buildah-serving:1", f"oci:{layout}:serving"],
                       check=True, timeout=600)
        theirs = flatten(Store(layout), Store(layout).resolve("serving"), tmp_path / "theirs")
        ours = flatten(Store(run_settings.store_dir), serving_image, tmp_path / "ours")
        a, b = _tree(ours), _tree(theirs)
        assert sorted(set(a) - set(b)) == [] and sorted(set(b) - set(a)) == []
        differ = [(p, a[p], b[p]) for p in sorted(a) if a[p] != b[p]]
        assert differ == [], differ[:20]
    finally:
        subprocess.run([buildah, *storage, "rm", "--all"], capture_output=True, timeout=120)
        subprocess.run(["umount", "-R", str(root / "overlay")], capture_output=True)
        shutil.rmtree(tmp_path / "storage", ignore_errors=True)


def test_building_a_bundle_directory_renders_it_and_reuses_every_layer(  # type: ignore[no-untyped-def]
        sklearn_bundle, serving_image, run_settings: Settings) -> None:
    from mlpack.builder import build

    first = build(sklearn_bundle.path, tag="localhost/mlpack-test/from-bundle:1", settings=run_settings)
    assert first.config.labels["io.mlpack.model.name"] == sklearn_bundle.name
    # the same base layer as the image rendered by hand (the RUN install differs: a bundle built
    # by mlpack installs from its wheel cache, see test_offline_rebuild.py)
    assert first.layers[0]["digest"] == serving_image.layers[0]["digest"]
    events: list[object] = []
    image = build(sklearn_bundle.path, tag="localhost/mlpack-test/from-bundle:2", settings=run_settings,
                  progress=events.append)
    # rendered again into another directory: same content, so the same layers from the cache
    assert [l["digest"] for l in image.layers] == [l["digest"] for l in first.layers]
    assert not any(type(e).__name__ == "StepStarted" and "RUN" in e.instruction for e in events)
