"""Option parsing, CDI resolution, cgroup mode and stats reading on fake trees (no root)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mlpack.oci.config import HealthcheckConfig
from mlpack.errors import RunError
from mlpack.runtime.cdi import gpu_device_names, resolve_devices, spec_dirs
from mlpack.runtime.cgroups import oom_kills, read_stats
from mlpack.runtime.host import Runtime, cgroup_mode
from mlpack.runtime.options import (
    PortMapping, RestartPolicy, RunOptions, parse_healthcheck, parse_port, parse_ports, parse_restart, parse_volume,
)
from mlpack.runtime.state import find_container_dir, write_json
from mlpack.settings import Settings


def test_ports() -> None:
    assert parse_port("8080:80") == PortMapping(8080, 80, "127.0.0.1")
    assert parse_port("0.0.0.0:8080:80/tcp") == PortMapping(8080, 80, "0.0.0.0")
    assert parse_port("[::1]:8080:80") == PortMapping(8080, 80, "::1")
    assert parse_port("80") == PortMapping(0, 80)
    assert parse_ports({8080: 18080}) == (PortMapping(18080, 8080),)
    for bad in ("x:80", "8080:70000", "8080:80/udp", "nohost:1:2"):
        with pytest.raises(RunError):
            parse_port(bad)


def test_restart_policy() -> None:
    assert parse_restart("on-failure:3") == RestartPolicy("on-failure", 3)
    assert parse_restart(None) == RestartPolicy("no", 0)
    with pytest.raises(RunError):
        parse_restart("always:3")
    p = RestartPolicy("on-failure", 2)
    assert p.should_restart(1, 0, False) and p.should_restart(1, 1, False)
    assert not p.should_restart(1, 2, False) and not p.should_restart(0, 0, False)
    assert not RestartPolicy("always").should_restart(0, 9, True)  # the user stopped it
    with pytest.raises(RunError):
        RunOptions(restart=RestartPolicy("always"), auto_remove=True)
    with pytest.raises(RunError):
        RunOptions(network="bridge")


def test_volumes(tmp_path: Path) -> None:
    m = parse_volume(f"{tmp_path}:/data:ro")
    assert (m.source, m.target, m.readonly) == (str(tmp_path), "/data", True)
    assert parse_volume("tmpfs:/scratch").type == "tmpfs"
    with pytest.raises(RunError, match="absolute"):
        parse_volume("named:/data")


def test_healthcheck_from_image_config() -> None:
    hc = parse_healthcheck(HealthcheckConfig.from_json(
        {"Test": ["CMD-SHELL", "curl -f localhost"], "Interval": 5_000_000_000, "Retries": 2}))
    assert hc.test == ("/bin/sh", "-c", "curl -f localhost") and hc.interval == 5.0 and hc.retries == 2
    assert hc.timeout == 30.0
    assert parse_healthcheck(HealthcheckConfig.from_json({"Test": ["NONE"]})) is None
    assert parse_healthcheck(None) is None
    assert parse_healthcheck(HealthcheckConfig(("CMD", "/bin/check", "x"))).test == ("/bin/check", "x")


def _cdi(tmp_path: Path, fmt: str = "yaml") -> Path:
    d = tmp_path / "cdi"
    d.mkdir()
    spec = {"cdiVersion": "0.6.0", "kind": "nvidia.com/gpu",
            "devices": [{"name": n, "containerEdits": {"deviceNodes": [
                {"path": f"/dev/nvidia{n}", "type": "c", "major": 195, "minor": int(n)}]}} for n in ("1", "0", "10")],
            "containerEdits": {"env": ["NVIDIA_VISIBLE_DEVICES=void"],
                               "deviceNodes": [{"path": "/dev/nvidiactl", "type": "c", "major": 195, "minor": 255}]}}
    (d / f"nvidia.{fmt}").write_text(yaml.safe_dump(spec) if fmt == "yaml" else json.dumps(spec))
    return d


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_cdi_gpu_requests(tmp_path: Path, fmt: str) -> None:
    dirs = (str(_cdi(tmp_path, fmt)),)
    assert gpu_device_names(("all",), dirs) == ["nvidia.com/gpu=0", "nvidia.com/gpu=1", "nvidia.com/gpu=10"]
    assert gpu_device_names(2, dirs) == ["nvidia.com/gpu=0", "nvidia.com/gpu=1"]
    assert gpu_device_names(("1",), dirs) == ["nvidia.com/gpu=1"]
    assert gpu_device_names(None, dirs) == []
    edits = resolve_devices(["nvidia.com/gpu=1"], dirs)
    assert [d.path for d in edits.devices] == ["/dev/nvidiactl", "/dev/nvidia1"]
    assert [d.rule()["minor"] for d in edits.devices] == [255, 1]
    assert edits.env == ["NVIDIA_VISIBLE_DEVICES=void"]
    with pytest.raises(RunError, match="4 GPUs requested but the CDI spec lists 3"):
        gpu_device_names(4, dirs)
    with pytest.raises(RunError, match="not defined"):
        resolve_devices(["nvidia.com/gpu=7"], dirs)


def test_cdi_missing_spec_tells_how_to_generate(tmp_path: Path) -> None:
    with pytest.raises(RunError) as err:
        gpu_device_names(1, (str(tmp_path),))
    assert "nvidia-ctk cdi generate" in str(err.value)
    with pytest.raises(RunError) as err:
        resolve_devices(["nvidia.com/gpu=0"], (str(tmp_path),))
    assert "nvidia-ctk cdi generate" in str(err.value)
    assert spec_dirs({}) == ("/etc/cdi", "/var/run/cdi")
    assert spec_dirs({"MLPACK_CDI_SPEC_DIRS": "/a:/b"}) == ("/a", "/b")


def test_cdi_refuses_nodes_outside_dev_and_bad_hooks(tmp_path: Path) -> None:
    d = tmp_path / "cdi"
    d.mkdir()
    (d / "x.json").write_text(json.dumps({"cdiVersion": "0.6.0", "kind": "x.com/dev", "devices": [
        {"name": "a", "containerEdits": {"deviceNodes": [{"path": "/etc/shadow", "type": "c", "major": 1, "minor": 1}]}},
        {"name": "b", "containerEdits": {"hooks": [{"hookName": "createContainer", "path": "relative/hook"}]}}]}))
    with pytest.raises(RunError, match="outside /dev"):
        resolve_devices(["x.com/dev=a"], (str(d),))
    with pytest.raises(RunError, match="hook"):
        resolve_devices(["x.com/dev=b"], (str(d),))


def test_cgroup_mode_and_stats_on_fake_trees(tmp_path: Path) -> None:
    v2 = tmp_path / "v2"
    (v2 / "mlpack" / "c1").mkdir(parents=True)
    (v2 / "cgroup.controllers").write_text("cpu memory pids\n")
    c = v2 / "mlpack" / "c1"
    (c / "cpu.stat").write_text("usage_usec 2500\nuser_usec 2000\n")
    (c / "memory.current").write_text("1048576\n")
    (c / "memory.max").write_text("max\n")
    (c / "pids.current").write_text("3\n")
    (c / "pids.max").write_text("64\n")
    (c / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n")
    assert cgroup_mode(v2) == "v2"
    s = read_stats("/mlpack/c1", v2)
    assert (s.cpu_usage_ns, s.memory_usage, s.memory_limit, s.pids_current, s.pids_limit, s.oom_kills) == (
        2_500_000, 1048576, None, 3, 64, 1)

    v1 = tmp_path / "v1"
    for ctrl in ("memory", "cpuacct", "pids"):
        (v1 / ctrl / "mlpack" / "c1").mkdir(parents=True)
    (v1 / "unified").mkdir()
    (v1 / "unified" / "cgroup.controllers").write_text("")
    assert cgroup_mode(v1) == "hybrid"
    mem = v1 / "memory" / "mlpack" / "c1"
    (mem / "memory.usage_in_bytes").write_text("3000000\n")
    (mem / "memory.stat").write_text("cache 100\ntotal_inactive_file 1000000\n")
    (mem / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    (mem / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    (v1 / "cpuacct" / "mlpack" / "c1" / "cpuacct.usage").write_text("777\n")
    (v1 / "pids" / "mlpack" / "c1" / "pids.current").write_text("1\n")
    (v1 / "pids" / "mlpack" / "c1" / "pids.max").write_text("max\n")
    s = read_stats("/mlpack/c1", v1)
    assert (s.cpu_usage_ns, s.memory_usage, s.memory_limit, s.pids_current, s.pids_limit) == (
        777, 2000000, None, 1, None)
    assert oom_kills("/mlpack/c1", v1) == 2
    (v1 / "unified" / "cgroup.controllers").unlink()
    assert cgroup_mode(v1) == "v1"


def test_crun_is_wrapped_only_on_hybrid_hosts() -> None:
    crun = Runtime("crun", "/usr/bin/crun", Path("/s"), "hybrid")
    argv = crun.argv("state", "x")
    assert argv[:4] == ["unshare", "--mount", "--propagation", "private"]
    assert "umount -l /sys/fs/cgroup/unified" in argv[6] and argv[-4:] == ["--root", "/s", "state", "x"]
    assert Runtime("crun", "/usr/bin/crun", Path("/s"), "v2").argv("state", "x") == [
        "/usr/bin/crun", "--root", "/s", "state", "x"]
    assert Runtime("runc", "/usr/sbin/runc", Path("/s"), "hybrid").argv("kill", "x")[0] == "/usr/sbin/runc"


def test_find_container_by_prefix_or_name(tmp_path: Path) -> None:
    for cid, name in (("abc123" + "0" * 58, "web"), ("abd999" + "0" * 58, "db")):
        (tmp_path / cid).mkdir()
        write_json(tmp_path / cid / "record.json", {"id": cid, "name": name})
    assert find_container_dir(tmp_path, "abc").name.startswith("abc123")
    assert find_container_dir(tmp_path, "db").name.startswith("abd999")
    with pytest.raises(RunError, match="matches 2"):
        find_container_dir(tmp_path, "ab")
    with pytest.raises(LookupError):
        find_container_dir(tmp_path, "zzz")
    with pytest.raises(LookupError):
        find_container_dir(tmp_path, "../etc")


def test_host_info_names_runtime_and_cgroup_mode(settings) -> None:
    from mlpack.runtime import host_info

    info = host_info(settings)
    assert info["cgroup_mode"] in ("v1", "v2", "hybrid")
    assert info["runtime"] in ("crun", "runc", None)
    if info["runtime"]:
        assert info["runtime_version"].startswith(info["runtime"])
    forced = host_info(Settings.from_env({"MLPACK_HOME": str(settings.home), "MLPACK_RUNTIME": "/nonexistent/rt"}))
    assert forced["runtime"] is None and "no OCI runtime" in forced["runtime_error"]


def test_the_runtime_lookup_on_path_is_shutil_which(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """host._which (`mlpack run` does not import shutil) answers as shutil.which does."""
    import shutil

    from mlpack.runtime.host import _which

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "tool").write_text("not executable")
    (tmp_path / "a" / "crun").mkdir()  # a directory is no program
    (tmp_path / "b" / "tool").write_text("#!/bin/sh\n")
    (tmp_path / "b" / "tool").chmod(0o755)
    (tmp_path / "b" / "crun").write_text("#!/bin/sh\n")
    (tmp_path / "b" / "crun").chmod(0o755)
    for path in (f"{tmp_path}/a:{tmp_path}/b", f"{tmp_path}/a", "", None):
        if path is None:
            monkeypatch.delenv("PATH", raising=False)
        else:
            monkeypatch.setenv("PATH", path)
        for name in ("tool", "crun", "sh", "absent"):
            assert _which(name) == shutil.which(name), (path, name)
