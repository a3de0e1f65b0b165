"""Session fixtures for the runtime side of the suite.

``busybox_rootfs``: a tiny root (busybox-static + symlinks, passwd with root
and ``app`` 1000, /www/index.html) made once per run under the run home; it
is the lowerdir of most runtime tests, so they start in tens of ms.
``busybox_httpd_image``: the same tree as a one-layer image in the run's store.
``runtime_settings``: Settings over the run home for a named runtime
(parametrize ``runtime_name`` to test crun and runc).
``fake_cdi``: a CDI spec for two fake GPUs and their device nodes (mknod).
``assert_clean``: checks that nothing of a container is left.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from mlpack.settings import Settings

BUSYBOX = "/bin/busybox"
BUSYBOX_IMAGE = "localhost/mlpack-test/busybox-httpd:latest"
HTTPD_CMD = ["httpd", "-f", "-p", "8080", "-h", "/www"]


def _need_root_and(*tools: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (namespaces, cgroups, overlayfs)")
    for tool in tools:
        if shutil.which(tool) is None and not os.path.exists(tool):
            pytest.skip(f"{tool} is not installed; tests/run.sh installs it")


@pytest.fixture(scope="session")
def busybox_rootfs(run_home: Path) -> Path:
    """A busybox root filesystem directory (shared, treat as read-only)."""
    if not os.path.exists(BUSYBOX):
        pytest.skip("busybox-static is not installed (apt-get install busybox-static)")
    root = run_home / "fixtures" / "busybox-rootfs"
    if (root / ".complete").exists():
        return root
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, tmp / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for name in applets:
        if name != "busybox":
            os.symlink("busybox", tmp / "bin" / name)
    for d in ("etc", "proc", "sys", "dev", "tmp", "root", "www", "home/app", "usr/bin", "sbin"):
        (tmp / d).mkdir(parents=True, exist_ok=True)
    (tmp / "tmp").chmod(0o1777)
    (tmp / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n")
    (tmp / "etc" / "group").write_text("root:x:0:\napp:x:1000:\nstaff:x:50:app\n")
    (tmp / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
    (tmp / "www" / "index.html").write_text("hello from busybox\n")
    if os.geteuid() == 0:
        os.chown(tmp / "home" / "app", 1000, 1000)
    (tmp / ".complete").touch()
    shutil.rmtree(root, ignore_errors=True)
    os.rename(tmp, root)
    return root


def busybox_config(**extra: object) -> dict:
    cfg: dict = {"Cmd": list(HTTPD_CMD), "ExposedPorts": {"8080/tcp": {}}, "WorkingDir": "/",
                 "Env": ["PATH=/bin:/usr/bin:/sbin"]}
    cfg.update(extra)
    return cfg


@pytest.fixture(scope="session")
def busybox_httpd_image(busybox_rootfs: Path, run_settings: Settings) -> str:
    """The busybox tree as an image in the run's store; returns its reference."""
    try:
        from mlpack.oci.layer import write_dir
        from mlpack.oci.layout import Store
    except ImportError as exc:  # pragma: no cover - the store is another stage
        pytest.skip(f"mlpack.oci is not available: {exc}")
    store = Store(run_settings.store_dir)
    store.init()
    try:
        store.resolve(BUSYBOX_IMAGE)
        return BUSYBOX_IMAGE
    except LookupError:
        pass
    layer = write_dir(store, busybox_rootfs)
    hc = {"Test": ["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:8080/"], "Interval": 500_000_000,
          "Timeout": 5_000_000_000, "Retries": 2}
    store.put_image({"config": busybox_config(Healthcheck=hc)}, [layer], ref=BUSYBOX_IMAGE)
    return BUSYBOX_IMAGE


@pytest.fixture(params=["crun"])
def runtime_name(request: pytest.FixtureRequest) -> str:
    """Which OCI runtime a test uses; parametrize indirectly with ["crun", "runc"]."""
    return request.param


@pytest.fixture
def runtime_settings(run_home: Path, runtime_name: str) -> Settings:
    """Settings over the run home with MLPACK_RUNTIME = runtime_name (skips when absent or not root)."""
    _need_root_and(runtime_name)
    return Settings.from_env({"MLPACK_HOME": str(run_home), "MLPACK_RUNTIME": runtime_name})


@pytest.fixture
def busybox_source(busybox_rootfs: Path):
    """An ImageSource over the busybox rootfs (no store needed)."""
    from mlpack.runtime import ImageSource

    def make(**config: object) -> ImageSource:
        return ImageSource([busybox_rootfs], busybox_config(**config), ref="busybox-dir")

    return make


@pytest.fixture
def fake_cdi(tmp_path: Path) -> dict:
    """A CDI spec dir for nvidia.com/gpu devices 0 and 1 over device nodes made with mknod.

    The nodes are char 195:0 and 195:1 (NVIDIA's major): with no driver on
    this host, opening one the device cgroup allows gives ENXIO, one it
    denies gives EPERM, which is how the tests tell the two apart.
    """
    if os.geteuid() != 0:
        pytest.skip("mknod needs root")
    nodes = tmp_path / "devnodes"
    nodes.mkdir()
    for i in (0, 1):
        os.mknod(nodes / f"nvidia{i}", 0o666 | stat.S_IFCHR, os.makedev(195, i))
    os.mknod(nodes / "nvidiactl", 0o666 | stat.S_IFCHR, os.makedev(195, 255))
    spec_dir = tmp_path / "cdi"
    spec_dir.mkdir()
    spec = {
        "cdiVersion": "0.5.0",
        "kind": "nvidia.com/gpu",
        "devices": [
            {"name": str(i), "containerEdits": {
                "deviceNodes": [{"path": f"/dev/nvidia{i}", "hostPath": str(nodes / f"nvidia{i}")}],
                "env": [f"FAKE_GPU_{i}=yes"]}}
            for i in (0, 1)
        ],
        "containerEdits": {
            "deviceNodes": [{"path": "/dev/nvidiactl", "hostPath": str(nodes / "nvidiactl")}],
            "env": ["NVIDIA_VISIBLE_DEVICES=void"],
        },
    }
    (spec_dir / "nvidia.json").write_text(json.dumps(spec))
    return {"dirs": (str(spec_dir),), "nodes": nodes, "spec": spec}


def leftovers(settings: Settings, cid: str) -> list[str]:
    """Everything of container ``cid`` still on the host: mounts, cgroups, runtime state, files."""
    from mlpack.runtime.cgroups import cgroup_dirs
    from mlpack.runtime.host import CGROUP_PARENT

    found = []
    with open("/proc/self/mountinfo") as fh:
        found += [f"mount {line.split()[4]}" for line in fh if cid in line]
    found += [f"cgroup {p}" for p in cgroup_dirs(f"/{CGROUP_PARENT}/{cid}")]
    for rt in ("crun", "runc"):
        state = settings.home / "runtime" / rt / cid
        if state.exists():
            found.append(f"runtime state {state}")
    if (settings.containers_dir / cid).exists():
        found.append(f"dir {settings.containers_dir / cid}")
    return found


@pytest.fixture
def cleanup_containers(runtime_settings: Settings):
    """Collects containers a test made and force-removes whatever the test did not."""
    made: list = []
    yield made
    for c in made:
        try:
            c.remove(force=True)
        except Exception:
            pass
