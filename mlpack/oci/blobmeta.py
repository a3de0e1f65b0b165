"""What push remembers about blobs beyond the store (Docker's distribution metadata).

Two facts, kept in one small JSON file (``<cache_dir>/registry/blobs.json``):

- the gzip twin of an uncompressed layer: ``diff_id -> (digest, size)`` of the
  compressed blob made for it once, so a later push reuses it instead of
  compressing again (the twin is checked to still be in the store before use);
- which repositories of a registry hold a blob (after a push or a pull), so a
  push to another repository of that registry mounts the blob instead of
  uploading it again.

It is a cache: a missing, unreadable or malformed file reads as empty, and
entries that do not parse are ignored. Updates are read-modify-write under an
``flock`` and land by ``os.replace`` of a fsynced temporary file, so readers
see the old or the new file, never a torn one. Sizes are bounded: at most
``MAX_TWINS`` twins, ``MAX_BLOBS`` blobs per registry, ``MAX_REGISTRIES``
registries and ``MAX_REPOS`` repositories per blob, the oldest going first,
and the file never grows past half of ``_MAX_FILE`` (the oldest half of every
table goes until it fits), so it is never cut when read back.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from mlpack.oci.media import check_digest

__all__ = ["BlobMeta"]

MAX_TWINS = 4096
MAX_BLOBS = 8192
MAX_REGISTRIES = 64
MAX_REPOS = 8
_MAX_FILE = 16 << 20


class BlobMeta:
    """The file at ``path``; every method reads it afresh (other processes may have changed it)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def gzip_twin(self, diff_id: str) -> tuple[str, int] | None:
        """(digest, size) of the compressed blob made for the layer ``diff_id``, if one was made."""
        entry = self._read()["gzip"].get(diff_id)
        return (entry[0], entry[1]) if entry else None

    def set_gzip_twin(self, diff_id: str, digest: str, size: int) -> None:
        with self._update() as doc:
            twins = doc["gzip"]
            twins.pop(diff_id, None)
            twins[diff_id] = [digest, size]
            _trim(twins, MAX_TWINS)

    def repositories(self, registry: str, digest: str) -> list[str]:
        """Repositories of ``registry`` known to hold ``digest``, most recent first."""
        return list(reversed(self._read()["repos"].get(registry, {}).get(digest, [])))

    def add_repository(self, registry: str, repository: str, digests: Iterable[str]) -> None:
        """Record that ``repository`` on ``registry`` holds every blob in ``digests``."""
        digests = list(digests)
        if not digests:
            return
        with self._update() as doc:
            registries = doc["repos"]
            blobs = registries.pop(registry, {})
            registries[registry] = blobs
            for digest in digests:
                repos = [r for r in blobs.pop(digest, []) if r != repository] + [repository]
                blobs[digest] = repos[-MAX_REPOS:]
            _trim(blobs, MAX_BLOBS)
            _trim(registries, MAX_REGISTRIES)

    def forget_repository(self, registry: str, repository: str, digest: str) -> None:
        """``repository`` turned out not to hold ``digest`` (deleted there since)."""
        with self._update() as doc:
            repos = doc["repos"].get(registry, {}).get(digest)
            if repos and repository in repos:
                repos.remove(repository)

    def _read(self) -> dict[str, Any]:
        try:
            with open(self.path, "rb") as f:
                raw = json.loads(f.read(_MAX_FILE + 1)[:_MAX_FILE])
        except (OSError, ValueError):
            raw = {}
        return _clean(raw if isinstance(raw, dict) else {})

    @contextlib.contextmanager
    def _update(self) -> Iterator[dict[str, Any]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            doc = self._read()
            yield doc
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".blobs-")
            try:
                data = json.dumps(doc, separators=(",", ":"))
                while len(data) > _MAX_FILE // 2:
                    _halve(doc)
                    data = json.dumps(doc, separators=(",", ":"))
                with os.fdopen(fd, "w") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise


def _trim(entries: dict[str, Any], limit: int) -> None:
    while len(entries) > limit:
        del entries[next(iter(entries))]


def _halve(doc: dict[str, Any]) -> None:
    for table in (doc["gzip"], *doc["repos"].values()):
        _trim(table, len(table) // 2)


def _digest(value: Any) -> bool:
    try:
        check_digest(value)
        return True
    except ValueError:
        return False


def _clean(raw: dict[str, Any]) -> dict[str, Any]:
    """Only well-formed entries of a file that is only a cache (and may have been edited or cut)."""
    twins = {k: [v[0], v[1]] for k, v in (raw.get("gzip") or {}).items()
             if _digest(k) and isinstance(v, list) and len(v) == 2 and _digest(v[0])
             and isinstance(v[1], int) and v[1] >= 0} if isinstance(raw.get("gzip"), dict) else {}
    repos: dict[str, dict[str, list[str]]] = {}
    if isinstance(raw.get("repos"), dict):
        for registry, blobs in raw["repos"].items():
            if not isinstance(blobs, dict):
                continue
            repos[registry] = {d: [r for r in rs if isinstance(r, str)][-MAX_REPOS:]
                               for d, rs in blobs.items() if _digest(d) and isinstance(rs, list)}
    return {"gzip": twins, "repos": repos}
