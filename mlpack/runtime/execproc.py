"""The process of `mlpack exec` and of the HEALTHCHECK: the container's own, running another command.

`<runtime> exec` without ``--process`` makes up a process of its own (crun:
uid 0, no noNewPrivileges; ``--user 10001`` gives gid 0). Like docker exec,
mlpack instead hands the runtime a complete process object copied from the
container's config.json: the same user, groups, capabilities, rlimits and
noNewPrivileges, with only args (and, when asked, env, cwd, user) replaced.
The seccomp profile is the container's: crun and runc apply it to every
process they exec into it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from mlpack.errors import RunError
from mlpack.runtime.spec import merge_env, resolve_user
from mlpack.runtime.state import read_json

TYPE_CHECKING = False  # typing is the type checker's: a CLI start (mlpack run) does not import it
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

__all__ = ["exec_process", "process_file"]


def exec_process(cdir: Path, args: Sequence[str], *, env: Sequence[str] = (), user: str | None = None,
                 workdir: str | None = None) -> dict[str, Any]:
    """The config.json ``process`` of the container in ``cdir`` with ``args`` and the given overrides."""
    if not args:
        raise RunError("exec needs a command", hint="mlpack exec CONTAINER COMMAND [ARG...]")
    config = read_json(cdir / "config.json")
    if not config.get("process"):
        raise RunError(f"container {cdir.name[:12]} has no config.json", hint="it was removed; run a new one")
    proc = json.loads(json.dumps(config["process"]))
    proc.update(args=list(args), terminal=False, noNewPrivileges=True)
    if user:
        uid, gid, groups, home = resolve_user(cdir / "rootfs", user)
        proc["user"] = {"uid": uid, "gid": gid, **({"additionalGids": list(groups)} if groups else {})}
        if home:
            env = [f"HOME={home}", *env]
    if env:
        proc["env"] = list(merge_env(proc.get("env"), env))
    if workdir:
        if not workdir.startswith("/"):
            raise RunError(f"--workdir {workdir!r} must be an absolute path inside the container")
        proc["cwd"] = workdir
    return proc


@contextmanager
def process_file(cdir: Path, process: dict[str, Any], prefix: str = "exec-") -> Iterator[str]:
    """``process`` written to a private file in the container directory for ``exec --process``."""
    import tempfile  # for exec only, not on every container start

    fd, path = tempfile.mkstemp(prefix=prefix, suffix=".json", dir=cdir)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(process, fh)
        yield path
    finally:
        os.unlink(path)
