"""The watchdog of one RUN sandbox, run as a script (stdlib only):

    python -S .../sandboxwatch.py <home>/sandbox/<sid>

It waits on a pipe only the builder holds. The builder writes ``done`` when the
step is over and closes it; end of file without ``done`` means the builder
died (SIGKILL included), and the watchdog reaps the sandbox with
:func:`mlpack.runtime.sandboxreap.reap`. It imports the reaper (ctypes,
subprocess, json, shutil, pathlib) only then: a step that ends, the common
case, costs a bare interpreter's start, about 15 ms of CPU instead of 40 (a
build runs one watchdog per RUN step, beside the step itself).
"""

import os
import sys


def wait_for_builder() -> bool:
    """Read stdin to its end; True when the builder said ``done`` first."""
    import _signal  # not signal: it imports enum

    # Leave the builder's process group and its terminal's signals: only the pipe matters.
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
    _signal.signal(_signal.SIGTERM, _signal.SIG_IGN)
    data = b""
    while True:
        try:
            chunk = os.read(0, 64)
        except InterruptedError:
            continue
        if not chunk:
            return data.strip() == b"done"
        data += chunk


if __name__ == "__main__":  # pragma: no cover - the watchdog process
    if not wait_for_builder():
        from pathlib import Path

        from sandboxreap import reap  # beside this script (sys.path[0]), stdlib only too

        reap(Path(sys.argv[1]))
