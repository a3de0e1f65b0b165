"""Dropping the build cache (what ``docker builder prune -a`` does).

The cache is step records, the hash cache of context files, the upper
directories of intermediate stages ("virtual" layers) and the RUN cache
mounts (pip's downloads). None of it is needed for images already in the
store: losing it only makes the next build cold. Run it while no build is
running: a build in flight loses its scratch directories and fails.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from mlpack.settings import Settings

__all__ = ["prune_cache"]


def _size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
    return total


def prune_cache(settings: Settings, *, mounts: bool = True) -> int:
    """Remove the build cache (and the RUN cache mounts unless ``mounts`` is False); returns bytes freed."""
    targets = [settings.cache_dir / "build"]
    if mounts:
        targets.append(settings.cache_dir / "mounts")
    freed = 0
    for target in targets:
        if not target.exists():
            continue
        freed += _size(target)
        # Rename first, so a half-done removal never looks like a valid cache.
        doomed = target.with_name(f".{target.name}.pruning-{os.getpid()}")
        os.rename(target, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
    return freed
