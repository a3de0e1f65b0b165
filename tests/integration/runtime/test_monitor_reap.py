"""A dying container init waits in the kernel until every process of its PID namespace
has been reaped. When a process of that namespace was left to the monitor (its parent,
a runtime's exec helper, died first), the monitor must reap it while it waits for the
init, or the init never finishes exiting and `stop` hangs. The scene is built here
with the kernel's own mechanism, no runtime: a subreaper, a new PID namespace whose
init and second member are orphaned to it, and SIGKILL to the init."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a new PID namespace needs root here")

SCENE = textwrap.dedent("""
    import os, signal, sys
    from mlpack.runtime.launch import PR_SET_CHILD_SUBREAPER
    from mlpack.runtime.monitor import wait_for_init
    from mlpack.runtime.mounts import libc

    CLONE_NEWPID = 0x20000000
    assert libc().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    r, w = os.pipe()
    helper = os.fork()
    if helper == 0:  # the runtime's helper: makes the namespace, its init and one more member, then dies
        if libc().unshare(CLONE_NEWPID) != 0:
            os._exit(3)
        init = os.fork()
        if init == 0:
            os.execvp("sleep", ["sleep", "300"])
        member = os.fork()
        if member == 0:
            os.execvp("sleep", ["sleep", "300"])
        os.write(w, f"{init} {member}".encode())
        os._exit(0)
    os.waitpid(helper, 0)
    init, member = map(int, os.read(r, 64).split())
    ppids = [open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1] for p in (init, member)]
    assert ppids == [str(os.getpid())] * 2, ppids  # both orphaned to us, the subreaper
    os.kill(init, signal.SIGKILL)  # the kernel kills the member; the init waits for it to be reaped
    print(wait_for_init(init), flush=True)
    print("member reaped" if not os.path.exists(f"/proc/{member}") else "member left", flush=True)
""")


def test_the_monitor_reaps_orphans_of_a_dying_init() -> None:
    try:
        done = subprocess.run([sys.executable, "-c", SCENE], capture_output=True, text=True, timeout=60,
                              cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__)))))
    except subprocess.TimeoutExpired as exc:  # a blocking waitpid() on the init alone hangs here
        pytest.fail(f"waiting for the init hung: its namespace's orphan was never reaped ({exc.stdout!r})")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["137", "member reaped"]
