"""config.json generation: hardening defaults and Limits -> linux.resources."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlpack.oci.config import ImageConfig
from mlpack.errors import RunError
from mlpack.runtime.seccomp import ALLOWED_SYSCALLS, default_profile
from mlpack.runtime.spec import (
    DEFAULT_PATH, ContainerSpec, DeviceNode, Mount, ProcessSpec, build_config, merge_env, normalize_caps,
    process_args, resolve_user,
)
from mlpack.types import Limits


def _config(**kw) -> dict:
    spec = ContainerSpec(rootfs=Path("/r"), process=ProcessSpec(args=("srv",)), cgroups_path="/mlpack/x", **kw)
    return json.loads(json.dumps(build_config(spec)))  # must be plain JSON


def test_hardened_by_default() -> None:
    cfg = _config()
    proc = cfg["process"]
    assert all(proc["capabilities"][k] == [] for k in ("bounding", "effective", "permitted"))
    assert proc["noNewPrivileges"] is True
    assert cfg["root"] == {"path": "/r", "readonly": True}
    ns = {n["type"] for n in cfg["linux"]["namespaces"]}
    assert ns == {"pid", "ipc", "uts", "mount", "network"}
    mounts = {m["destination"]: m for m in cfg["mounts"]}
    assert "ro" in mounts["/sys"]["options"]
    assert mounts["/tmp"]["type"] == "tmpfs" and mounts["/dev/shm"]["type"] == "tmpfs"
    assert "/proc/kcore" in cfg["linux"]["maskedPaths"] and "/sys/firmware" in cfg["linux"]["maskedPaths"]
    assert "/proc/sys" in cfg["linux"]["readonlyPaths"]
    assert cfg["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    assert cfg["linux"]["cgroupsPath"] == "/mlpack/x"


def test_device_cgroup_denies_all_then_allows_the_harmless_few() -> None:
    rules = _config()["linux"]["resources"]["devices"]
    assert rules[0] == {"allow": False, "access": "rwm"}
    allowed = {(r["major"], r.get("minor")) for r in rules[1:]}
    assert {(1, 3), (1, 5), (1, 8), (1, 9), (5, 0), (5, 1)} <= allowed
    assert (1, 1) not in allowed  # /dev/mem
    assert all(r["allow"] for r in rules[1:])


def test_limits_map_to_resources() -> None:
    res = _config(limits=Limits(cpus=1.5, memory="512Mi", pids=64, cpuset_cpus="0-1"))["linux"]["resources"]
    assert res["cpu"] == {"quota": 150000, "period": 100000, "cpus": "0-1"}
    assert res["memory"] == {"limit": 512 * 1024**2, "swap": 512 * 1024**2}  # no swap
    assert res["pids"] == {"limit": 64}
    assert "cpu" not in _config()["linux"]["resources"]


def test_gpu_devices_are_created_and_allowed() -> None:
    dev = DeviceNode("/dev/nvidia0", "c", 195, 0)
    cfg = _config(devices=(dev,))
    assert cfg["linux"]["devices"] == [{"path": "/dev/nvidia0", "type": "c", "major": 195, "minor": 0,
                                        "fileMode": 0o666, "uid": 0, "gid": 0}]
    assert {"allow": True, "type": "c", "major": 195, "minor": 0, "access": "rwm"} in cfg["linux"]["resources"]["devices"]


def test_network_modes() -> None:
    assert {"type": "network", "path": "/x/netns"} in _config(netns_path="/x/netns")["linux"]["namespaces"]
    host = _config(network="host")
    assert "network" not in {n["type"] for n in host["linux"]["namespaces"]}


def test_extra_mounts(tmp_path: Path) -> None:
    cfg = _config(mounts=(Mount.bind(tmp_path, "/data", readonly=True), Mount.tmpfs("/tmp", size="8m")))
    mounts = {m["destination"]: m for m in cfg["mounts"]}
    assert mounts["/data"]["options"][-1] == "ro" and mounts["/data"]["source"] == str(tmp_path)
    assert "size=8m" in mounts["/tmp"]["options"]  # replaces the default /tmp
    assert [m["destination"] for m in cfg["mounts"]].count("/tmp") == 1
    with pytest.raises(RunError, match="does not exist"):
        Mount.bind(tmp_path / "nope", "/x").to_oci()
    with pytest.raises(RunError, match="absolute"):
        Mount.tmpfs("relative").to_oci()


def test_caps_env_args() -> None:
    assert normalize_caps(["net_bind_service", "CAP_CHOWN", "chown"]) == ("CAP_NET_BIND_SERVICE", "CAP_CHOWN")
    with pytest.raises(RunError):
        normalize_caps(["ALL"])
    env = merge_env(["A=1", "B=2"], {"B": "3"}, None)
    assert env == ("A=1", "B=3", f"PATH={DEFAULT_PATH}")
    cfg = ImageConfig.from_config({"Entrypoint": ["mlpack-serve"], "Cmd": ["--port", "8080"]})
    assert process_args(cfg, None) == ("mlpack-serve", "--port", "8080")
    assert process_args(cfg, ["--port", "9"]) == ("mlpack-serve", "--port", "9")
    assert process_args(cfg, ["sh"], entrypoint=[]) == ("sh",)
    with pytest.raises(RunError, match="no Entrypoint or Cmd"):
        process_args(ImageConfig(), None)


def test_resolve_user(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n")
    (tmp_path / "etc" / "group").write_text("root:x:0:\napp:x:1001:\nstaff:x:50:app,bob\n")
    assert resolve_user(tmp_path, None) == (0, 0, (), "/root")
    assert resolve_user(tmp_path, "app") == (1000, 1001, (50,), "/home/app")
    assert resolve_user(tmp_path, "app:staff")[:2] == (1000, 50)
    assert resolve_user(tmp_path, "4242:7")[:2] == (4242, 7)
    with pytest.raises(RunError, match="not in the image"):
        resolve_user(tmp_path, "nobody")


def test_resolve_user_does_not_follow_symlinks_out_of_the_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_text("evil:x:0:0::/:/bin/sh\n")
    root = tmp_path / "root"
    root.mkdir()
    (root / "etc").symlink_to(outside)
    with pytest.raises(RunError):
        resolve_user(root, "evil")


def test_seccomp_profile_is_an_allow_list_with_capability_gated_calls() -> None:
    prof = default_profile(())
    assert prof["defaultAction"] == "SCMP_ACT_ERRNO" and prof["defaultErrnoRet"] == 1
    allowed = set(prof["syscalls"][0]["names"])
    assert allowed == set(ALLOWED_SYSCALLS)
    # what every Python server needs stays allowed; what it never needs is out
    assert {"execve", "epoll_wait", "mmap", "futex", "openat", "accept4"} <= allowed
    assert not {"mount", "unshare", "bpf", "keyctl", "chroot", "io_uring_setup", "pidfd_getfd"} & allowed
    assert prof["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    clone = next(r for r in prof["syscalls"] if r["names"] == ["clone"])
    assert clone["args"][0]["value"] == 0x7E020000 and clone["args"][0]["op"] == "SCMP_CMP_MASKED_EQ"
    build = set(default_profile(("CAP_SYS_CHROOT", "CAP_CHOWN"))["syscalls"][0]["names"])
    assert build - allowed == {"chroot"}
    admin = default_profile(("CAP_SYS_ADMIN",))
    assert "clone" in admin["syscalls"][0]["names"] and not any(r.get("errnoRet") == 38 for r in admin["syscalls"])


def test_config_profile_follows_the_process_capabilities(tmp_path: Path) -> None:
    spec = ContainerSpec(rootfs=tmp_path, process=ProcessSpec(args=("true",), capabilities=("CAP_SYS_CHROOT",)))
    assert "chroot" in build_config(spec)["linux"]["seccomp"]["syscalls"][0]["names"]


def test_numeric_user_without_passwd_entry_gets_group_0(tmp_path: Path) -> None:
    assert resolve_user(tmp_path, "1234")[:2] == (1234, 0)  # no /etc/passwd at all


def test_the_containers_own_cgroup_is_mounted_read_only(tmp_path: Path) -> None:
    cfg = build_config(ContainerSpec(rootfs=tmp_path, process=ProcessSpec(args=("true",))))
    cgroup = next(m for m in cfg["mounts"] if m["destination"] == "/sys/fs/cgroup")
    assert cgroup["type"] == "cgroup" and "ro" in cgroup["options"]
