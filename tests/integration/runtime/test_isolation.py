"""Hardening seen from inside: capabilities, read-only root, device cgroup, seccomp, fake GPUs via CDI."""

from __future__ import annotations

import os
import stat

import pytest

from mlpack.errors import RunError
from mlpack.runtime import run
from mlpack.runtime.host import CGROUP_ROOT, cgroup_mode
from mlpack.types import Limits

pytestmark = pytest.mark.runtime

PROBE = (
    "grep CapEff /proc/self/status; "
    "touch /rootfile 2>&1 || true; "
    "cat /dev/null && echo null-ok; "
    "cat /dev/fakedev 2>&1 || true; "
    "unshare -n true 2>&1 || true; "
    "cat /proc/kcore 2>&1 | head -c 20 || true; echo; "
    "touch /tmp/ok && echo tmp-ok"
)


@pytest.mark.parametrize("runtime_name", ["crun", "runc"], indirect=True)
def test_no_capabilities_read_only_root_and_device_allow_list(runtime_settings, busybox_source, tmp_path,
                                                             cleanup_containers):
    node = tmp_path / "fakedev"
    os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(195, 7))  # no driver: only the cgroup can say EPERM
    c = run(busybox_source(), command=["sh", "-c", PROBE], volumes=[f"{node}:/dev/fakedev"], ports=(),
            detach=False, settings=runtime_settings)
    cleanup_containers.append(c)
    out = c.logs()
    assert "CapEff:\t0000000000000000" in out
    assert "Read-only file system" in out
    assert "null-ok" in out
    assert "cat: can't open '/dev/fakedev': Operation not permitted" in out
    assert "unshare: unshare" in out and "Operation not permitted" in out.split("unshare:")[1]
    assert "tmp-ok" in out  # /tmp is a writable tmpfs
    assert "ELF" not in out  # /proc/kcore is masked


def test_cap_add_and_read_write(runtime_settings, busybox_source, cleanup_containers):
    c = run(busybox_source(), command=["sh", "-c", "grep CapEff /proc/self/status; touch /rootfile && echo rw-ok"],
            cap_add=["NET_BIND_SERVICE", "chown"], read_write=True, ports=(), detach=False,
            settings=runtime_settings)
    cleanup_containers.append(c)
    out = c.logs()
    # CAP_CHOWN = bit 0, CAP_NET_BIND_SERVICE = bit 10
    assert "CapEff:\t0000000000000401" in out
    assert "rw-ok" in out


def test_image_user_and_workdir_are_used(runtime_settings, busybox_source, cleanup_containers):
    c = run(busybox_source(User="app", WorkingDir="/home/app"), command=["sh", "-c", "id; pwd; echo $HOME"],
            ports=(), detach=False, settings=runtime_settings)
    cleanup_containers.append(c)
    ident, cwd, home = c.logs().splitlines()
    assert ident.startswith("uid=1000(app) gid=1000(app)") and "50(staff)" in ident
    assert cwd == home == "/home/app"


def _device_rules(c) -> str:
    rel = c.record["cgroups_path"].strip("/")
    return (CGROUP_ROOT / "devices" / rel / "devices.list").read_text()


@pytest.mark.parametrize("runtime_name", ["crun", "runc"], indirect=True)
def test_fake_gpu_only_when_requested_and_only_that_one(runtime_settings, busybox_source, fake_cdi,
                                                        cleanup_containers):
    probe = ("ls /dev; env | grep -E 'FAKE_GPU|NVIDIA' | sort; "
             "cat /dev/nvidia0 2>&1; cat /dev/other 2>&1; sleep 5")
    other = f"{fake_cdi['nodes'] / 'nvidia1'}:/dev/other"
    without = run(busybox_source(), command=["sh", "-c", "ls /dev; cat /dev/other 2>&1"], volumes=[other],
                  cdi_dirs=fake_cdi["dirs"], ports=(), detach=False, settings=runtime_settings)
    cleanup_containers.append(without)
    assert "nvidia" not in without.logs()
    assert "Operation not permitted" in without.logs()

    c = run(busybox_source(), command=["sh", "-c", probe], limits=Limits(gpus="device=0"), volumes=[other],
            cdi_dirs=fake_cdi["dirs"], ports=(), settings=runtime_settings)
    cleanup_containers.append(c)
    if cgroup_mode() != "v2":
        rules = _device_rules(c)
        assert "c 195:0 rwm" in rules and "c 195:255 rwm" in rules
        assert "c 195:1 " not in rules
    c.wait(timeout=30)
    out = c.logs()
    listing = out.split("FAKE_GPU")[0]
    assert "nvidia0" in listing and "nvidiactl" in listing and "nvidia1" not in listing
    assert "FAKE_GPU_0=yes" in out and "FAKE_GPU_1" not in out and "NVIDIA_VISIBLE_DEVICES=void" in out
    # allowed by the cgroup: the kernel gets as far as "no driver"; the other one: EPERM
    assert "can't open '/dev/nvidia0': No such device or address" in out
    assert "can't open '/dev/other': Operation not permitted" in out


def test_gpus_all_and_device_flag(runtime_settings, busybox_source, fake_cdi, cleanup_containers):
    c = run(busybox_source(), command=["ls", "/dev"], limits=Limits(gpus="all"), cdi_dirs=fake_cdi["dirs"],
            ports=(), detach=False, settings=runtime_settings)
    cleanup_containers.append(c)
    assert {"nvidia0", "nvidia1", "nvidiactl"} <= set(c.logs().split())
    c = run(busybox_source(), command=["ls", "/dev"], devices=["nvidia.com/gpu=1"], cdi_dirs=fake_cdi["dirs"],
            ports=(), detach=False, settings=runtime_settings)
    cleanup_containers.append(c)
    names = set(c.logs().split())
    assert "nvidia1" in names and "nvidia0" not in names


def test_gpu_without_cdi_spec_says_how_to_make_one(runtime_settings, busybox_source, tmp_path):
    before = set(runtime_settings.containers_dir.glob("*/record.json"))
    with pytest.raises(RunError) as err:
        run(busybox_source(), command=["true"], limits=Limits(gpus=1), cdi_dirs=(str(tmp_path),), ports=(),
            settings=runtime_settings)
    assert "nvidia-ctk cdi generate" in str(err.value)
    assert set(runtime_settings.containers_dir.glob("*/record.json")) == before  # nothing half-made is left
