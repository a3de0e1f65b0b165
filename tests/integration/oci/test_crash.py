"""SIGKILL an mlpack pull or load at chosen points: the store stays consistent.

Each kill lands at a fault-injection point of the store (mlpack.oci.faults,
``MLPACK_FAULT=<point>:<n>``), so every run kills the process in the same
place on a fast machine and a slow one: in the middle of a blob, with a blob
complete but unnamed, named but the directory not synced, and with index.json
written but not renamed. After each kill ``verify()`` must find no problem
(leftover temp files are garbage, not corruption), the index must name no
image, and the same operation run again on the leftovers must succeed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mlpack.oci import faults
from mlpack.oci.archive import save
from mlpack.oci.layer import Entry, write_entries
from mlpack.oci.layout import Store
from mlpack.oci.registry import push
from mlpack.settings import Settings
from mlpack.oci.validate import verify

ROOT = Path(__file__).resolve().parents[3]
# (point, hit): every hit number is reached by any pull or load of the image
# below, whose 6 blobs (4 layers, config, manifest) each take at least one write.
KILLS = [
    ("blob.write", 1),            # first chunk of the first blob written
    ("blob.write", 5),            # later, in another blob or further into one
    ("blob.before-rename", 2),    # second blob complete and fsynced, not named
    ("blob.after-rename", 3),     # third blob named, directory not synced
    ("file.before-rename", 1),    # index.json written beside, not renamed
]


def _mlpack(home: Path, *args: str, fault: str | None = None) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, MLPACK_HOME=str(home), PYTHONPATH=str(ROOT))
    env.pop(faults.ENV, None)
    if fault:
        env[faults.ENV] = fault
    return subprocess.run([sys.executable, "-m", "mlpack", *args], env=env, timeout=120,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)


@pytest.fixture(scope="module")
def crash_image(tmp_path_factory: pytest.TempPathFactory, local_registry):  # type: ignore[no-untyped-def]
    work = tmp_path_factory.mktemp("crash")
    settings = Settings.from_env({"MLPACK_HOME": str(work / "src")})
    store = Store(settings.store_dir)
    rng = random.Random(7)
    layers = [write_entries(store, [Entry(f"data/{i}/blob.bin", data=rng.randbytes(6 << 20)),
                                    Entry(f"data/{i}/small", data=b"x" * i)]) for i in range(4)]
    digest = store.put_image({"config": {"Cmd": ["true"]}}, layers, ref="localhost/crash/img:1")
    ref = local_registry.ref("crash/img:1")
    push("localhost/crash/img:1", ref, settings=settings)
    archive = work / "img.tar"
    save(store, ["localhost/crash/img:1"], archive, format="oci-archive")
    return ref, archive, digest


def _empty(store: Store) -> None:
    for entry in list(store.index()["manifests"]):
        store.delete(entry["digest"])
    store.gc(grace_s=0)
    assert not list((store.root / "blobs" / "sha256").iterdir())


@pytest.mark.parametrize("op", ["pull", "load"])
def test_sigkill_at_each_fault_point_keeps_store_consistent(tmp_path: Path, crash_image, op: str) -> None:  # type: ignore[no-untyped-def]
    ref, archive, digest = crash_image
    home = tmp_path / "home"
    store = Store(home / "store")
    store.init()
    args = ("pull", "-q", ref) if op == "pull" else ("load", "-q", "-i", str(archive))
    for point, hit in KILLS:
        _empty(store)
        killed = _mlpack(home, *args, fault=f"{point}:{hit}")
        where = f"{op} killed at {point}:{hit}"
        assert killed.returncode == -signal.SIGKILL, (
            f"{where}: the fault point was not reached (exit {killed.returncode}): {killed.stderr!r}")
        report = verify(store)
        assert report.ok, f"{where}: {report.problems}"
        assert store.index()["manifests"] == [], f"{where}: the index names an incomplete image"
        tmp = [g for g in report.garbage if os.path.basename(g).startswith(".tmp-")]
        if point.startswith("blob.write") or point == "blob.before-rename":
            assert tmp, f"{where}: no temp blob was left; the kill did not land mid-blob"
        if point == "file.before-rename":
            assert any(p.name.startswith(".tmp-index.json") for p in store.root.iterdir()), where
        # the next run copes with whatever the kill left behind
        again = _mlpack(home, *args)
        assert again.returncode == 0, f"after {where}: {again.stderr.decode(errors='replace')}"
        assert store.resolve(digest).digest == digest
        report = verify(store)
        assert report.ok, f"after {where}: {report.problems}"
        for entry in store.index()["manifests"]:
            assert store.resolve(entry["digest"]).digest == digest
    store.gc(grace_s=0)
    report = verify(store)
    assert report.ok and not report.garbage, report
