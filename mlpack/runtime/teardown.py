"""Undo everything one container made: runtime state, cgroup, mounts, its directory."""

from __future__ import annotations

from pathlib import Path

from mlpack.runtime.cgroups import remove_cgroup
from mlpack.runtime.host import Runtime
from mlpack.runtime.mounts import mounts_under, umount
from mlpack.runtime.netns import delete_netns
from mlpack.runtime.rootless import rmtree

TYPE_CHECKING = False  # typing is the type checker's: a CLI start (mlpack run) does not import it
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

__all__ = ["runtime_of", "release_container", "remove_container_dir"]


def runtime_of(record: dict[str, Any]) -> Runtime:
    """The runtime a container was created with (a later MLPACK_RUNTIME must not matter)."""
    r = record["runtime"]
    return Runtime(name=r["name"], path=r["path"], root=Path(r["root"]), mode=r["mode"], holder=r.get("holder"))


def release_container(record: dict[str, Any]) -> None:
    """Delete the runtime's container and its cgroup (the container is stopped or gets killed)."""
    rt = runtime_of(record)
    rt.call("delete", "--force", record["id"], check=False)
    remove_cgroup(record["cgroups_path"])


def remove_container_dir(cdir: Path, record: dict[str, Any]) -> None:
    """release_container, then unmount the root and the netns and remove the directory."""
    if record:
        release_container(record)
    for point in sorted(mounts_under(cdir), key=len, reverse=True):
        if point.endswith("/netns"):
            delete_netns(Path(point))
        else:
            umount(point)
    rmtree(cdir)  # as an ordinary user, files of subordinate ids too
