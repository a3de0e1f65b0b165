"""Unpacked layers, shared by every container and build step.

Each layer is unpacked once, by diff_id, to ``<layers_dir>/sha256/<hex>``
in overlay form (whiteouts as char 0/0, opaque dirs marked with
``trusted.overlay.opaque=y``), so the runtime can stack the directories as
overlayfs lowerdirs. Unpacking goes to a temporary directory that is renamed
into place only when complete and verified (its diff_id matches the config):
a directory under ``sha256/`` is always whole. A per-layer ``flock`` makes
concurrent processes unpack a layer once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path


from mlpack.errors import UnpackError
from mlpack.oci.blobs import fsync_dir
from mlpack.oci.image import Image
from mlpack.oci.layout import Store
from mlpack.oci.media import digest_hex
from mlpack.settings import Settings

TYPE_CHECKING = False  # typing is the type checker's: a CLI start (mlpack run) does not import it
if TYPE_CHECKING:  # pragma: no cover
    from mlpack.oci.unpack import UnpackOptions

# The unpacker (and the tree record) load only when a layer is missing: a container start
# whose layers are unpacked already (the common case) does not pay for importing them.

__all__ = ["layer_dirs", "ensure_layer", "layer_path", "prune", "flatten"]

_TMP = ".tmp-"


def layer_path(layers_dir: Path, diff_id: str) -> Path:
    """Where the layer with ``diff_id`` is (or will be) unpacked."""
    return Path(layers_dir) / "sha256" / digest_hex(diff_id)


def layer_dirs(store: Store, image: Image, settings: Settings, *,
               progress: Callable[[str, int, int], None] | None = None) -> list[Path]:
    """Unpack every layer of ``image`` once; returns their directories, base layer first.

    ``progress(diff_id, index, total)`` is called before each layer.
    """
    if len(image.layers) != len(image.diff_ids):
        raise UnpackError(f"image {image.digest} has {len(image.layers)} layers but {len(image.diff_ids)} diff_ids",
                          hint="the image is broken; rebuild or pull it again")
    out = []
    for i, (desc, diff_id) in enumerate(zip(image.layers, image.diff_ids)):
        if progress:
            progress(diff_id, i, len(image.layers))
        out.append(ensure_layer(store, desc["digest"], diff_id, settings.layers_dir))
    return out


def ensure_layer(store: Store, blob_digest: str, diff_id: str, layers_dir: Path,
                 options: UnpackOptions | None = None) -> Path:
    """The directory of layer ``diff_id``, unpacking blob ``blob_digest`` first if needed."""
    final = layer_path(layers_dir, diff_id)
    if final.is_dir():
        return final
    base = final.parent
    base.mkdir(parents=True, exist_ok=True)
    lock_dir = Path(layers_dir) / ".locks"
    lock_dir.mkdir(exist_ok=True)
    fd = os.open(lock_dir / f"{final.name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if final.is_dir():  # another process finished it while we waited
            return final
        tmp = base / f"{_TMP}{final.name}-{os.getpid()}-{os.urandom(4).hex()}"
        tmp.mkdir(mode=0o755)
        from mlpack.oci.layertree import record_tree
        from mlpack.oci.unpack import UnpackOptions, apply_layer

        try:
            opts = options or UnpackOptions(whiteouts="overlay")
            with store.open_blob(blob_digest) as f:
                apply_layer(tmp, f, opts, expected_diff_id=diff_id)
            os.chmod(tmp, 0o755)
            record_tree(layers_dir, diff_id, tmp)  # `system verify` finds a layer modified later
            os.rename(tmp, final)
            fsync_dir(base)
        except BaseException:
            import shutil  # not at import: a container's start unpacks nothing in the common case

            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final
    finally:
        os.close(fd)


def prune(layers_dir: Path, keep: Iterable[str], *, grace_s: float = 300.0) -> int:
    """Remove unpacked layers whose diff_id is not in ``keep`` and stale temp dirs; returns how many."""
    base = Path(layers_dir) / "sha256"
    if not base.is_dir():
        return 0
    import shutil  # not at import: a container's start prunes nothing

    wanted = {digest_hex(d) for d in keep}
    removed = 0
    now = time.time()
    for entry in os.scandir(base):
        if entry.name in wanted:
            continue
        with contextlib.suppress(FileNotFoundError):
            if now - entry.stat(follow_symlinks=False).st_mtime < grace_s:
                continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed += 1
    return removed


def flatten(store: Store, image: Image, dest: str | os.PathLike[str], options: UnpackOptions | None = None) -> Path:
    """Apply every layer of ``image`` in order into ``dest`` (whiteouts deleting): one plain rootfs."""
    from mlpack.oci.unpack import UnpackOptions, apply_layer

    dest = Path(dest)
    opts = options or UnpackOptions(whiteouts="apply")
    for desc, diff_id in zip(image.layers, image.diff_ids):
        with store.open_blob(desc["digest"]) as f:
            apply_layer(dest, f, opts, expected_diff_id=diff_id)
    return dest
