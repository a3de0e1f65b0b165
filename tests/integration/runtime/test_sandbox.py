"""The builder's sandbox with real crun/runc over a real overlay."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlpack.errors import RunError
from mlpack.runtime.sandbox import Mount, SandboxSpec, run_sandbox
from mlpack.types import Limits

pytestmark = pytest.mark.runtime


def _no_sandbox_left(settings) -> None:
    sb = settings.home / "sandbox"
    assert not sb.exists() or not any(sb.iterdir()), list(sb.iterdir())
    # nor the runtime's state of a sandbox's container (`run` removes it when its process exits;
    # the sandbox deletes it when the runtime itself was killed)
    states = settings.home / "runtime"
    left = sorted(states.glob("*/mlpack-sbx-*")) if states.is_dir() else []
    assert not left, left
    with open("/proc/self/mountinfo") as fh:
        # only this home's: other engineers' builds run sandboxes concurrently
        assert not [line for line in fh if f"{settings.home}/sandbox/" in line]


@pytest.mark.parametrize("runtime_name", ["crun", "runc"], indirect=True)
def test_runs_streams_output_and_keeps_changes_in_upper(runtime_settings, busybox_rootfs, tmp_path):
    upper = tmp_path / "upper"
    upper.mkdir()
    lines: list[str] = []
    spec = SandboxSpec(
        lowerdirs=[busybox_rootfs], upperdir=upper,
        args=["/bin/sh", "-c", "echo one; echo two >&2; echo made > /etc/made; rm /www/index.html; "
              "id -u; pwd; echo $GREETING; exit 3"],
        env={"GREETING": "hi"}, cwd="/tmp",
    )
    result = run_sandbox(spec, settings=runtime_settings, on_output=lines.append)
    assert result.exit_code == 3
    # stdout and stderr are merged; runc copies the two through separate
    # goroutines, so only the order within each stream is certain
    out = [line for line in result.output.splitlines() if line != "two"]
    assert out == ["one", "0", "/tmp", "hi"] and "two\n" in lines
    assert "".join(lines) == result.output
    assert (upper / "etc" / "made").read_text() == "made\n"
    # the delete of a lower file is an overlay whiteout (char 0/0) in upper
    wh = upper / "www" / "index.html"
    assert wh.is_char_device() and wh.stat().st_rdev == 0
    assert (busybox_rootfs / "www" / "index.html").exists()  # the lower layer is untouched
    _no_sandbox_left(runtime_settings)
    assert not list(tmp_path.glob(".upper.work-*"))


def test_user_mounts_and_network_none(runtime_settings, busybox_rootfs, tmp_path):
    upper = tmp_path / "upper"
    upper.mkdir()
    src = tmp_path / "ro-src"
    src.mkdir()
    (src / "data.txt").write_text("read me")
    cache = tmp_path / "cache"
    cache.mkdir()
    spec = SandboxSpec(
        lowerdirs=[busybox_rootfs], upperdir=upper, user="app",
        args=["/bin/sh", "-c",
              "id -u; id -g; cat /src/data.txt; echo; touch /src/x 2>/dev/null || echo ro-ok; "
              "echo cached > /cache/c; df /scratch | tail -1 | awk '{print $1}'; "
              "cat /proc/net/dev | tail -n +3 | awk '{print $1}'"],
        mounts=[Mount.bind(src, "/src", readonly=True), Mount.bind(cache, "/cache"), Mount.tmpfs("/scratch")],
    )
    # /cache must be writable by uid 1000
    cache.chmod(0o777)
    result = run_sandbox(spec, settings=runtime_settings)
    assert result.exit_code == 0, result.output
    out = result.output.split()
    assert out[:2] == ["1000", "1000"]
    assert "read" in out and "ro-ok" in out and "tmpfs" in out
    assert out[-1] == "lo:"  # network none: a namespace with only a loopback
    assert (cache / "c").read_text() == "cached\n"  # rw bind mounts write through to the host
    _no_sandbox_left(runtime_settings)


def test_host_network_sees_host_interfaces(runtime_settings, busybox_rootfs, tmp_path):
    upper = tmp_path / "upper"
    upper.mkdir()
    host_ifaces = sorted(line.split(":")[0].strip() for line in Path("/proc/net/dev").read_text().splitlines()[2:])
    result = run_sandbox(SandboxSpec(lowerdirs=[busybox_rootfs], upperdir=upper, network="host",
                                     args=["cat", "/proc/net/dev"]), settings=runtime_settings)
    inside = sorted(line.split(":")[0].strip() for line in result.output.splitlines()[2:])
    assert inside == host_ifaces


def test_timeout_kills_and_cleans_up(runtime_settings, busybox_rootfs, tmp_path):
    upper = tmp_path / "upper"
    upper.mkdir()
    result = run_sandbox(SandboxSpec(lowerdirs=[busybox_rootfs], upperdir=upper, timeout=1.0,
                                     args=["/bin/sh", "-c", "echo started; sleep 60"]), settings=runtime_settings)
    assert result.timed_out and result.exit_code == 137
    assert result.duration < 20
    _no_sandbox_left(runtime_settings)


@pytest.mark.parametrize("runtime_name", ["crun", "runc"], indirect=True)
def test_a_killed_runtime_leaves_no_container_state(runtime_settings, busybox_rootfs, tmp_path):
    """An interrupt (here: the output callback raising) kills the runtime process itself, which
    then cannot remove its container's state: the sandbox deletes it."""
    upper = tmp_path / "upper"
    upper.mkdir()

    def interrupt(line: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sandbox(SandboxSpec(lowerdirs=[busybox_rootfs], upperdir=upper,
                                args=["/bin/sh", "-c", "echo started; sleep 60"]),
                    settings=runtime_settings, on_output=interrupt)
    _no_sandbox_left(runtime_settings)


def test_memory_limit_applies_in_the_sandbox(runtime_settings, busybox_rootfs, tmp_path):
    upper = tmp_path / "upper"
    upper.mkdir()
    result = run_sandbox(SandboxSpec(lowerdirs=[busybox_rootfs], upperdir=upper, limits=Limits(memory="16m"),
                                     args=["awk", "BEGIN { s = \"x\"; for (i = 0; i < 40; i++) s = s s }"]),
                         settings=runtime_settings)
    assert result.exit_code == 137


def test_bad_setup_is_a_run_error_and_leaves_nothing(runtime_settings, busybox_rootfs, tmp_path):
    with pytest.raises(RunError, match="upperdir"):
        run_sandbox(SandboxSpec(lowerdirs=[busybox_rootfs], upperdir=tmp_path / "missing", args=["true"]),
                    settings=runtime_settings)
    upper = tmp_path / "upper"
    upper.mkdir()
    with pytest.raises(RunError, match="not in the image"):
        run_sandbox(SandboxSpec(lowerdirs=[busybox_rootfs], upperdir=upper, user="nobody-here", args=["true"]),
                    settings=runtime_settings)
    _no_sandbox_left(runtime_settings)
