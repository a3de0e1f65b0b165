"""Tree digests of unpacked layers: ``mlpack system verify`` finds a modified one.

Unpacked layers (``<layers_dir>/sha256/<hex>``) are shared by every container
and build: they are only ever overlay lowers, but a layer modified on disk
(by an older mlpack's ``RUN --mount=type=bind,from=...,rw``, or by hand)
would plant files in every later container. When a layer is unpacked (or a
RUN step's upper directory is adopted as one) its tree digest is recorded in
``<layers_dir>/trees/<hex>``; :func:`check_layers` recomputes it.

The digest covers every path with its type, mode, owner, size, content
sha256, symlink target, device numbers and overlay opaque mark, never mtimes
(the builder's adopted directories keep the step's own times). Repairing a
layer removes the directory: the next run or build unpacks it again from its
blob, which the store verified.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

from mlpack.oci.media import digest_hex
from mlpack.values import dataclass

__all__ = ["tree_digest", "record_tree", "check_layers", "remove_layer", "LayerCheck"]

_CHUNK = 1 << 20


def _file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _opaque(path: str) -> str:
    try:
        return "o" if os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y" else ""
    except OSError:
        return ""


def tree_digest(root: Path) -> str:
    """sha256 over the sorted tree below ``root`` (never following a symlink)."""
    h = hashlib.sha256()
    top = str(root)
    stack = [""]
    while stack:
        rel = stack.pop()
        full = f"{top}/{rel}" if rel else top
        for name in sorted(os.listdir(full)):
            sub = f"{rel}/{name}" if rel else name
            path = f"{top}/{sub}"
            st = os.lstat(path)
            mode = st.st_mode
            extra = ""
            if stat.S_ISREG(mode):
                extra = f"{st.st_size}:{_file_sha256(path)}"
            elif stat.S_ISLNK(mode):
                extra = os.readlink(path)
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                extra = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
            elif stat.S_ISDIR(mode):
                extra = _opaque(path)
                stack.append(sub)
            h.update(f"{sub}\0{mode:o}\0{st.st_uid}\0{st.st_gid}\0{extra}\n".encode("utf-8", "surrogateescape"))
    return "sha256:" + h.hexdigest()


def _record_path(layers_dir: Path, diff_id: str) -> Path:
    return Path(layers_dir) / "trees" / digest_hex(diff_id)


def record_tree(layers_dir: Path, diff_id: str, root: Path) -> None:
    """Remember the tree digest of ``root``, the unpacked form of ``diff_id`` (atomically)."""
    path = _record_path(layers_dir, diff_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    import tempfile  # when a layer is unpacked, not on every container start

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "w") as fh:
        fh.write(tree_digest(root))
    os.replace(tmp, path)


@dataclass(frozen=True)
class LayerCheck:
    """One unpacked layer: ``status`` is ok, modified or unrecorded (unpacked by an older mlpack)."""

    diff_id: str
    path: Path
    status: str


def check_layers(layers_dir: Path) -> list[LayerCheck]:
    """Every unpacked layer against its recorded tree digest."""
    base = Path(layers_dir) / "sha256"
    out: list[LayerCheck] = []
    try:
        names = sorted(n for n in os.listdir(base) if not n.startswith("."))
    except OSError:
        return out
    for name in names:
        path = base / name
        if not path.is_dir() or path.is_symlink():
            continue
        diff_id = "sha256:" + name
        try:
            want = _record_path(layers_dir, diff_id).read_text().strip()
        except OSError:
            out.append(LayerCheck(diff_id, path, "unrecorded"))
            continue
        try:
            got = tree_digest(path)
        except OSError:
            got = ""
        out.append(LayerCheck(diff_id, path, "ok" if got == want else "modified"))
    return out


def remove_layer(layers_dir: Path, diff_id: str) -> None:
    """Drop an unpacked layer (renamed away first, so it is never seen half-removed)."""
    path = Path(layers_dir) / "sha256" / digest_hex(diff_id)
    doomed = path.with_name(f".tmp-repair-{path.name}-{os.getpid()}")
    try:
        os.rename(path, doomed)
    except FileNotFoundError:
        return
    shutil.rmtree(doomed, ignore_errors=True)
    _record_path(layers_dir, diff_id).unlink(missing_ok=True)
