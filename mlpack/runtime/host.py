"""What this host offers: the cgroup mode and the OCI runtime binary.

The cgroup layout decides how limits are read back and how crun must be
started: crun 1.8 refuses a v1/v2 *hybrid* host ("cgroups in hybrid mode not
supported") unless it runs in a private mount namespace where the empty
cgroup2 at /sys/fs/cgroup/unified is unmounted, so :class:`Runtime` wraps
every crun call that way on hybrid hosts. runc 1.1 works as is.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from mlpack.errors import RunError
from mlpack.runtime.idmap import in_user_namespace
from mlpack.runtime.rootless import enter_argv, is_rootless
from mlpack.settings import Settings
from mlpack.values import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    import subprocess

__all__ = ["cgroup_mode", "Runtime", "select_runtime", "host_info", "CGROUP_ROOT"]

CGROUP_ROOT = Path("/sys/fs/cgroup")
# The parent cgroup of every mlpack container (cgroupsPath /mlpack/<id>).
CGROUP_PARENT = "mlpack"


def cgroup_mode(root: Path = CGROUP_ROOT) -> str:
    """``"v2"`` (unified), ``"hybrid"`` (v1 controllers + a cgroup2 at unified/) or ``"v1"``."""
    if (root / "cgroup.controllers").exists():
        return "v2"
    if (root / "unified" / "cgroup.controllers").exists():
        return "hybrid"
    return "v1"


# The shell snippet that hides the hybrid cgroup2 mount from crun. `umount -l`
# only affects the private mount namespace `unshare` just made.
_CRUN_HYBRID = 'umount -l /sys/fs/cgroup/unified 2>/dev/null; exec "$0" "$@"'


@dataclass(frozen=True)
class Runtime:
    """One OCI runtime binary and how to call it on this host."""

    name: str  # "crun" or "runc" (or the basename of a custom binary)
    path: str
    root: Path  # the runtime's state directory (--root), private to mlpack's home
    mode: str  # cgroup mode
    holder: str | None = None  # rootless: the container dir whose namespaces calls enter

    @property
    def needs_hybrid_wrapper(self) -> bool:
        # inside a user namespace the cgroup2 is covered instead (rootless.cover_unified)
        return self.name == "crun" and self.mode == "hybrid" and not in_user_namespace()

    def argv(self, *args: str) -> list[str]:
        """The full command line for ``<runtime> --root R args...``."""
        base = [self.path, "--root", str(self.root), *args]
        if self.needs_hybrid_wrapper:
            base = ["unshare", "--mount", "--propagation", "private", "sh", "-c", _CRUN_HYBRID, *base]
        return enter_argv(self.holder) + base if is_rootless() else base

    def call(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run one short runtime command (state, kill, delete) and capture its output."""
        import subprocess  # not at import: `mlpack run` starts a container without it

        proc = subprocess.run(
            self.argv(*args), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise RunError(
                f"{self.name} {args[0]} failed (exit {proc.returncode}): {proc.stderr.strip()}",
                hint="run `mlpack info` to check the runtime; MLPACK_RUNTIME=runc selects the other one",
                exit_code=proc.returncode,
                stderr=proc.stderr,
            )
        return proc

    def version(self) -> str:
        import subprocess  # not at import: `mlpack run` starts a container without it

        try:
            out = subprocess.run([self.path, "--version"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired):
            return "unknown"
        first = out.strip().splitlines()[0] if out.strip() else "unknown"
        return first


def _which(name: str) -> str | None:
    """shutil.which(name) (shutil, with bz2, lzma and zlib, is not imported on `mlpack run`'s path)."""
    search = os.environ.get("PATH", os.defpath)
    for d in search.split(os.pathsep) if search else ():
        path = os.path.join(d, name)
        if os.access(path, os.X_OK) and not os.path.isdir(path):
            return path
    return None


def _find(name: str) -> str | None:
    if "/" in name:
        return name if os.access(name, os.X_OK) else None
    return _which(name) or next(
        (p for p in (f"/usr/bin/{name}", f"/usr/sbin/{name}", f"/usr/local/bin/{name}") if os.access(p, os.X_OK)),
        None,
    )


@lru_cache(maxsize=8)
def _select(choice: str | None, home: str, mode: str) -> Runtime:
    # crun 1.8 on a hybrid host needs the cgroup2 hidden, which a user namespace can only
    # paper over (rootless.cover_unified): there runc, which copes, comes first.
    rootless = is_rootless() or in_user_namespace()
    candidates = [choice] if choice else ["runc", "crun"] if rootless and mode == "hybrid" else ["crun", "runc"]
    for cand in candidates:
        path = _find(cand)
        if path is None:
            continue
        name = Path(path).name
        if name == "crun" and mode == "hybrid" and _which("unshare") is None:
            if choice:
                raise RunError(
                    "crun needs `unshare` (util-linux) on this hybrid cgroup host",
                    hint="install util-linux or set MLPACK_RUNTIME=runc",
                )
            continue
        return Runtime(name=name, path=path, root=Path(home) / "runtime" / name, mode=mode)
    raise RunError(
        f"no OCI runtime found (looked for {', '.join(candidates)})",
        hint="install one: `apt-get install crun` (or runc), or point MLPACK_RUNTIME at the binary",
    )


def select_runtime(settings: Settings) -> Runtime:
    """The runtime named by Settings.runtime, else crun where present, else runc."""
    return _select(settings.runtime, str(settings.home), cgroup_mode())


def host_info(settings: Settings) -> dict[str, object]:
    """What ``mlpack info`` shows about running containers on this host."""
    info: dict[str, object] = {"cgroup_mode": cgroup_mode()}
    try:
        rt = select_runtime(settings)
    except RunError as exc:
        info["runtime"] = None
        info["runtime_error"] = exc.message
        return info
    info["runtime"] = rt.name
    info["runtime_path"] = rt.path
    info["runtime_version"] = rt.version()
    if rt.needs_hybrid_wrapper:
        info["runtime_note"] = "crun runs in a private mount namespace without /sys/fs/cgroup/unified (hybrid host)"
    info["containers"] = str(settings.containers_dir)
    return info
