"""Changesets: what a step adds, changes or deletes, as layer entries.

Two producers: :func:`from_upperdir` converts an overlayfs upper directory
(after a RUN) into OCI form (char 0/0 -> ``.wh.<name>``, the
``trusted.overlay.opaque`` xattr -> ``<dir>/.wh..wh..opq``, copy-up noise
dropped by comparing with the lower layers, ``trusted.overlay.*`` never
kept); COPY and ADD build their entries directly (see :mod:`.copying`).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from mlpack.oci.layer import Entry, is_opaque, layer_xattrs

__all__ = ["Entry", "from_upperdir", "lower_lookup"]

# overlayfs bookkeeping (kernel and userxattr flavours) never goes into a layer
_CHUNK = 1 << 20


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def lower_lookup(lowers: list[Path], rel: str) -> tuple[str, os.stat_result] | None:
    """The path and stat of ``rel`` in the merged lowers (top first), or None
    when absent or whited out."""
    parts = rel.split("/")
    for lower in lowers:
        # a whiteout or opaque marker on a parent hides everything below it
        base = str(lower)
        hidden = False
        for k in range(1, len(parts)):
            parent = base + "/" + "/".join(parts[:k])
            try:
                pst = os.lstat(parent)
            except OSError:
                break
            if _is_whiteout(pst) or not stat.S_ISDIR(pst.st_mode):
                hidden = True
                break
        if hidden:
            return None
        path = base + "/" + rel
        try:
            st = os.lstat(path)
        except OSError:
            # stop at an opaque parent: lowers below it are hidden
            parent = os.path.dirname(path)
            if os.path.isdir(parent) and is_opaque(parent) and parent != base:
                return None
            continue
        if _is_whiteout(st):
            return None
        return path, st
    return None


def _same_content(a: str, b: str, size: int) -> bool:
    if size == 0:
        return True
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            ca = fa.read(_CHUNK)
            cb = fb.read(_CHUNK)
            if ca != cb:
                return False
            if not ca:
                return True


def _entry_for(path: str, rel: str, st: os.stat_result, links: dict[tuple[int, int], str]) -> Entry:
    mode = stat.S_IMODE(st.st_mode)
    base = dict(path=rel, mode=mode, uid=st.st_uid, gid=st.st_gid, mtime=int(st.st_mtime),
                xattrs=layer_xattrs(path))
    if stat.S_ISREG(st.st_mode):
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1:
            if key in links:
                return Entry(type="hardlink", linkname=links[key], **base)  # type: ignore[arg-type]
            links[key] = rel
        return Entry(type="file", source=Path(path), **base)  # type: ignore[arg-type]
    if stat.S_ISDIR(st.st_mode):
        return Entry(type="dir", **base)  # type: ignore[arg-type]
    if stat.S_ISLNK(st.st_mode):
        return Entry(type="symlink", linkname=os.readlink(path), **base)  # type: ignore[arg-type]
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        return Entry(type="char" if stat.S_ISCHR(st.st_mode) else "block",
                     devmajor=os.major(st.st_rdev), devminor=os.minor(st.st_rdev), **base)  # type: ignore[arg-type]
    if stat.S_ISFIFO(st.st_mode):
        return Entry(type="fifo", **base)  # type: ignore[arg-type]
    raise OSError(f"unsupported file type at {path}")  # sockets are skipped by the caller


def _unchanged(path: str, st: os.stat_result, lower: tuple[str, os.stat_result] | None) -> bool:
    """Copy-up noise: same type, mode, owner, mtime, size and bytes as below."""
    if lower is None:
        return False
    lpath, lst = lower
    if (stat.S_IFMT(st.st_mode) != stat.S_IFMT(lst.st_mode) or st.st_mode != lst.st_mode
            or st.st_uid != lst.st_uid or st.st_gid != lst.st_gid):
        return False
    if stat.S_ISDIR(st.st_mode):
        return int(st.st_mtime) == int(lst.st_mtime)
    if stat.S_ISLNK(st.st_mode):
        return os.readlink(path) == os.readlink(lpath)
    if stat.S_ISREG(st.st_mode):
        return (st.st_size == lst.st_size and st.st_mtime_ns == lst.st_mtime_ns
                and layer_xattrs(path) == layer_xattrs(lpath) and _same_content(path, lpath, st.st_size))
    return st.st_rdev == lst.st_rdev


def from_upperdir(upper: Path, lowers: list[Path]) -> list[Entry]:
    """Entries (sorted, parents first) for what the upper dir changed over ``lowers``."""
    links: dict[tuple[int, int], str] = {}
    out: list[Entry] = []

    def walk(dirpath: str, rel_dir: str) -> list[Entry]:
        entries: list[Entry] = []
        with os.scandir(dirpath) as it:
            names = sorted((e.name for e in it), key=lambda n: n.encode("utf-8", "surrogateescape"))
        for name in names:
            path = f"{dirpath}/{name}"
            rel = f"{rel_dir}/{name}" if rel_dir else name
            st = os.lstat(path)
            if stat.S_ISSOCK(st.st_mode):
                continue  # sockets cannot live in a tar layer
            if _is_whiteout(st):
                entries.append(Entry(path=rel, type="whiteout"))
                continue
            lower = lower_lookup(lowers, rel)
            if stat.S_ISDIR(st.st_mode):
                opaque = is_opaque(path)
                children = walk(path, rel)
                if opaque:
                    children.insert(0, Entry(path=rel, type="opaque"))
                if children or opaque or lower is None or not _unchanged(path, st, lower):
                    entries.append(_entry_for(path, rel, st, links))
                    entries.extend(children)
                continue
            if _unchanged(path, st, lower):
                continue
            entries.append(_entry_for(path, rel, st, links))
        return entries

    out = walk(str(upper), "")
    return out
