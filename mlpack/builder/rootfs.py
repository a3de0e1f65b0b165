"""Unpacked layer directories, and a read-only view of a stage's root filesystem.

A RUN step needs every layer below it as an overlay lowerdir. Layers that
came from the store are unpacked once per diff_id by ``mlpack.oci.layercache``;
the upper directory of a RUN step is already in overlay form, so it is moved
to where the layer cache keeps that diff_id and used as is.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from mlpack.builder.cache import is_virtual
from mlpack.builder.changeset import lower_lookup
from mlpack.errors import BuildError
from mlpack.oci import layercache
from mlpack.oci.layout import Layer, Store
from mlpack.settings import Settings

__all__ = ["LayerDirs", "merged_root"]


class LayerDirs:
    """diff_id -> an unpacked directory in overlay lowerdir form (``mlpack.oci.layercache``)."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.virtual_root = settings.cache_dir / "build" / "virtual"
        self._known: dict[str, Path] = {}

    def adopt_virtual(self, layer: Layer, path: Path) -> Path:
        """Keep ``path`` as the directory of a virtual layer (a RUN of a non-target stage)."""
        target = self.virtual_root / layer.digest.split(":", 1)[1]
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(path, target)
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

    def lowers(self, layers: list[Layer]) -> list[Path]:
        """Directories base first (the order mount_overlay takes)."""
        return [self.get(layer) for layer in layers]


class RootView:
    """Path lookups across a stack of layer directories (no mount needed)."""

    def __init__(self, dirs: list[Path]) -> None:
        self.top_first = list(reversed(dirs))

    def lstat(self, path: str) -> os.stat_result | None:
        found = lower_lookup(self.top_first, path.strip("/"))
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
            found = lower_lookup(self.top_first, candidate)
            if found is None:
                return "/".join(out + parts[i:])
            if stat.S_ISLNK(found[1].st_mode):
                if depth > 40:
                    raise BuildError(f"too many levels of symlinks at /{candidate}")
                target = os.readlink(found[0])
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
        found = lower_lookup(self.top_first, rel)
        if found is None or not stat.S_ISREG(found[1].st_mode):
            return None
        with open(found[0], "rb") as fh:
            return fh.read()


@contextlib.contextmanager
def merged_root(dirs: list[Path], scratch: Path) -> Iterator[Path]:
    """A read-only-by-convention merged view of ``dirs`` (base first), for COPY --from.

    One directory needs no mount; several are stacked with overlayfs over a
    throwaway upper directory.
    """
    if not dirs:
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

    scratch.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(dir=scratch, prefix="view-"))
    upper, work, target = base / "u", base / "w", base / "m"
    for p in (upper, work, target):
        p.mkdir()
    mount_overlay(dirs, upper, work, target)
    try:
        yield target
    finally:
        umount(target)
        shutil.rmtree(base, ignore_errors=True)
