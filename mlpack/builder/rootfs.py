"""Unpacked layer directories, and a read-only view of a stage's root filesystem.

A RUN step needs every layer below it as an overlay lowerdir. Layers that
came from the store are unpacked once per diff_id by ``mlpack.oci.layercache``;
the upper directory of a RUN step is already in overlay form, so it is moved
to where the layer cache keeps that diff_id and used as is.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
from collections import namedtuple
from collections.abc import Iterator
from pathlib import Path

from mlpack.builder.cache import is_virtual
from mlpack.errors import BuildError
from mlpack.oci import layercache
from mlpack.oci.layer import Entry, is_opaque
from mlpack.oci.blobs import replace_text
from mlpack.oci.layertree import record_tree
from mlpack.oci.image import Layer
from mlpack.oci.layout import Store
from mlpack.settings import Settings

TYPE_CHECKING = False  # typing is the type checker's: a CLI rebuild does not import it
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

__all__ = ["LayerDirs", "RootView", "Meta", "merged_root", "index_of"]


class LayerDirs:
    """diff_id -> an unpacked directory in overlay lowerdir form (``mlpack.oci.layercache``)."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.virtual_root = settings.cache_dir / "build" / "virtual"
        self.index_root = settings.cache_dir / "build" / "index"
        self._known: dict[str, Path] = {}
        self._indexes: dict[str, dict[str, Any]] = {}

    def adopt_virtual(self, layer: Layer, path: Path) -> Path:
        """Keep ``path`` as the directory of a virtual layer (a RUN of a non-target stage)."""
        target = self.virtual_root / layer.digest.split(":", 1)[1]
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():  # an identical step of a concurrent build won: keep theirs (it may be mounted)
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.rename(path, target)
            except OSError:
                shutil.rmtree(path, ignore_errors=True)
        self._known[layer.diff_id] = target
        return target

    def adopt(self, diff_id: str, path: Path) -> Path:
        """Keep ``path`` (a RUN upper dir) as the unpacked form of ``diff_id``.

        It goes where the layer cache would unpack that layer, so running the
        image later does not unpack it again.
        """
        target = layercache.layer_path(self.settings.layers_dir, diff_id)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(path, target)
            except OSError:  # raced with an unpack of the same layer: theirs is as good
                pass
            else:
                record_tree(self.settings.layers_dir, diff_id, target)
        self._known[diff_id] = target
        return target

    def get(self, layer: Layer) -> Path:
        """The directory of ``layer``, unpacking it first if needed."""
        known = self._known.get(layer.diff_id)
        if known is None and is_virtual(layer):
            known = self.virtual_root / layer.digest.split(":", 1)[1]
            if not known.is_dir():
                raise BuildError(f"the build cache lost the directory of {layer.digest}",
                                 hint="build again with --no-cache")
            self._known[layer.diff_id] = known
        if known is None:
            known = layercache.ensure_layer(self.store, layer.digest, layer.diff_id, self.settings.layers_dir)
            self._known[layer.diff_id] = known
        return known

    def _index_path(self, layer: Layer) -> Path:
        return self.index_root / (layer.digest.split(":", 1)[1] + ".json")

    def save_index(self, layer: Layer, entries: list[Entry]) -> None:
        """Remember the paths of a layer the builder wrote, for lookups without unpacking."""
        data = index_of(entries)
        self._indexes[layer.digest] = data
        self._write_index(layer, data)

    def _write_index(self, layer: Layer, data: dict[str, Any]) -> None:
        path = self._index_path(layer)
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_text(path, json.dumps(data, separators=(",", ":")))  # dumps: C encoder, not dump's Python one

    def index(self, layer: Layer) -> dict[str, Any] | None:
        if is_virtual(layer):
            return None
        data = self._indexes.get(layer.digest)
        if data is None:
            try:
                data = json.loads(self._index_path(layer).read_text())
            except (OSError, ValueError):
                if os.geteuid() == 0:
                    return None
                # an ordinary user outside any namespace of its own (user namespaces refused):
                # its unpacked layers lost their owners, so lookups read the blob's tar headers
                data = self._index_from_blob(layer)
            self._indexes[layer.digest] = data
        return data

    def _index_from_blob(self, layer: Layer) -> dict[str, Any]:
        """The index of a stored layer from its tar headers (owners as the image has them)."""
        import tarfile

        from mlpack.oci.unpack import open_layer_stream

        paths: dict[str, list[Any]] = {}
        whiteouts, opaque = [], []
        with open(self.store.blob_path(layer.digest), "rb") as raw, \
                tarfile.open(fileobj=open_layer_stream(raw), mode="r|") as tar:
            for m in tar:
                rel = os.path.normpath("/" + m.name).strip("/")
                head, _, base = rel.rpartition("/")
                if base == ".wh..wh..opq":
                    opaque.append(head)
                elif base.startswith(".wh."):
                    whiteouts.append(f"{head}/{base[4:]}".strip("/"))
                elif rel:
                    kind = (stat.S_IFDIR if m.isdir() else stat.S_IFLNK if m.issym() else stat.S_IFCHR if m.ischr()
                            else stat.S_IFBLK if m.isblk() else stat.S_IFIFO if m.isfifo() else stat.S_IFREG)
                    paths[rel] = [kind | (m.mode & 0o7777), m.uid, m.gid, int(m.mtime),
                                  m.linkname if m.issym() else ""]
        for rel in list(paths) + whiteouts + opaque:  # parents a tar leaves out: 0755 root dirs
            parts = rel.split("/")
            for k in range(1, len(parts)):
                paths.setdefault("/".join(parts[:k]), [stat.S_IFDIR | 0o755, 0, 0, 0, ""])
        data = {"paths": paths, "whiteouts": whiteouts, "opaque": opaque}
        self._write_index(layer, data)
        return data

    def lowers(self, layers: list[Layer]) -> list[Path]:
        """Directories base first (the order mount_overlay takes)."""
        return [self.get(layer) for layer in layers]


# The stat fields lookups need (from lstat or from a layer index): a tuple, made once per path of a
# layer's index (collections' namedtuple: typing.NamedTuple would import typing on every build).
Meta = namedtuple("Meta", ["st_mode", "st_uid", "st_gid", "st_mtime", "linkname"], defaults=("",))
Meta.__doc__ = "The stat fields lookups need (from lstat or from a layer index)."


_WHITEOUT = Meta(stat.S_IFCHR, 0, 0, 0)
_TYPE_BITS = {"file": stat.S_IFREG, "dir": stat.S_IFDIR, "symlink": stat.S_IFLNK, "hardlink": stat.S_IFREG,
              "char": stat.S_IFCHR, "block": stat.S_IFBLK, "fifo": stat.S_IFIFO}


class _IndexLayer:
    """A layer the builder wrote, known by its entries: lookups without unpacking."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.paths: dict[str, list[Any]] = data["paths"]  # a Meta made per lookup: a build looks up a few paths
        self.whiteouts: set[str] = set(data.get("whiteouts", ()))
        self.opaque: set[str] = set(data.get("opaque", ()))

    def lookup(self, rel: str) -> Meta | None:
        if rel in self.whiteouts:
            return _WHITEOUT
        found = self.paths.get(rel)
        return None if found is None else Meta(*found)

    def is_opaque(self, rel_dir: str) -> bool:
        return rel_dir in self.opaque


class _DirLayer:
    def __init__(self, path: Path) -> None:
        self.base = str(path)

    def lookup(self, rel: str) -> Meta | None:
        full = f"{self.base}/{rel}"
        try:
            st = os.lstat(full)
        except OSError:
            return None
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            return _WHITEOUT
        link = os.readlink(full) if stat.S_ISLNK(st.st_mode) else ""
        return Meta(st.st_mode, st.st_uid, st.st_gid, int(st.st_mtime), link)

    def is_opaque(self, rel_dir: str) -> bool:
        return is_opaque(f"{self.base}/{rel_dir}" if rel_dir else self.base)


def index_of(entries: list[Entry]) -> dict[str, Any]:
    """What a layer index keeps of a layer's entries (no content)."""
    paths: dict[str, list[Any]] = {}
    whiteouts, opaque = [], []
    for e in entries:
        rel = e.path.strip("/")
        if e.type == "whiteout":
            whiteouts.append(rel)
        elif e.type == "opaque":
            opaque.append(rel)
        else:
            mode = _TYPE_BITS[e.type] | (e.mode & 0o7777)
            paths[rel] = [mode, e.uid, e.gid, int(e.mtime), e.linkname if e.type == "symlink" else ""]
    for rel in list(paths) + whiteouts + opaque:  # the layer writer adds missing parents as 0755 dirs
        parts = rel.split("/")
        for k in range(1, len(parts)):
            paths.setdefault("/".join(parts[:k]), [stat.S_IFDIR | 0o755, 0, 0, 0, ""])
    return {"paths": paths, "whiteouts": whiteouts, "opaque": opaque}


class RootView:
    """Path lookups in the merged root of ``layers`` (no mount, no unpacking where
    the builder kept an index of the layer)."""

    def __init__(self, layers: list[Layer], dirs: LayerDirs) -> None:
        self.layers = list(reversed(layers))  # top first
        self.dirs = dirs
        self._access: dict[int, _IndexLayer | _DirLayer] = {}

    def _layer(self, i: int) -> _IndexLayer | _DirLayer:
        acc = self._access.get(i)
        if acc is None:
            layer = self.layers[i]
            index = self.dirs.index(layer)
            acc = _IndexLayer(index) if index is not None else _DirLayer(self.dirs.get(layer))
            self._access[i] = acc
        return acc

    def _find(self, rel: str) -> tuple[int, Meta] | None:
        parts = rel.split("/")
        parents = ["/".join(parts[:k]) for k in range(1, len(parts))]
        for i in range(len(self.layers)):
            acc = self._layer(i)
            for parent in parents:  # a whiteout or a non-directory above hides the path
                meta = acc.lookup(parent)
                if meta is not None and (meta is _WHITEOUT or not stat.S_ISDIR(meta.st_mode)):
                    return None
            meta = acc.lookup(rel)
            if meta is _WHITEOUT:
                return None
            if meta is not None:
                return i, meta
            if any(acc.is_opaque(p) for p in parents):
                return None
        return None

    def lstat(self, path: str) -> Meta | None:
        rel = path.strip("/")
        if not rel:
            return Meta(stat.S_IFDIR | 0o755, 0, 0, 0)
        found = self._find(rel)
        return None if found is None else found[1]

    def is_dir(self, path: str) -> bool:
        """True when ``path`` (following symlinks inside the root) is a directory."""
        rel = self.resolve(path)
        if rel is None:
            return False
        st = self.lstat(rel)
        return st is not None and stat.S_ISDIR(st.st_mode)

    def resolve(self, path: str, depth: int = 0) -> str | None:
        """Resolve symlinks component by component, staying inside the root."""
        parts = [p for p in path.split("/") if p and p != "."]
        out: list[str] = []
        for i, part in enumerate(parts):
            if part == "..":
                if out:
                    out.pop()
                continue
            candidate = "/".join(out + [part])
            found = self._find(candidate)
            if found is None:
                return "/".join(out + parts[i:])
            meta = found[1]
            if stat.S_ISLNK(meta.st_mode):
                if depth > 40:
                    raise BuildError(f"too many levels of symlinks at /{candidate}")
                target = meta.linkname
                base = "" if target.startswith("/") else "/".join(out)
                resolved = self.resolve(f"{base}/{target}", depth + 1)
                if resolved is None:
                    return None
                out = [p for p in resolved.split("/") if p]
            else:
                out.append(part)
        return "/".join(out)

    def read_file(self, path: str) -> bytes | None:
        rel = self.resolve(path)
        if rel is None:
            return None
        found = self._find(rel)
        if found is None or not stat.S_ISREG(found[1].st_mode):
            return None
        with open(self.dirs.get(self.layers[found[0]]) / rel, "rb") as fh:  # content needs the unpacked layer
            return fh.read()


@contextlib.contextmanager
def merged_root(dirs: list[Path], scratch: Path) -> Iterator[Path]:
    """A read-only-by-convention merged view of ``dirs`` (base first), for COPY --from.

    One directory needs no mount; several are stacked with overlayfs over a
    throwaway upper directory, in a directory of ``scratch`` (the home's
    ``sandbox/``) that records its owner, so that the mount of a killed build
    is reaped like its RUN sandboxes (:mod:`mlpack.runtime.sandboxreap`).
    """
    if not dirs:
        import tempfile

        empty = Path(tempfile.mkdtemp(dir=scratch, prefix="empty-"))
        try:
            yield empty
        finally:
            shutil.rmtree(empty, ignore_errors=True)
        return
    if len(dirs) == 1:
        yield dirs[0]
        return
    from mlpack.runtime.mounts import mount_overlay, umount
    from mlpack.runtime.sandboxreap import write_owner

    base = scratch / f"view-{os.urandom(6).hex()}"
    base.mkdir(parents=True)
    try:
        write_owner(base, {})
        upper, work, target = base / "u", base / "w", base / "m"
        for p in (upper, work, target):
            p.mkdir()
        mount_overlay(dirs, upper, work, target)
        try:
            yield target
        finally:
            umount(target)
    finally:
        shutil.rmtree(base, ignore_errors=True)
