"""Container state on disk, so any later process sees what an earlier one started.

    <containers_dir>/<id>/
        record.json    what was asked for (written once, by `run`)
        status.json    what is happening (written by the container's monitor)
        config.json    the OCI runtime bundle's config; rootfs/ is its root
        upper/ work/   the overlay's writable layer and scratch dir
        netns          the pinned network namespace (private network mode)
        container.log  the container's stdout and stderr
        monitor.log    the monitor's own complaints
        stop           present once a user asked it to stop (no restart then)

Every JSON file is replaced atomically (temp file + rename), so a reader
never sees half a file.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from mlpack.errors import ContainerNotFound, RunError

TYPE_CHECKING = False  # typing is the type checker's: a CLI start (mlpack run) does not import it
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

__all__ = ["write_json", "read_json", "container_dirs", "find_container_dir", "pid_alive", "now_iso"]


_SEQ = itertools.count()


def _temp_file(path: Path) -> tuple[int, str]:
    """A new file next to ``path`` (what tempfile.mkstemp makes, without importing tempfile and
    random on every container start): ``.<name>.<pid>.<n>``, created exclusively, mode 0600."""
    for _ in range(10_000):
        tmp = os.path.join(path.parent, f".{path.name}.{os.getpid()}.{next(_SEQ)}")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), tmp
        except FileExistsError:  # left by a dead process with the same pid
            continue
    raise RunError(f"cannot create a temporary file next to {path}", hint="remove stale .*.<pid>.* files there")


def now_iso() -> str:
    """UTC now as datetime's isoformat(timespec="milliseconds") writes it (``...T01:02:03.456+00:00``),
    without importing datetime on a container's start."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}+00:00"


def write_json(path: Path, data: dict[str, Any], *, indent: int | None = 1) -> None:
    """``data`` as JSON at ``path``, replaced atomically; ``indent=None`` for a large file that only
    programs read (config.json: json's C encoder takes no indent, and json.dump never uses it)."""
    text = json.dumps(data, indent=indent, default=str)
    fd, tmp = _temp_file(path)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path) as fh:
            return json.load(fh)
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as exc:
        raise RunError(f"container state {path} is corrupt: {exc}", hint="remove the container with rm -f") from None


def container_dirs(root: Path) -> Iterator[Path]:
    if not root.is_dir():
        return
    for d in sorted(root.iterdir()):
        if d.is_dir() and (d / "record.json").exists():
            yield d


def find_container_dir(root: Path, ref: str) -> Path:
    """By full id, unique id prefix, or name."""
    if not ref or "/" in ref or ref.startswith("."):
        raise ContainerNotFound(f"no such container: {ref!r}")
    exact = root / ref
    if (exact / "record.json").exists():
        return exact
    matches = []
    for d in container_dirs(root):
        if d.name.startswith(ref) or read_json(d / "record.json").get("name") == ref:
            matches.append(d)
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise ContainerNotFound(f"no such container: {ref}", hint="`mlpack ps -a` lists containers")
    raise RunError(f"{ref!r} matches {len(matches)} containers", hint="give more of the id")


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
