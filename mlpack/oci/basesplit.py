"""Splitting a bootstrapped Debian tree into a runtime layer and a builder-tools layer.

    moved = split_packages(root, tools, ("python3-pip-whl", "dpkg"))

moves every file dpkg's database says the named packages own (their
``info/<package>.list``), the bytecode CPython compiled for their modules,
and their own database files from ``root`` to the same paths under
``tools``, and rewrites ``root``'s ``var/lib/dpkg/status`` without their
stanzas while ``tools`` gets the whole status. So ``root`` alone is an image
whose database lists exactly what it holds, and ``tools`` stacked on it
gives back the tree that was split, file for file: the offline base is
those two layers, and the runtime stage of a serving image starts from the
first only (:mod:`mlpack.oci.base`).

Every path of a list is resolved inside ``root`` (its directories through
the tree's own relative links, such as merged /usr's ``bin -> usr/bin``);
one that would leave ``root``, or that is not there, is skipped, so a list
cannot make this touch anything outside the tree. Directories stay unless
they end up empty and no package that stays lists them.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

__all__ = ["split_packages", "status_packages"]

_DPKG = "var/lib/dpkg"


def status_packages(status: str) -> list[str]:
    """The package names of a dpkg status file's stanzas, in order."""
    return [name for stanza in status.split("\n\n") if (name := _package(stanza)) is not None]


def _package(stanza: str) -> str | None:
    """The ``Package:`` field of one stanza (None: it has none)."""
    for line in stanza.splitlines():
        if line.startswith("Package:"):
            return line.partition(":")[2].strip()
    return None


def split_packages(root: Path, tools: Path, packages: Iterable[str]) -> list[str]:
    """Move what ``packages`` own from ``root`` to ``tools`` (see the module's docs); returns the
    packages moved, in the status's order (none when ``root`` has no dpkg status or lacks them all)."""
    status_path = root / _DPKG / "status"
    if not status_path.is_file() or status_path.is_symlink():
        return []
    status = status_path.read_text(encoding="utf-8")
    wanted = set(packages)
    names = status_packages(status)
    moved = [name for name in names if name in wanted]
    if not moved:
        return []
    info = root / _DPKG / "info"
    own_files = _info_files(info)
    listed = {name: _listed(own_files.get(name, [])) for name in names}
    kept_paths = {p for name in names if name not in wanted for p in listed[name]}
    # a listed path that other listed paths go through is a directory to dpkg, even where the
    # tree has a link there (merged /usr's bin -> usr/bin)
    directories = {parent for paths in listed.values() for p in paths for parent in _parents(p)}
    split = _Split(os.path.realpath(root), tools)
    emptied: set[str] = set()
    for name in moved:
        for path in listed[name]:
            real = _inside(split.top, path)
            if real is None:
                continue
            if path in directories or stat.S_ISDIR(os.lstat(real).st_mode):
                if path not in kept_paths:
                    emptied.add(real)
                continue
            split.move(real)
            if real.endswith(".py"):
                split.move_bytecode(real)
        for file in own_files.get(name, []):
            split.move(str(file))
    split.mirror(_DPKG)
    (tools / _DPKG / "status").write_text(status, encoding="utf-8")
    os.chmod(tools / _DPKG / "status", stat.S_IMODE(os.stat(status_path).st_mode))
    stanzas = [s.strip("\n") for s in status.split("\n\n") if s.strip()]
    kept = [s for s in stanzas if (p := _package(s)) is not None and p not in wanted]
    status_path.write_text("".join(s + "\n\n" for s in kept), encoding="utf-8")
    for directory in sorted(emptied, key=lambda d: d.count("/"), reverse=True):
        for d in (os.path.join(directory, "__pycache__"), directory):
            if os.path.isdir(d) and not os.path.islink(d) and not os.listdir(d):
                split.mirror(os.path.relpath(d, split.top))  # the layers stacked keep it
                split.remember_parent(d)
                os.rmdir(d)
    split.restore_times()
    return moved


class _Split:
    """Moves from the tree at ``top`` to ``tools``, keeping every directory's times as they were."""

    def __init__(self, top: str, tools: Path) -> None:
        self.top, self.tools = top, tools
        self.times: dict[str, tuple[int, int]] = {}  # directory -> (atime_ns, mtime_ns), both trees

    def remember_parent(self, path: str) -> None:
        parent = os.path.dirname(path)
        if parent not in self.times:
            st = os.lstat(parent)
            self.times[parent] = (st.st_atime_ns, st.st_mtime_ns)

    def move(self, real: str) -> None:
        """Move ``real`` (a path under the tree) to the same relative path under ``tools``."""
        rel = os.path.relpath(real, self.top)
        self.mirror(os.path.dirname(rel))
        self.remember_parent(real)
        os.rename(real, self.tools / rel)

    def move_bytecode(self, source: str) -> None:
        """The ``__pycache__`` bytecode of a moved module goes with it (without its source it is never read)."""
        directory, name = os.path.split(source)
        cache = os.path.join(directory, "__pycache__")
        if not os.path.isdir(cache) or os.path.islink(cache):
            return
        prefix = name[:-3] + "."
        for entry in sorted(os.listdir(cache)):
            if entry.startswith(prefix) and entry.endswith(".pyc"):
                self.move(os.path.join(cache, entry))

    def mirror(self, rel: str) -> None:
        """Make ``tools/rel`` and its parents with the mode and owner of the tree's directories."""
        if rel in ("", "."):
            return
        made, here = self.tools, self.top
        for part in rel.split("/"):
            made, here = made / part, os.path.join(here, part)
            if made.is_dir():
                continue
            st = os.lstat(here)
            made.mkdir()
            if os.geteuid() == 0:
                os.chown(made, st.st_uid, st.st_gid)
            os.chmod(made, stat.S_IMODE(st.st_mode))
            self.times[str(made)] = (st.st_atime_ns, st.st_mtime_ns)

    def restore_times(self) -> None:
        for path, ns in sorted(self.times.items(), key=lambda kv: kv[0].count("/"), reverse=True):
            if os.path.isdir(path):
                os.utime(path, ns=ns, follow_symlinks=False)


def _parents(rel: str) -> list[str]:
    parts = rel.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _info_files(info: Path) -> dict[str, list[Path]]:
    """dpkg's info directory by package: ``{"libc6": [libc6:amd64.list, libc6:amd64.md5sums, ...]}``."""
    out: dict[str, list[Path]] = {}
    if info.is_dir():
        for entry in sorted(os.listdir(info)):
            stem = entry.rpartition(".")[0]
            if stem:
                out.setdefault(stem.partition(":")[0], []).append(info / entry)
    return out


def _listed(files: list[Path]) -> list[str]:
    """The paths a package's ``.list`` names, relative (``usr/bin/dpkg``), without the root itself."""
    lists = [f for f in files if f.name.endswith(".list") and not f.is_symlink()]
    out = []
    for lst in lists:
        for line in lst.read_text(encoding="utf-8", errors="surrogateescape").splitlines():
            rel = line.strip().lstrip("/")
            if rel and rel != ".":
                out.append(rel)
    return out


def _inside(top: str, rel: str) -> str | None:
    """``rel``'s real path under ``top``, its directories resolved and the last component not
    followed; None when it is absent or anything would resolve outside ``top``."""
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return None
    parent = os.path.realpath(os.path.join(top, *parts[:-1]))
    if parent != top and not parent.startswith(top + "/"):
        return None
    path = os.path.join(parent, parts[-1])
    return path if os.path.lexists(path) else None
