"""The monitor's start of `<runtime> run`: as subprocess would start it, and before the monitor loads
anything more (no runtime, no root: a shell stands in for the runtime)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

# What the started program sees of its process: signal dispositions and mask, descriptors.
SHOW = ["sh", "-c", "grep -E '^Sig(Ign|Blk|Cgt)' /proc/self/status; readlink /proc/self/fd/0; "
                    "ls /proc/self/fd | tr '\\n' ' '; echo"]


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh, single-threaded interpreter (as the monitor forked by `mlpack run` is)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                          env=env, timeout=60)


def test_the_runtime_starts_as_subprocess_would_start_it(tmp_path: Path) -> None:
    """Same signal dispositions and mask, same descriptors (none of the caller's, not even an
    inheritable one), stdin on /dev/null, output appended to container.log, exit status."""
    done = _python("""
        import os, signal, subprocess, sys
        from pathlib import Path
        from mlpack.runtime.launch import start_runtime

        cdir = Path(sys.argv[1])
        show = sys.argv[2:]
        leak_r, leak_w = os.pipe()
        os.set_inheritable(leak_w, True)  # subprocess's close_fds closes even this one
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # an ignored signal stays ignored in both
        (cdir / "pid").write_text("stale")
        started = start_runtime(show, cdir)
        assert started.wait() == 0 and not (cdir / "pid").exists()
        with open(cdir / "container.log", "ab") as log:
            assert subprocess.run(show, stdin=subprocess.DEVNULL, stdout=log, stderr=log).returncode == 0
        assert start_runtime(["sh", "-c", "exit 3"], cdir).wait() == 3
        assert start_runtime(["sh", "-c", "kill -TERM $$"], cdir).wait() == -15
        print(started.log_offset)
    """, str(tmp_path), *SHOW)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0"
    ours, theirs = (tmp_path / "container.log").read_text().split("SigBlk")[1:3]
    assert ours.strip() == theirs.strip()
    assert "/dev/null\n0 1 2 3 \n" in ours  # stdin; ls's own directory descriptor is the 4th


def test_a_runtime_that_cannot_be_executed_is_the_callers_oserror(tmp_path: Path) -> None:
    from mlpack.runtime.launch import start_runtime

    with pytest.raises(FileNotFoundError):
        start_runtime([str(tmp_path / "no-such-runtime"), "run"], tmp_path)


def test_the_forked_monitor_starts_the_runtime_before_it_loads_more(tmp_path: Path) -> None:
    """`mlpack run`'s monitor (a fork of the CLI) execs the runtime first: subprocess and the monitor's
    own module load while the runtime works, not before (they are not on a container's start path)."""
    cdir = tmp_path / "c"
    cdir.mkdir()
    record = {"id": "c" * 64, "name": "launch-test", "network": "host", "listen_ports": [],
              "restart": {"name": "no", "max_retries": 0}, "cgroups_path": "/mlpack-test-absent/launch",
              "runtime": {"name": "fake", "path": "true", "root": str(tmp_path / "rt"), "mode": "v2"}}
    (cdir / "record.json").write_text(json.dumps(record))
    (cdir / "status.json").write_text(json.dumps({"status": "created", "restart_count": 0}))
    done = _python("""
        import sys
        from pathlib import Path
        from mlpack.runtime import create

        real = create.start_runtime

        def recording(argv, cdir):
            loaded = [m for m in ("subprocess", "mlpack.runtime.monitor") if m in sys.modules]
            (cdir / "loaded-when-started").write_text(" ".join(loaded) or "-")
            return real(argv, cdir)

        create.start_runtime = recording
        create._spawn_monitor(Path(sys.argv[1]), [], ["sh", "-c", "echo the runtime ran"])
    """, str(cdir))
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 30
    while json.loads((cdir / "status.json").read_text()).get("status") != "exited":
        assert time.monotonic() < deadline, (cdir / "monitor.log").read_text()
        time.sleep(0.02)
    assert (cdir / "loaded-when-started").read_text() == "-"
    assert (cdir / "container.log").read_text() == "the runtime ran\n"
    status = json.loads((cdir / "status.json").read_text())
    assert status["exit_code"] == 125 and "fake run failed" in status["error"]  # it wrote no pid file
