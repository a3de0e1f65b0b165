"""SIGKILL an mlpack pull or load at random moments: the store stays consistent.

A bounded number of iterations (15); after every kill ``verify()`` must find
no problem (leftover temp files are garbage, not corruption), and the next
operation, run to completion at the end, must succeed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlpack.oci.archive import save
from mlpack.oci.layer import Entry, write_entries
from mlpack.oci.layout import Store
from mlpack.oci.registry import push
from mlpack.settings import Settings

ITERATIONS = 15
ROOT = Path(__file__).resolve().parents[3]


def _mlpack(home: Path, *args: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, MLPACK_HOME=str(home), PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "mlpack", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


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


def _wait_for_writes(blobs: Path, proc: subprocess.Popen[bytes], limit_s: float = 30.0) -> float:
    """Wait until the process starts writing blobs (past interpreter start-up); returns when."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and proc.poll() is None:
        if blobs.is_dir() and any(n.startswith(".tmp-") for n in os.listdir(blobs)):
            break
        time.sleep(0.005)
    return time.monotonic()


def test_sigkill_during_pull_and_load_keeps_store_consistent(tmp_path: Path, crash_image) -> None:  # type: ignore[no-untyped-def]
    ref, archive, digest = crash_image
    home = tmp_path / "home"
    store = Store(home / "store")
    blobs = home / "store" / "blobs" / "sha256"
    # how long the writing part of a whole operation takes here, to spread the kills over it
    proc = _mlpack(home, "pull", "-q", ref)
    writing = _wait_for_writes(blobs, proc)
    assert proc.wait(120) == 0, proc.stderr.read() if proc.stderr else ""
    span = max(time.monotonic() - writing, 0.2)
    rng = random.Random(int(os.environ.get("MLPACK_CRASH_SEED", "1234")))
    killed = mid_blob = 0
    for i in range(ITERATIONS):
        if store.index()["manifests"]:
            # the last run finished: empty the store so there is work to interrupt; after a
            # kill the leftovers stay, and the next run has to cope with them
            for entry in list(store.index()["manifests"]):
                store.delete(entry["digest"])
            store.gc(grace_s=0)
        args = ("pull", "-q", ref) if i % 2 == 0 else ("load", "-q", "-i", str(archive))
        proc = _mlpack(home, *args)
        _wait_for_writes(blobs, proc)
        time.sleep(rng.uniform(0, span * 1.2))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        status = proc.wait(60)
        if status != -signal.SIGKILL:
            assert status == 0, proc.stderr.read() if proc.stderr else ""
            assert store.resolve(digest).digest == digest
        report = store.verify()
        assert report.ok, f"iteration {i} ({args[0]}): {report.problems}"
        mid_blob += any("/.tmp-" in g for g in report.garbage)
        for entry in store.index()["manifests"]:
            # whatever the index names must be complete
            assert store.resolve(entry["digest"]).digest == digest
    print(f"crash test: {killed}/{ITERATIONS} runs killed, {mid_blob} in the middle of a blob; store always consistent")
    assert killed >= ITERATIONS // 3, f"only {killed} of {ITERATIONS} runs were still going when killed"
    assert mid_blob >= 1, "no kill landed in the middle of a blob write; the test proved little"
    for args in (("pull", "-q", ref), ("load", "-q", "-i", str(archive))):
        proc = _mlpack(home, *args)
        assert proc.wait(120) == 0, proc.stderr.read() if proc.stderr else ""
    assert store.resolve(ref).digest == digest
    assert store.verify().ok
    store.gc(grace_s=0)
    assert not store.verify().garbage
