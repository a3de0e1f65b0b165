"""Finding 5: RUN steps were unbounded and outlived the build. Now each step runs in a cgroup
of its own with default pids and memory limits (``mlpack build --memory/--pids-limit/--cpus``),
and SIGINT, SIGTERM or SIGKILL of the builder leaves no process, mount, cgroup or directory
(a watchdog reaps the sandbox; the next build, ``system prune`` reap what is left, ``verify`` says so)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mlpack.builder.options import default_run_limits
from mlpack.errors import BuildError
from mlpack.settings import Settings
from tests.integration.security.buildattack import (  # noqa: F401 - bctx is a fixture
    bctx, needs_root_and_runtime, rendezvous, sandbox_ids, sandbox_leftovers, wait_for,
)
from tests.unit.builder.helpers import Ctx

pytestmark = [pytest.mark.build, pytest.mark.runtime]

REPO = Path(__file__).resolve().parents[3]


def test_default_limits_bound_every_step() -> None:
    limits = default_run_limits()
    assert limits.pids == 4096 and limits.memory is not None and limits.memory <= 8 << 30


def test_pids_limit_stops_a_fork_bomb(bctx: Ctx, busybox_httpd_image: str) -> None:
    from mlpack.types import Limits

    image = bctx.build(
        f"FROM {busybox_httpd_image}\n"
        "RUN n=0; while [ $n -lt 200 ]; do (sleep 600 &) 2>/dev/null || break; n=$((n+1)); done;"
        " echo $n > /started\n",
        no_cache=True, limits=Limits(pids=32))
    started = int(bctx.layer_file(image, "started"))
    assert 0 < started < 32


def test_memory_limit_kills_the_step(bctx: Ctx, busybox_httpd_image: str) -> None:
    from mlpack.types import Limits

    with pytest.raises(BuildError) as err:
        bctx.build(f"FROM {busybox_httpd_image}\n"
                   "RUN x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo ${#x}\n",
                   no_cache=True, limits=Limits(memory="48m"))
    assert err.value.exit_code == 137  # OOM-killed at the step's limit, not the host's


def _cli(settings: Settings, *args: str, **kw) -> subprocess.Popen:  # type: ignore[no-untyped-def]
    env = dict(os.environ, MLPACK_HOME=str(settings.home), PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-m", "mlpack", *args], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)


def _hanging_build(bctx: Ctx, busybox_httpd_image: str, ident: str) -> tuple[subprocess.Popen, list[str]]:
    """A build whose RUN step says it started (in a cache mount) and then hangs; returns it and its sandboxes."""
    sync = rendezvous(bctx.settings, ident)
    bctx.write("Dockerfile", f"FROM {busybox_httpd_image}\n"
                             f"RUN --mount=type=cache,id={ident},target=/sync "
                             f"sh -c 'sleep 6000 & touch /sync/started; sleep 6001'\n")
    proc = _cli(bctx.settings, "build", "--no-cache", "--pids-limit", "64", str(bctx.root))
    wait_for(lambda: (sync / "started").exists() or proc.poll() is not None, "the RUN step to start")
    assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
    return proc, sandbox_ids(bctx.settings)


def _step_processes() -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if cmd.startswith(b"sleep\x0060") and cmd in (b"sleep\x006000\x00", b"sleep\x006001\x00"):
            found.append(int(pid))
    return found


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_killing_the_builder_kills_its_step(bctx: Ctx, busybox_httpd_image: str, sig: signal.Signals) -> None:
    proc, sids = _hanging_build(bctx, busybox_httpd_image, f"security-kill-{sig.name}")
    assert sids and _step_processes()
    proc.send_signal(sig)
    proc.wait(timeout=60)
    try:
        wait_for(lambda: not sandbox_leftovers(bctx.settings, sids) and not _step_processes(),
                 f"the sandbox to be reaped after {sig.name}", timeout=60)
    except AssertionError:
        raise AssertionError(f"after {sig.name}: {sandbox_leftovers(bctx.settings, sids)}, "
                             f"step processes {_step_processes()}") from None


def test_a_sandbox_whose_watchdog_died_too_is_reported_and_reaped(bctx: Ctx, busybox_httpd_image: str) -> None:
    proc, sids = _hanging_build(bctx, busybox_httpd_image, "security-kill-all")
    watchdogs = [int(p) for p in os.listdir("/proc") if p.isdigit() and _is_watchdog(int(p), sids)]
    assert watchdogs
    for pid in watchdogs:
        os.kill(pid, signal.SIGKILL)
    proc.kill()
    proc.wait(timeout=60)
    assert sandbox_leftovers(bctx.settings, sids) and _step_processes()  # nobody reaped it ...
    verify = _cli(bctx.settings, "system", "verify")
    out = verify.communicate(timeout=120)[0].decode()
    assert verify.returncode == 1 and "leftover RUN sandbox" in out, out  # ... verify says so ...
    prune = _cli(bctx.settings, "system", "prune")
    out = prune.communicate(timeout=120)[0].decode()
    assert prune.returncode == 0 and "leftover RUN sandbox" in out, out  # ... and prune reaps it
    assert not sandbox_leftovers(bctx.settings, sids) and not _step_processes()


def _is_watchdog(pid: int, sids: list[str]) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(arg.endswith(b"sandboxwatch.py") for arg in cmd) and any(s.encode() in b" ".join(cmd) for s in sids)


def test_a_killed_builders_copy_from_view_is_reaped(bctx: Ctx, busybox_httpd_image: str, tmp_path: Path) -> None:
    lowers = [tmp_path / "l1", tmp_path / "l2"]
    for i, d in enumerate(lowers):
        d.mkdir()
        (d / f"f{i}").write_text("x")
    code = ("import sys, time; from pathlib import Path; from mlpack.builder.rootfs import merged_root\n"
            f"with merged_root([Path({str(lowers[0])!r}), Path({str(lowers[1])!r})], "
            f"Path({str(bctx.settings.home / 'sandbox')!r})) as root:\n"
            "    print(root, flush=True); time.sleep(600)\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    child = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE)
    assert child.stdout is not None
    view = Path(child.stdout.readline().decode().strip())  # the view is mounted: kill its builder now
    child.kill()
    child.wait(timeout=60)
    assert sorted(p.name for p in view.iterdir()) == ["f0", "f1"]  # left mounted by the dead builder
    assert any("view-" in line for line in sandbox_leftovers(bctx.settings, []))
    bctx.build(f"FROM {busybox_httpd_image}\nRUN true\n", no_cache=True)  # the next build reaps it
    assert not sandbox_leftovers(bctx.settings, [])
    assert (lowers[0] / "f0").exists() and (lowers[1] / "f1").exists()
