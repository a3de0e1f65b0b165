"""Limits enforced by the kernel, measured from the container's cgroup."""

from __future__ import annotations

import time

import pytest

from mlpack.runtime import run
from mlpack.runtime.cgroups import read_stats
from mlpack.types import Limits

pytestmark = [pytest.mark.runtime, pytest.mark.slow]


@pytest.fixture
def favoured_parent():
    """Give mlpack's parent cgroup the largest CPU weight while the test runs.

    On a shared 2-core CI machine, other runnable processes can hold a
    container below its quota (CFS shares), which would measure the
    machine's load instead of the limit. The quota is what is under test,
    so the parent cgroup gets the top weight and the old value back after.
    """
    from mlpack.runtime.host import CGROUP_PARENT, CGROUP_ROOT, cgroup_mode

    if cgroup_mode() == "v2":
        knob, top = CGROUP_ROOT / CGROUP_PARENT / "cpu.weight", "10000"
    else:
        knob, top = CGROUP_ROOT / "cpu" / CGROUP_PARENT / "cpu.shares", "262144"
    knob.parent.mkdir(exist_ok=True)
    old = knob.read_text().strip() if knob.exists() else None
    if old is not None:
        knob.write_text(top)
    yield
    if old is not None:
        knob.write_text(old)


@pytest.mark.parametrize("runtime_name", ["crun", "runc"], indirect=True)
def test_busy_loop_under_half_a_cpu_uses_half_a_cpu(runtime_settings, busybox_source, cleanup_containers,
                                                    favoured_parent):
    c = run(busybox_source(), command=["sh", "-c", "while :; do :; done"], limits=Limits(cpus=0.5),
            ports=(), settings=runtime_settings)
    cleanup_containers.append(c)
    path = c.record["cgroups_path"]
    # Measure once the loop has run for a whole CFS period (100 ms of CPU), whatever the start-up took.
    deadline = time.monotonic() + 60
    while read_stats(path).cpu_usage_ns < 100_000_000:
        assert time.monotonic() < deadline, "the busy loop never ran"
        time.sleep(0.05)
    samples = []
    # Two windows of 2 s; the CFS quota caps each one. A loaded CI machine can
    # only push the figure down, so the best window is the fair measure.
    for _ in range(3):
        a = read_stats(path)
        time.sleep(2.0)
        b = read_stats(path)
        samples.append((b.cpu_usage_ns - a.cpu_usage_ns) / ((b.when - a.when) * 1e9))
        if 0.45 <= samples[-1] <= 0.55:
            break
    best = max(samples)
    assert 0.45 <= best <= 0.55, samples
    assert all(s <= 0.55 for s in samples), samples
    stats = c.stats(interval=0.5)
    assert stats["cpu_percent"] is not None and stats["cpu_percent"] <= 56


@pytest.mark.parametrize("runtime_name", ["crun", "runc"], indirect=True)
def test_allocating_past_memory_is_oom_killed(runtime_settings, busybox_source, cleanup_containers):
    # awk doubles a string until the cgroup's 32 MiB are gone (2**40 bytes would be the end)
    c = run(busybox_source(), command=["awk", 'BEGIN { s = "x"; for (i = 0; i < 40; i++) s = s s; print length(s) }'],
            limits=Limits(memory="32m"), ports=(), settings=runtime_settings)
    cleanup_containers.append(c)
    assert c.wait(timeout=60) == 137
    assert c.oom_killed is True
    st = c.state()
    assert st["status"] == "exited" and st["exit_code"] == 137


def test_memory_limit_and_swap_are_equal_in_the_cgroup(runtime_settings, busybox_source, cleanup_containers):
    from mlpack.runtime.host import CGROUP_ROOT, cgroup_mode

    c = run(busybox_source(), command=["sleep", "30"], limits=Limits(memory="48m", pids=30), ports=(),
            settings=runtime_settings)
    cleanup_containers.append(c)
    rel = c.record["cgroups_path"].strip("/")
    if cgroup_mode() == "v2":
        assert (CGROUP_ROOT / rel / "memory.max").read_text().strip() == str(48 * 1024**2)
        assert (CGROUP_ROOT / rel / "memory.swap.max").read_text().strip() == "0"
    else:
        mem = CGROUP_ROOT / "memory" / rel
        assert int((mem / "memory.limit_in_bytes").read_text()) == 48 * 1024**2
        assert int((mem / "memory.memsw.limit_in_bytes").read_text()) == 48 * 1024**2
    s = c.stats(interval=0.1)
    assert s["memory_limit"] == 48 * 1024**2 and s["pids_limit"] == 30


@pytest.mark.parametrize("runtime_name", ["crun", "runc"], indirect=True)
def test_fork_bomb_stops_at_the_pids_limit(runtime_settings, busybox_source, cleanup_containers):
    # Bounded: at most 200 forks, each child sleeps 20 s; the limit is 20. The
    # forking shell dies at the first failed fork (ash does), its parent reports.
    script = ("sh -c 'i=0; while [ $i -lt 200 ]; do sleep 20 & i=$((i+1)); done'; "
              "echo forks-done; exec sleep 20")
    c = run(busybox_source(), command=["sh", "-c", script], limits=Limits(pids=20), ports=(),
            settings=runtime_settings)
    cleanup_containers.append(c)
    deadline = time.monotonic() + 30
    while "forks-done" not in c.logs() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "forks-done" in c.logs()
    stats = read_stats(c.record["cgroups_path"])
    assert stats.pids_limit == 20
    assert 15 <= stats.pids_current <= 20  # the sleeps that got a pid, and no more
    assert "can't fork" in c.logs()
    assert c.status == "running"  # the container survives its own fork bomb
    c.remove(force=True)
