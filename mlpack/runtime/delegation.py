"""cgroup limits for ordinary users: which case holds, and `mlpack system delegate`.

An unprivileged process may only write cgroups it owns. Four cases:

``root``     mlpack runs as root: containers go under /mlpack/<id>.
``systemd``  cgroup v2 and this process sits in a cgroup systemd delegated to
             the user (``systemd-run --user --scope -p Delegate=yes``):
             containers go under it.
``mlpack``   an administrator ran ``mlpack system delegate USER`` once: every
             controller has /mlpack/user-<uid>, owned by the user, and
             containers go under it, enforced exactly as root's are.
``none``     no cgroup the user may write: a run that asks for a limit is
             refused with the command that fixes it; nothing is silently
             unenforced.

Delegating is idempotent; ``undo`` refuses while a delegated cgroup still
holds processes, and checks that before it removes anything.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from mlpack.errors import ConfigError, RunError
from mlpack.runtime.host import CGROUP_PARENT, CGROUP_ROOT, cgroup_mode
from mlpack.runtime.idmap import host_uid
from mlpack.values import dataclass

__all__ = ["LimitsCase", "Delegation", "limits_case", "delegate", "hierarchies", "user_cgroup"]

# What a v2 delegation enables below the root and hands over (systemd's list of delegated files).
_V2_CONTROLLERS = ("cpu", "memory", "pids")
_V2_DELEGATED_FILES = ("cgroup.procs", "cgroup.threads", "cgroup.subtree_control")


def user_cgroup(uid: int) -> str:
    """The cgroup (relative to each hierarchy) that ``mlpack system delegate`` hands to ``uid``."""
    return f"{CGROUP_PARENT}/user-{uid}"


def hierarchies(root: Path = CGROUP_ROOT) -> list[Path]:
    """The cgroup hierarchies a container joins: the v2 root, or every v1 controller mount."""
    if cgroup_mode(root) == "v2":
        return [root]
    seen: set[str] = set()
    out = []
    for d in sorted(root.iterdir()):
        if d.name == "unified" or d.is_symlink() or not (d / "cgroup.procs").exists():
            continue
        real = os.path.realpath(d)
        if real not in seen:
            seen.add(real)
            out.append(d)
    return out


@dataclass(frozen=True)
class LimitsCase:
    """How (and whether) this user's container limits are enforced."""

    kind: str  # root, systemd, mlpack or none
    cgroup_parent: str | None  # where containers' cgroups go; None when nowhere
    detail: str

    @property
    def enforced(self) -> bool:
        return self.cgroup_parent is not None


def _owned_by(path: Path, uid: int) -> bool:
    try:
        st = path.stat()
    except OSError:
        return False
    # Inside our own user namespace the host uid shows as the id it maps to (0).
    return st.st_uid == (os.geteuid() if host_uid() == uid else uid)


def _own_v2_cgroup(uid: int, root: Path) -> str | None:
    """This process's v2 cgroup when systemd delegated it to ``uid`` with cpu, memory and pids."""
    try:
        line = next(x for x in Path("/proc/self/cgroup").read_text().splitlines() if x.startswith("0::"))
    except (OSError, StopIteration):
        return None
    rel = line[3:].strip("/")
    here = root / rel
    try:
        controllers = set((here / "cgroup.controllers").read_text().split())
    except OSError:
        return None
    if rel and _owned_by(here, uid) and set(_V2_CONTROLLERS) <= controllers:
        return rel
    return None


def limits_case(uid: int, root: Path = CGROUP_ROOT) -> LimitsCase:
    """Which case holds for the host user ``uid``."""
    if uid == 0:
        return LimitsCase("root", CGROUP_PARENT, "root: containers' cgroups under /" + CGROUP_PARENT)
    rel = user_cgroup(uid)
    dirs = [h / rel for h in hierarchies(root)]
    if dirs and all(_owned_by(d, uid) for d in dirs):
        return LimitsCase("mlpack", rel, f"delegated by `mlpack system delegate`: cgroups under /{rel}")
    if cgroup_mode(root) == "v2":
        own = _own_v2_cgroup(uid, root)
        if own:
            return LimitsCase("systemd", own, f"systemd-delegated cgroup v2: cgroups under /{own}")
    missing = [str(d) for d in dirs if not _owned_by(d, uid)]
    detail = "no cgroup this user may write" + (f" ({missing[0]} is missing or not its own)" if missing else "")
    return LimitsCase("none", None, detail)


@dataclass(frozen=True)
class Delegation:
    """What ``delegate`` did: the user and the cgroup directories it now owns (or no longer)."""

    user: str
    uid: int
    gid: int
    dirs: tuple[Path, ...]
    changed: bool


def _resolve_user(user: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        raise ConfigError(f"no user {user!r} on this host", hint="give a user name or uid from /etc/passwd") from None


def _copy_cpuset(parent: Path, child: Path) -> None:
    """A new v1 cpuset is empty (no process may join it) until its cpus and mems are set."""
    for name in ("cpuset.cpus", "cpuset.mems"):
        f = child / name
        if f.exists() and not f.read_text().strip():
            f.write_text((parent / name).read_text().strip() or "\n")


def _chown_tree_top(d: Path, uid: int, gid: int, v2: bool) -> None:
    os.chown(d, uid, gid)
    names = _V2_DELEGATED_FILES if v2 else [p.name for p in d.iterdir() if p.is_file()]
    for name in names:
        if (d / name).exists():
            os.chown(d / name, uid, gid)


def _busy(d: Path) -> int:
    n = 0
    for sub in [d, *(p for p in d.rglob("*") if p.is_dir())]:
        try:
            n += len((sub / "cgroup.procs").read_text().split())
        except OSError:
            pass
    return n


def delegate(user: str, *, undo: bool = False, root: Path = CGROUP_ROOT) -> Delegation:
    """Create (or with ``undo`` remove) /mlpack/user-<uid> under every hierarchy, owned by ``user``."""
    if os.geteuid() != 0:
        raise RunError("only root can delegate cgroups", hint=f"run it as an administrator: sudo mlpack system delegate {user}")
    ent = _resolve_user(user)
    if ent.pw_uid == 0:
        raise ConfigError("root needs no delegation", hint="name the ordinary user that will run mlpack")
    v2 = cgroup_mode(root) == "v2"
    rel = user_cgroup(ent.pw_uid)
    dirs = tuple(h / rel for h in hierarchies(root))
    if not dirs:
        raise RunError(f"no cgroup hierarchy under {root}", hint="mount cgroup2 (or the v1 controllers) first")
    if undo:
        busy = {str(d): n for d in dirs if d.is_dir() and (n := _busy(d))}
        if busy:
            where, n = next(iter(busy.items()))
            raise RunError(f"{ent.pw_name} still has {n} process(es) in {where}",
                           hint=f"stop that user's containers first (as {ent.pw_name}: mlpack ps; mlpack stop ...)")
        changed = False
        for d in dirs:
            if not d.is_dir():
                continue
            for sub in sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                sub.rmdir()
            d.rmdir()
            changed = True
        return Delegation(ent.pw_name, ent.pw_uid, ent.pw_gid, dirs, changed)
    changed = False
    for h, d in zip(hierarchies(root), dirs):
        parent = h / CGROUP_PARENT
        if v2:
            _enable_v2(h)
        if not parent.is_dir():
            parent.mkdir()
            changed = True
        if v2:
            _enable_v2(parent)
        elif (h / "cpuset.cpus").exists():
            _copy_cpuset(h, parent)
        if not d.is_dir():
            d.mkdir()
            changed = True
        if not v2 and (h / "cpuset.cpus").exists():
            _copy_cpuset(parent, d)
        if d.stat().st_uid != ent.pw_uid:
            changed = True
        _chown_tree_top(d, ent.pw_uid, ent.pw_gid, v2)
    return Delegation(ent.pw_name, ent.pw_uid, ent.pw_gid, dirs, changed)


def _enable_v2(d: Path) -> None:
    have = set((d / "cgroup.controllers").read_text().split())
    on = set((d / "cgroup.subtree_control").read_text().split())
    want = [c for c in _V2_CONTROLLERS if c in have and c not in on]
    if want:
        (d / "cgroup.subtree_control").write_text(" ".join("+" + c for c in want))
