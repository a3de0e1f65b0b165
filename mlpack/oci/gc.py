"""Reachability and garbage collection of the store.

:func:`reachable` only reads. :func:`gc` only deletes, and only under the
store's lock (:meth:`BlobStore.locked <mlpack.oci.cas.BlobStore.locked>`),
the one index writers hold, so it never races a tag; it spares unreferenced
blobs and temp files younger than ``grace_s`` (a concurrent pull or build
writes its blobs before the manifest that tags them, without the lock).
A crash in the middle leaves fewer garbage blobs, never a dangling reference.
"""

from __future__ import annotations

import contextlib
import json
import os
import time

from mlpack.errors import StoreError
from mlpack.oci.blobs import TMP_PREFIX
from mlpack.oci.cas import BlobStore
from mlpack.oci.media import digest_hex

__all__ = ["reachable", "gc"]


def reachable(store: BlobStore) -> set[str]:
    """Digests of every blob the index references, directly or through manifests."""
    seen: set[str] = set()
    todo = [e["digest"] for e in store.index()["manifests"]]
    while todo:
        d = todo.pop()
        if d in seen:
            continue
        seen.add(d)
        try:
            m = json.loads(store.read_blob(d, verify=False))
        except (StoreError, ValueError):
            continue
        if not isinstance(m, dict):
            continue
        if "config" in m:
            seen.add(m["config"]["digest"])
        seen.update(x["digest"] for x in m.get("layers", []) if "digest" in x)  # layers are leaves
        todo.extend(x["digest"] for x in m.get("manifests", []))
    return seen


def gc(store: BlobStore, *, grace_s: float = 300.0) -> tuple[int, int]:
    """Delete unreferenced blobs and stale temp files older than ``grace_s``; returns (count, bytes)."""
    blobs = store.root / "blobs" / "sha256"
    if not blobs.is_dir():
        return 0, 0
    count = freed = 0
    now = time.time()
    with store.locked():
        keep = {digest_hex(d) for d in reachable(store)}
        for entry in os.scandir(blobs):
            if entry.name in keep:
                continue
            st = entry.stat(follow_symlinks=False)
            if now - st.st_mtime < grace_s:
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                count += 1
                freed += st.st_size
        for entry in os.scandir(store.root):  # an index.json replacement cut short by a crash
            if entry.name.startswith(TMP_PREFIX) and now - entry.stat().st_mtime >= grace_s:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
    return count, freed
