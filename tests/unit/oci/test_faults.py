"""The fault-injection points kill exactly at the requested hit, and cost nothing unset."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from mlpack.oci import faults


def _run(code: str, fault: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != faults.ENV}
    if fault:
        env[faults.ENV] = fault
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)


CODE = ("from mlpack.oci import faults\n"
        "for i in range(1, 6):\n"
        "    print(i, flush=True)\n"
        "    faults.point('blob.write')\n"
        "    faults.point('blob.after-rename')\n")


def test_kills_at_the_nth_hit_of_its_point() -> None:
    proc = _run(CODE, "blob.write:3")
    assert proc.returncode == -signal.SIGKILL
    assert proc.stdout.split() == ["1", "2", "3"]


def test_other_points_and_unreached_hits_do_nothing() -> None:
    assert _run(CODE, "file.before-rename:1").returncode == 0
    assert _run(CODE, "blob.write:9").returncode == 0
    proc = _run(CODE, None)
    assert proc.returncode == 0 and proc.stdout.split() == ["1", "2", "3", "4", "5"]


def test_points_are_named_in_the_module() -> None:
    for name in ("blob.write", "blob.before-rename", "blob.after-rename", "file.before-rename"):
        assert name in faults.POINTS
