"""Container handles over state files written by hand (no runtime, no root)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from mlpack.errors import ContainerNotFound, RunError
from mlpack.runtime.container import Container, list_containers
from mlpack.runtime.state import write_json
from mlpack.settings import Settings


def _make(settings: Settings, cid: str, status: dict, **record) -> Container:
    d = settings.containers_dir / cid
    d.mkdir(parents=True)
    write_json(d / "record.json", {"id": cid, "name": record.pop("name", cid[:6]), "cgroups_path": f"/mlpack/{cid}",
                                   **record})
    write_json(d / "status.json", status)
    return Container(d, settings)


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_dead_monitor_and_dead_init_read_as_exited(settings: Settings) -> None:
    c = _make(settings, "a" * 64, {"status": "running", "monitor_pid": _dead_pid(), "pid": _dead_pid()})
    st = c.state()
    assert st["status"] == "exited" and st["exit_code"] == 255 and "monitor died" in st["error"]
    assert c.running() is False
    assert list_containers(settings) == [] and len(list_containers(settings, all=True)) == 1


def test_dead_monitor_but_live_init_reads_as_running(settings: Settings) -> None:
    c = _make(settings, "b" * 64, {"status": "running", "monitor_pid": _dead_pid(), "pid": os.getpid()})
    assert c.status == "running"


def test_exit_code_oom_and_health_come_from_status(settings: Settings) -> None:
    c = _make(settings, "c" * 64, {"status": "exited", "exit_code": 137, "oom_killed": True,
                                   "health": {"status": "unhealthy"}})
    assert (c.exit_code, c.oom_killed, c.health) == (137, True, "unhealthy")
    assert c.wait(timeout=1) == 137
    with pytest.raises(RunError, match="not running"):
        c.kill()


def test_logs_tail_and_url(settings: Settings) -> None:
    c = _make(settings, "d" * 64, {"status": "exited", "exit_code": 0},
              ports=[{"host_port": 18080, "container_port": 9000, "host_ip": "127.0.0.1"},
                     {"host_port": 18081, "container_port": 8080, "host_ip": "0.0.0.0"}],
              exposed=[8080])
    (c.dir / "container.log").write_text("a\nb\nc\n")
    assert c.logs() == "a\nb\nc\n" and c.logs(tail=2) == "b\nc\n" and c.logs(tail=0) == ""
    assert c.url == "http://127.0.0.1:18081"  # the exposed (serving) port wins; 0.0.0.0 is reached on loopback
    assert "".join(c.follow_logs()) == "a\nb\nc\n"  # exited: follow ends after the log


def test_removed_container_is_not_found(settings: Settings, tmp_path: Path) -> None:
    c = Container(settings.containers_dir / ("e" * 64), settings)
    with pytest.raises(ContainerNotFound):
        c.state()
