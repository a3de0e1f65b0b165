"""Lifecycle across processes: the CLI, ps from a new process, logs, stop, kill, restart, health, rm."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from mlpack.errors import RunError
from mlpack.runtime import Healthcheck, get_container, run
from mlpack.types import Limits
from tests.integration.runtime.test_network import get
from tests.plugins.runtime import leftovers

pytestmark = pytest.mark.runtime


def mlpack_cli(settings, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLPACK_HOME": str(settings.home), "MLPACK_RUNTIME": settings.runtime or ""}
    return subprocess.run([sys.executable, "-m", "mlpack", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


@pytest.mark.parametrize("runtime_name", ["crun", "runc"], indirect=True)
def test_cli_run_ps_logs_stop_rm_across_processes(runtime_settings, busybox_httpd_image):
    r = mlpack_cli(runtime_settings, "run", "-d", "--name", f"web-{runtime_settings.runtime}", "-p", "0:8080",
                   "--cpus", "0.5", "-m", "64m", "--pids-limit", "32", busybox_httpd_image)
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    assert len(cid) == 64
    try:
        ps = mlpack_cli(runtime_settings, "ps", "--format", "json")  # a new process sees it
        rows = [row for row in json.loads(ps.stdout) if row["id"] == cid[:12]]
        assert rows and rows[0]["status"] == "running" and rows[0]["name"] == f"web-{runtime_settings.runtime}"
        c = get_container(runtime_settings, cid[:8])
        assert get(c.url) == b"hello from busybox\n"
        assert c.wait_healthy(timeout=30) == "healthy"  # the image's HEALTHCHECK
        table = mlpack_cli(runtime_settings, "ps").stdout
        assert "(healthy)" in table and f"web-{runtime_settings.runtime}" in table
        stats = mlpack_cli(runtime_settings, "stats", "--no-stream", "--format", "json", cid[:12])
        row = json.loads(stats.stdout)[0]
        assert row["memory_limit"] == 64 * 1024**2 and row["pids_limit"] == 32 and row["pids"] >= 1
        ex = mlpack_cli(runtime_settings, "exec", cid[:12], "cat", "/www/index.html")
        assert ex.returncode == 0 and ex.stdout == "hello from busybox\n"
        began = time.monotonic()
        stop = mlpack_cli(runtime_settings, "stop", "-t", "1", cid[:12])
        took = time.monotonic() - began
        assert stop.returncode == 0, stop.stderr
        assert c.status == "exited", (f"stop returned after {took:.1f}s; status.json: "
                                      f"{(c.dir / 'status.json').read_text()}; processes: {_ps_tree()}")
        running = json.loads(mlpack_cli(runtime_settings, "ps", "--format", "json").stdout)
        assert cid[:12] not in [row["id"] for row in running]
        assert cid[:12] in mlpack_cli(runtime_settings, "ps", "-a").stdout
        inspect = json.loads(mlpack_cli(runtime_settings, "inspect", "--format", "json", cid[:12]).stdout)
        assert inspect["Id"] == cid and inspect["State"]["status"] == "exited"
    finally:
        rm = mlpack_cli(runtime_settings, "rm", "-f", cid)
    assert rm.returncode == 0, rm.stderr
    assert leftovers(runtime_settings, cid) == []


def test_attached_run_streams_output_and_returns_exit_code(runtime_settings, busybox_httpd_image):
    r = mlpack_cli(runtime_settings, "run", "--rm", busybox_httpd_image, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert r.returncode == 3
    assert "out" in r.stdout and "err" in r.stdout


def test_logs_tail_follow_and_exit_code(runtime_settings, busybox_source, cleanup_containers):
    c = run(busybox_source(), command=["sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done; sleep 1; exit 7"],
            ports=(), settings=runtime_settings)
    cleanup_containers.append(c)
    followed = "".join(c.follow_logs())
    assert followed.split() == [f"line{i}" for i in range(1, 6)]
    assert c.wait(10) == 7 and c.status == "exited" and c.oom_killed is False
    assert c.logs(tail=2).split() == ["line4", "line5"]
    r = mlpack_cli(runtime_settings, "logs", "--tail", "1", c.id)
    assert r.stdout == "line5\n"


def test_stop_sends_term_then_kill(runtime_settings, busybox_source, cleanup_containers):
    graceful = run(busybox_source(),
                   command=["sh", "-c", "trap 'echo bye; exit 0' TERM; echo trapped; while :; do sleep 0.1; done"],
                   ports=(), settings=runtime_settings)
    stubborn = run(busybox_source(), command=["sh", "-c", "trap '' TERM; echo trapped; while :; do sleep 0.1; done"],
                   ports=(), settings=runtime_settings)
    cleanup_containers += [graceful, stubborn]
    for c in (graceful, stubborn):  # each says when its trap is set: no signal may come before
        assert "trapped" in next(iter(c.follow_logs()))
    assert graceful.stop(timeout=5) == 0 and "bye" in graceful.logs()
    started = time.monotonic()
    assert stubborn.stop(timeout=1) == 137
    assert time.monotonic() - started < 10


def test_restart_on_failure_counts_and_kill_is_final(runtime_settings, busybox_source, cleanup_containers):
    c = run(busybox_source(), command=["sh", "-c", "echo try; exit 1"], restart="on-failure:2", ports=(),
            settings=runtime_settings)
    cleanup_containers.append(c)
    assert c.wait(30) == 1
    st = c.state()
    assert st["restart_count"] == 2 and c.logs().split() == ["try"] * 3
    always = run(busybox_source(), command=["sleep", "30"], restart="always", ports=(), settings=runtime_settings)
    cleanup_containers.append(always)
    always.kill("KILL")
    assert always.wait(15) == 137  # a kill by the user is not restarted
    assert always.state()["restart_count"] == 0


def test_unhealthy_container_is_reported(runtime_settings, busybox_source, cleanup_containers):
    c = run(busybox_source(), command=["sleep", "30"], ports=(),
            healthcheck=Healthcheck(("/bin/sh", "-c", "exit 1"), interval=0.3, timeout=5, retries=2),
            settings=runtime_settings)
    cleanup_containers.append(c)
    assert c.health == "starting"
    assert c.wait_healthy(timeout=20) == "unhealthy"
    assert c.state()["health"]["failing_streak"] >= 2


def test_oom_shows_in_ps(runtime_settings, busybox_source, cleanup_containers):
    c = run(busybox_source(), command=["awk", 'BEGIN { s = "x"; for (i = 0; i < 40; i++) s = s s }'],
            limits=Limits(memory="24m"), name="oom-me", ports=(), settings=runtime_settings)
    cleanup_containers.append(c)
    c.wait(60)
    row = [r for r in json.loads(mlpack_cli(runtime_settings, "ps", "-a", "--format", "json").stdout)
           if r["name"] == "oom-me"][0]
    assert row["exit_code"] == 137 and row["oom_killed"] is True
    assert "OOMKilled" in row["status_text"]


def test_monitor_death_shows_exited_and_rm_still_cleans(runtime_settings, busybox_source):
    c = run(busybox_source(), command=["sleep", "30"], ports=["0:8080"], settings=runtime_settings)
    st = c.state()
    os.kill(st["monitor_pid"], 9)
    os.kill(st["pid"], 9)
    deadline = time.monotonic() + 10
    while c.status != "exited" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert c.status == "exited"
    with pytest.raises(RunError):
        c.exec(["true"])
    c.remove()
    assert leftovers(runtime_settings, c.id) == []


def test_names_are_unique_and_rm_needs_force(runtime_settings, busybox_source, cleanup_containers):
    c = run(busybox_source(), command=["sleep", "30"], name="only-one", ports=(), settings=runtime_settings)
    cleanup_containers.append(c)
    with pytest.raises(RunError, match="taken"):
        run(busybox_source(), command=["true"], name="only-one", ports=(), settings=runtime_settings)
    with pytest.raises(RunError, match="running"):
        c.remove()
    with c:
        assert get_container(runtime_settings, "only-one").id == c.id
    assert leftovers(runtime_settings, c.id) == []


def test_auto_remove_leaves_nothing(runtime_settings, busybox_source):
    c = run(busybox_source(), command=["true"], rm=True, ports=(), settings=runtime_settings)
    deadline = time.monotonic() + 15
    while c.dir.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert leftovers(runtime_settings, c.id) == []


def test_multithreaded_caller_gets_an_exec_monitor(runtime_settings, busybox_source, cleanup_containers):
    """A notebook kernel has threads: the monitor is then a fresh interpreter, not a fork."""
    import threading

    stop = threading.Event()
    t = threading.Thread(target=stop.wait, daemon=True)
    t.start()
    try:
        c = run(busybox_source(), ports=["0:8080"], settings=runtime_settings)
    finally:
        stop.set()
    cleanup_containers.append(c)
    with open(f"/proc/{c.state()['monitor_pid']}/cmdline", "rb") as fh:
        assert b"mlpack.runtime.monitor" in fh.read()
    assert get(c.url) == b"hello from busybox\n"
    # the monitor is the subreaper: the container's init, once `run --detach` exited, is its child
    with open(f"/proc/{c.state()['pid']}/stat") as fh:
        assert int(fh.read().rpartition(")")[2].split()[1]) == c.state()["monitor_pid"]
    c.remove(force=True)
    assert leftovers(runtime_settings, c.id) == []


@pytest.mark.parametrize("runtime_name", ["crun", "runc"], indirect=True)
def test_a_command_that_cannot_start_is_an_error_and_leaves_nothing(runtime_settings, busybox_source):
    from mlpack.runtime.mounts import mounts_under

    runtime_settings.containers_dir.mkdir(parents=True, exist_ok=True)
    before = set(runtime_settings.containers_dir.glob("*/record.json"))
    mounts_before = set(mounts_under(runtime_settings.containers_dir))
    with pytest.raises(RunError, match="did not start") as err:
        run(busybox_source(), command=["/no/such/program"], ports=["0:8080"], settings=runtime_settings)
    assert "/no/such/program" in str(err.value)
    assert set(runtime_settings.containers_dir.glob("*/record.json")) == before
    assert set(mounts_under(runtime_settings.containers_dir)) == mounts_before


def _ps_tree() -> str:
    return subprocess.run(["ps", "-eo", "pid,ppid,stat,etimes,args", "--forest"], capture_output=True, text=True).stdout[-6000:]
