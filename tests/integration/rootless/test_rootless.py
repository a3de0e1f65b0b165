"""mlpack as an ordinary user: delegation, limits, containers and builds in a user namespace.

Every mlpack command here runs as an ordinary user (``runuser``), never as
root; root only sets up (useradd, ``mlpack system delegate``) and measures.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from mlpack.runtime.cgroups import read_stats
from mlpack.runtime.delegation import hierarchies, user_cgroup
from tests.integration.rootless.conftest import root_mlpack
from tests.integration.rootless.users import User

pytestmark = [pytest.mark.runtime, pytest.mark.build]

BUSYBOX = "/bin/busybox"
EPOCH = "1700000000"

MULTI_STAGE = """\
FROM scratch AS base
COPY rootfs/ /
ENV PATH=/bin

FROM base AS build
RUN mkdir -p /out/d && echo hi > /out/a && chown 1000:1000 /out/a && chmod 640 /out/a
RUN ln -s a /out/b && touch /out/d/x && rm -r /out/d && mkdir /out/e && chown 65534:65534 /out/e

FROM base
COPY --from=build /out /app
RUN echo "app2:x:2000:2000::/tmp:/bin/sh" >> /etc/passwd && chown -R 2000:1000 /app/a && rm /www/index.html
USER 1000
CMD ["cat", "/app/b"]
"""

PLAIN = """\
FROM scratch
COPY rootfs/ /
ENV PATH=/bin
RUN mkdir /srv && echo served > /srv/index.html
EXPOSE 8080
CMD ["httpd", "-f", "-p", "8080", "-h", "/srv"]
"""


def _context(where: Path, dockerfile: str) -> Path:
    """A build context: a busybox root and ``dockerfile``."""
    if not os.path.exists(BUSYBOX):
        pytest.skip("busybox-static is not installed (apt-get install busybox-static)")
    ctx = where / "ctx"
    root = ctx / "rootfs"
    for d in ("bin", "etc", "tmp", "www", "proc", "sys", "dev"):
        (root / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for name in applets:
        if name != "busybox" and not (root / "bin" / name).exists():
            os.symlink("busybox", root / "bin" / name)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/tmp:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\napp:x:1000:\n")
    (root / "www" / "index.html").write_text("hello\n")
    (root / "tmp").chmod(0o1777)
    (ctx / "Dockerfile").write_text(dockerfile)
    return ctx


def _user_ctx(user: User, dockerfile: str) -> Path:
    return user.give(_context(user.home.parent / f"ctx-{os.urandom(3).hex()}", dockerfile))


def _digest(proc: subprocess.CompletedProcess) -> str:
    found = re.findall(r"sha256:[0-9a-f]{64}", proc.stdout)
    assert found, proc.stdout + proc.stderr
    return found[-1]


# --- delegation and the honest "no" -------------------------------------------------------------

def test_without_delegation_a_limit_is_refused_naming_the_command(ranged_user: User) -> None:
    root_mlpack("system", "delegate", "--undo", ranged_user.name)
    info = json.loads(ranged_user.mlpack("info", "--format", "json", check=True).stdout)
    assert info["rootless"] is True and info["limits"] == "none"
    assert f"mlpack system delegate {ranged_user.name}" in info["limits_fix"]
    ctx = _user_ctx(ranged_user, PLAIN)
    # a build's RUN steps run without the builder's default limits, but one asked for is refused
    proc = ranged_user.mlpack("build", "-q", "--memory", "1g", "-t", "localhost/rl/plain:1", str(ctx))
    assert proc.returncode == 1 and f"mlpack system delegate {ranged_user.name}" in proc.stderr, proc.stderr
    ranged_user.mlpack("build", "-q", "-t", "localhost/rl/plain:1", str(ctx), check=True)
    for flags in (["--cpus", "0.5"], ["--memory", "64Mi"], ["--pids-limit", "20"]):
        proc = ranged_user.mlpack("run", "--rm", *flags, "localhost/rl/plain:1", "true")
        assert proc.returncode != 0
        assert f"mlpack system delegate {ranged_user.name}" in proc.stderr, proc.stderr
        assert flags[0] in proc.stderr
    # nothing half-created: no container, no state left behind
    assert ranged_user.mlpack("ps", "-a", "-q").stdout.split() == []
    assert not any((ranged_user.home / "containers").glob("[0-9a-f]*"))
    # without a limit it runs (unlimited, as asked)
    proc = ranged_user.mlpack("run", "--rm", "localhost/rl/plain:1", "cat", "/srv/index.html")
    assert proc.returncode == 0 and proc.stdout.strip() == "served", proc.stderr


def test_delegate_is_idempotent_reported_by_info_and_undone(ranged_user: User) -> None:
    first = root_mlpack("system", "delegate", ranged_user.name)
    second = root_mlpack("system", "delegate", ranged_user.name)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert "already delegated" in second.stdout
    dirs = [h / user_cgroup(ranged_user.uid) for h in hierarchies()]
    assert dirs and all(d.stat().st_uid == ranged_user.uid for d in dirs)
    assert all((d / "cgroup.procs").stat().st_uid == ranged_user.uid for d in dirs)
    info = json.loads(ranged_user.mlpack("info", "--format", "json", check=True).stdout)
    assert info["limits"] == "mlpack" and "limits_fix" not in info
    # a cgroup of the user's still in use: --undo refuses and removes nothing
    busy = dirs[0] / "held"
    busy.mkdir()
    if (busy / "cpuset.cpus").exists():
        (busy / "cpuset.cpus").write_text((dirs[0] / "cpuset.cpus").read_text())
        (busy / "cpuset.mems").write_text((dirs[0] / "cpuset.mems").read_text())
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        (busy / "cgroup.procs").write_text(str(sleeper.pid))
        proc = root_mlpack("system", "delegate", "--undo", ranged_user.name)
        assert proc.returncode == 1 and "still has 1 process" in proc.stderr, proc.stderr
        assert all(d.is_dir() for d in dirs)
    finally:
        sleeper.kill()
        sleeper.wait()
    proc = root_mlpack("system", "delegate", "--undo", ranged_user.name)
    assert proc.returncode == 0, proc.stderr
    assert not any(d.exists() for d in dirs)
    assert "nothing to remove" in root_mlpack("system", "delegate", "--undo", ranged_user.name).stdout
    assert "no user" in root_mlpack("system", "delegate", "no-such-user-xyz").stderr
    proc = ranged_user.mlpack("system", "delegate", ranged_user.name)
    assert proc.returncode == 1 and "only root" in proc.stderr


# --- rootless containers with enforced limits ---------------------------------------------------

@pytest.fixture
def favoured_user_cgroup(delegated: User):
    """Top CPU weight for mlpack's cgroups while measuring (the quota is under test, not the load)."""
    from mlpack.runtime.host import CGROUP_ROOT, cgroup_mode

    if cgroup_mode() == "v2":
        pytest.skip("measured on the v1/hybrid layout of this host")
    knobs = [CGROUP_ROOT / "cpu" / "mlpack" / "cpu.shares", CGROUP_ROOT / "cpu" / user_cgroup(delegated.uid) / "cpu.shares"]
    old = [k.read_text().strip() for k in knobs]
    for k in knobs:
        k.write_text("262144")
    yield delegated
    for k, v in zip(knobs, old):
        k.write_text(v)


@pytest.mark.parametrize("runtime", ["runc", "crun"])
def test_rootless_limits_are_enforced_half_a_cpu_and_oom(favoured_user_cgroup: User, runtime: str) -> None:
    if shutil.which(runtime) is None:
        pytest.skip(f"{runtime} is not installed; tests/run.sh installs it")
    user = favoured_user_cgroup
    ctx = _user_ctx(user, PLAIN)
    user.mlpack("build", "-q", "-t", "localhost/rl/plain:1", str(ctx), check=True)
    proc = user.mlpack("run", "-d", "--name", "spin", "--cpus", "0.5", "--memory", "64Mi", "--pids-limit", "32",
                       "localhost/rl/plain:1", "sh", "-c", "while :; do :; done", check=True, MLPACK_RUNTIME=runtime)
    cid = proc.stdout.strip().splitlines()[-1]
    record = json.loads((user.home / "containers" / cid / "record.json").read_text())
    path = record["cgroups_path"]
    assert path.startswith(f"/{user_cgroup(user.uid)}/"), path
    assert record["runtime"]["name"] == runtime
    mem = read_stats(path)
    assert mem.memory_limit == 64 * 1024 * 1024 and mem.pids_limit == 32
    time.sleep(0.5)
    samples = []
    for _ in range(3):  # the best 2 s window: a loaded machine can only push it down
        a = read_stats(path)
        time.sleep(2.0)
        b = read_stats(path)
        samples.append((b.cpu_usage_ns - a.cpu_usage_ns) / ((b.when - a.when) * 1e9))
        if 0.45 <= samples[-1] <= 0.55:
            break
    assert 0.45 <= max(samples) <= 0.55 and all(s <= 0.55 for s in samples), samples
    user.mlpack("rm", "-f", "spin", check=True)
    assert not any((h / path.strip("/")).exists() for h in hierarchies())
    proc = user.mlpack("run", "--rm", "--memory", "32m", "localhost/rl/plain:1",
                       "awk", 'BEGIN { s = "x"; for (i = 0; i < 40; i++) s = s s; print length(s) }',
                       MLPACK_RUNTIME=runtime)
    assert proc.returncode == 137 and "OOM-killed" in proc.stderr, proc.stderr


def test_rootless_container_serves_a_published_port_and_leaves_nothing(delegated: User) -> None:
    user = delegated
    ctx = _user_ctx(user, PLAIN)
    user.mlpack("build", "-q", "-t", "localhost/rl/plain:1", str(ctx), check=True)
    cid = user.mlpack("run", "-d", "--name", "web", "-p", "127.0.0.1:0:8080", "--memory", "64Mi",
                      "localhost/rl/plain:1", check=True).stdout.strip().splitlines()[-1]
    record = json.loads((user.home / "containers" / cid / "record.json").read_text())
    port = record["ports"][0]["host_port"]
    deadline = time.monotonic() + 30
    body = None
    while body is None and time.monotonic() < deadline:
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=5).read()
        except OSError:
            time.sleep(0.1)
    assert body == b"served\n"
    assert "web" in user.mlpack("ps", check=True).stdout
    assert user.mlpack("exec", "web", "id", "-u", check=True).stdout.strip() == "0"
    assert user.mlpack("stop", "web", check=True).returncode == 0
    user.mlpack("rm", "web", check=True)
    assert not (user.home / "containers" / cid).exists()
    assert not any((h / record["cgroups_path"].strip("/")).exists() for h in hierarchies())
    # everything mlpack left in the home is the user's, or of its subordinate range
    for p in user.home.rglob("*"):
        owner = p.stat(follow_symlinks=False).st_uid
        assert owner == user.uid or 1_800_000 <= owner < 1_800_000 + 65536, (p, owner)


# --- rootless builds ----------------------------------------------------------------------------

def test_rootless_and_root_builds_give_the_same_digest(ranged_user: User, tmp_path: Path, capsys) -> None:
    import mlpack
    from mlpack.settings import Settings

    user = ranged_user
    ctx = _user_ctx(user, MULTI_STAGE)
    t0 = time.monotonic()
    cold = user.mlpack("build", "-q", "--build-arg", f"SOURCE_DATE_EPOCH={EPOCH}", "-t", "localhost/rl/ms:1",
                       str(ctx), check=True)
    t_cold = time.monotonic() - t0
    t0 = time.monotonic()
    warm = user.mlpack("build", "-q", "--build-arg", f"SOURCE_DATE_EPOCH={EPOCH}", "-t", "localhost/rl/ms:1",
                       str(ctx), check=True)
    t_warm = time.monotonic() - t0
    settings = Settings.from_env({"MLPACK_HOME": str(tmp_path / "root-home")})
    t0 = time.monotonic()
    image = mlpack.build(ctx, tag="localhost/rl/ms:1", settings=settings, build_args={"SOURCE_DATE_EPOCH": EPOCH})
    t_root = time.monotonic() - t0
    assert _digest(cold) == _digest(warm) == image.digest
    # the ownership the RUN steps set is in the layer, as root would set it
    proc = user.mlpack("run", "--rm", "localhost/rl/ms:1", check=True)
    assert proc.stdout == "hi\n"
    listing = user.mlpack("run", "--rm", "--user", "0", "localhost/rl/ms:1", "ls", "-ln", "/app", check=True).stdout
    assert re.search(r"2000\s+1000\s+\d+ .* a\n", listing), listing
    assert re.search(r"65534\s+65534\s+\d+ .* e\n", listing), listing
    # its layers hold files of the user's subordinate ids: prune removes them all the same
    def subordinate_files() -> list[Path]:
        return [p for p in (user.home / "layers").rglob("*") if p.lstat().st_uid >= 1_800_000]

    assert subordinate_files()
    user.mlpack("rmi", "localhost/rl/ms:1", check=True)
    user.mlpack("system", "prune", "--build-cache", check=True)
    assert subordinate_files() == []
    with capsys.disabled():
        print(f"\n[rootless build] cold {t_cold:.2f} s, warm {t_warm:.2f} s (CLI, as {user.name}); "
              f"root cold {t_root:.2f} s (in-process)")


def test_single_id_user_builds_without_chown_and_is_told_the_fix_for_one(single_user: User, tmp_path: Path) -> None:
    import mlpack
    from mlpack.settings import Settings

    user = single_user
    info = json.loads(user.mlpack("info", "--format", "json", check=True).stdout)
    assert info["id_mapping"].startswith("single id")
    ctx = _user_ctx(user, PLAIN)
    built = user.mlpack("build", "-q", "--build-arg", f"SOURCE_DATE_EPOCH={EPOCH}", "-t", "localhost/rl/p:1",
                        str(ctx), check=True)
    root = mlpack.build(ctx, tag="localhost/rl/p:1", settings=Settings.from_env({"MLPACK_HOME": str(tmp_path)}),
                        build_args={"SOURCE_DATE_EPOCH": EPOCH})
    assert _digest(built) == root.digest
    ms = _user_ctx(user, MULTI_STAGE)
    proc = user.mlpack("build", "-q", "-t", "localhost/rl/ms:1", str(ms))
    assert proc.returncode == 1
    assert "chown" in proc.stderr and "subordinate range" in proc.stderr and "usermod --add-subuids" in proc.stderr
    assert user.mlpack("images", "-q").stdout.count("ms") == 0



def test_run_network_without_tun_is_refused_naming_the_fix(ranged_user: User) -> None:
    tun = Path("/dev/net/tun")
    if not tun.exists():
        pytest.skip("no /dev/net/tun on this host")
    old = tun.stat().st_mode & 0o7777
    tun.chmod(0o600)  # as some hosts ship it
    try:
        proc = ranged_user.mlpack("build", "--no-cache", "-t", "localhost/rl/tun:1", str(_user_ctx(ranged_user, PLAIN)))
    finally:
        tun.chmod(old)
    assert proc.returncode == 1
    assert "chmod 0666 /dev/net/tun" in proc.stderr and "--network=none" in proc.stderr, proc.stderr
    note = root_mlpack("system", "delegate", ranged_user.name)
    root_mlpack("system", "delegate", "--undo", ranged_user.name)
    assert "note:" not in note.stdout  # the session's set-up made it openable

# --- devices ------------------------------------------------------------------------------------

@pytest.fixture
def fake_devices(ranged_user: User):
    """A CDI spec over three fake GPU nodes: one the user may open, one it may not, one at another path."""
    import stat

    tag = os.urandom(3).hex()
    where = ranged_user.home.parent / f"cdi-{tag}"  # a place the user can read
    where.mkdir(mode=0o755)
    nodes = {"open": (Path(f"/dev/mlpack-rl-{tag}-0"), 0o666, 0), "closed": (Path(f"/dev/mlpack-rl-{tag}-1"), 0o600, 1)}
    for path, mode, minor in nodes.values():
        os.mknod(path, mode | stat.S_IFCHR, os.makedev(195, minor))
        path.chmod(mode)
    elsewhere = where / "node"
    os.mknod(elsewhere, 0o666 | stat.S_IFCHR, os.makedev(195, 2))
    spec_dir = where / "cdi"
    spec_dir.mkdir(mode=0o755)
    devices = [{"name": k, "containerEdits": {"deviceNodes": [{"path": str(v[0])}]}} for k, v in nodes.items()]
    devices.append({"name": "moved", "containerEdits": {"deviceNodes": [{"path": f"/dev/mlpack-rl-{tag}-m",
                                                                         "hostPath": str(elsewhere)}]}})
    (spec_dir / "fake.json").write_text(json.dumps({"cdiVersion": "0.5.0", "kind": "example.com/gpu",
                                                    "devices": devices}))
    (spec_dir / "fake.json").chmod(0o644)
    yield {k: v[0] for k, v in nodes.items()}, str(spec_dir)
    for path, _, _ in nodes.values():
        path.unlink()


def test_rootless_gets_only_the_requested_device_and_is_told_what_it_cannot_have(
        ranged_user: User, fake_devices) -> None:
    nodes, spec_dir = fake_devices
    user = ranged_user
    ctx = _user_ctx(user, PLAIN)
    user.mlpack("build", "-q", "-t", "localhost/rl/plain:1", str(ctx), check=True)
    probe = f"ls {nodes['open']}; ls {nodes['closed']}; cat {nodes['open']}"
    proc = user.mlpack("run", "--rm", "--device", "example.com/gpu=open", "localhost/rl/plain:1", "sh", "-c", probe,
                       MLPACK_CDI_SPEC_DIRS=spec_dir)
    out = proc.stdout  # the container's stdout and stderr
    assert f"\n{nodes['open']}\n" in "\n" + out  # bound in
    assert f"{nodes['closed']}: No such file" in out  # only what was asked for
    assert "No such device or address" in out  # the open reached the (absent) driver
    proc = user.mlpack("run", "--rm", "--device", "example.com/gpu=closed", "localhost/rl/plain:1", "true",
                       MLPACK_CDI_SPEC_DIRS=spec_dir)
    assert proc.returncode == 1 and f"cannot open {nodes['closed']}" in proc.stderr, proc.stderr
    proc = user.mlpack("run", "--rm", "--device", "example.com/gpu=moved", "localhost/rl/plain:1", "true",
                       MLPACK_CDI_SPEC_DIRS=spec_dir)
    assert proc.returncode == 1 and "bound in from the same path" in proc.stderr, proc.stderr
    assert user.mlpack("ps", "-a", "-q").stdout.split() == []  # nothing half-created
    info = json.loads(user.mlpack("info", "--format", "json", check=True).stdout)
    assert "device cgroup cannot be enforced" in info["devices"]


# --- the main job, as an ordinary user ----------------------------------------------------------

@pytest.mark.slow
def test_main_job_as_an_ordinary_user(delegated: User, base_image, run_settings) -> None:
    """examples/main.py (mlpack.serve: capture, build, run with limits, predict, stop) as an ordinary user."""
    from mlpack.oci.base import BASE_REF
    from tests.integration.rootless.users import SYSTEM_PYTHON, VIEW

    user = delegated
    tar = user.home.parent / "base.tar"
    proc = subprocess.run([os.sys.executable, "-m", "mlpack", "save", "-o", str(tar), BASE_REF],
                          env=dict(os.environ, MLPACK_HOME=str(run_settings.home)), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    user.give(tar)
    user.mlpack("load", "-i", str(tar), check=True)
    tar.unlink()
    t0 = time.monotonic()
    proc = user.run(SYSTEM_PYTHON, str(VIEW / "src" / "examples" / "main.py"), "--name", "rl-main",
                    "--cpus", "0.5", "--memory", "256Mi", timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    for stage in ("capture", "render", "base", "build", "run", "ready", "parity"):
        assert f"[{stage}] done" in out, out[-4000:]
    assert "prediction        [0, 1, 2]" in out
    assert "container parity  ok" in out and "stopped and removed" in out
    assert user.mlpack("ps", "-a", "-q").stdout.split() == []
    print(f"\n[rootless main job] {time.monotonic() - t0:.1f} s")
