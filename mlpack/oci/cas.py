"""Content-addressed blobs and the index of an OCI image layout: the only code that writes.

What is atomic and idempotent (the contract other stages rely on):

* a blob appears under its name only complete, fsynced and verified (written to
  ``blobs/sha256/.tmp-*`` and renamed, see :mod:`mlpack.oci.blobs`); writing an existing blob
  again is a no-op; a crash leaves at most a ``.tmp-*`` file that :mod:`mlpack.oci.gc` removes
  and :mod:`mlpack.oci.validate` reports as garbage, never as corruption;
* ``index.json`` is replaced by rename under the exclusive ``flock`` of
  :meth:`BlobStore.locked`, and only after every blob it references exists (checked again
  under the lock) and ``blobs/sha256`` has been fsynced (so the renames of the blobs it names,
  by this process or another, are durable before the index that names them), so readers never
  need the lock and never see a dangling reference, not even after a power loss.

Names are written verbatim (their syntax is :mod:`mlpack.oci.refs`'s; Store normalises).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from mlpack.errors import StoreError
from mlpack.oci.blobs import BlobWriter, atomic_write
from mlpack.oci.media import MANIFEST_TYPES, OCI_INDEX, OCI_MANIFEST, REF_NAME, check_digest, digest_hex, sha256_digest

TYPE_CHECKING = False  # typing is the type checker's: a CLI start (mlpack run) does not import it
if TYPE_CHECKING:  # pragma: no cover
    from typing import IO, Any

__all__ = ["BlobStore"]


class BlobStore:
    """Blobs and index.json of an OCI image layout at ``root``, created on first write."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r})"

    def init(self) -> None:
        """Create the layout if missing (idempotent)."""
        blobs = self.root / "blobs" / "sha256"
        if (self.root / "oci-layout").exists() and blobs.is_dir():
            return
        blobs.mkdir(parents=True, exist_ok=True)
        with self.locked():
            if not (self.root / "oci-layout").exists():
                atomic_write(self.root / "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
            if not (self.root / "index.json").exists():
                atomic_write(self.root / "index.json", _index_bytes(_empty_index()))

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """The store's exclusive lock: index writers and gc hold it, readers never need it."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / "index.json.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing drops the lock, also when the process dies

    def blob_path(self, digest: str) -> Path:
        return self.root / "blobs" / "sha256" / digest_hex(digest)

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def blob_size(self, digest: str) -> int:
        return self.blob_path(digest).stat().st_size

    def blob_writer(self, expected_digest: str | None = None, expected_size: int | None = None,
                    max_size: int | None = None) -> BlobWriter:
        """A writer for one streamed blob: ``write()`` chunks, then ``commit()`` -> digest (checked
        against ``expected_*`` before it gets its name); leaving ``with`` uncommitted removes it."""
        return BlobWriter(self, expected_digest, expected_size, max_size)

    def put_blob(self, data: bytes, expected_digest: str | None = None) -> str:
        """Store ``data`` (verified against ``expected_digest`` if given); returns its digest."""
        digest = sha256_digest(data)
        if expected_digest and digest != check_digest(expected_digest):
            raise StoreError(f"blob content does not match its digest {expected_digest}",
                             hint="the source is corrupt", digest=expected_digest)
        if self.has_blob(digest):
            return digest
        with self.blob_writer(digest, len(data)) as w:
            w.write(data)
            return w.commit()

    def put_blob_stream(self, chunks: Iterable[bytes], expected_digest: str | None = None,
                        expected_size: int | None = None) -> str:
        """Store a stream of chunks; skipped when ``expected_digest`` is already present."""
        if expected_digest and self.has_blob(expected_digest):
            return expected_digest
        with self.blob_writer(expected_digest, expected_size) as w:
            for chunk in chunks:
                w.write(chunk)
            return w.commit()

    def open_blob(self, digest: str) -> IO[bytes]:
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            raise StoreError(f"blob {digest} is missing from the store at {self.root}",
                             hint="run `mlpack system verify`; pull or load the image again",
                             digest=digest) from None

    def read_blob(self, digest: str, *, verify: bool = True) -> bytes:
        with self.open_blob(digest) as f:
            data = f.read()
        if verify and sha256_digest(data) != digest:
            raise StoreError(f"blob {digest} in {self.root} does not match its name",
                             hint="the store is corrupt: run `mlpack system verify` and pull the image again",
                             digest=digest)
        return data

    def read_json(self, digest: str) -> dict[str, Any]:
        try:
            value = json.loads(self.read_blob(digest))
        except ValueError as exc:
            raise StoreError(f"blob {digest} is not JSON: {exc}", digest=digest) from None
        if not isinstance(value, dict):
            raise StoreError(f"blob {digest} is not a JSON object", digest=digest)
        return value

    def index(self) -> dict[str, Any]:
        """The current index.json (an empty index when the store does not exist yet)."""
        try:
            data = (self.root / "index.json").read_bytes()
        except FileNotFoundError:
            return _empty_index()
        try:
            index = json.loads(data)
        except ValueError as exc:
            raise StoreError(f"{self.root}/index.json is not valid JSON: {exc}",
                             hint="restore it or remove the store directory") from None
        index.setdefault("manifests", [])
        return index

    def update_index(self, change: Callable[[dict[str, Any]], None]) -> None:
        """Apply ``change`` to index.json under the lock and replace it atomically."""
        self.init()
        with self.locked():
            index = self.index()
            change(index)
            # the blobs' renames are made durable before the index that names them (one sync for
            # every blob written since the last one, by this process or another)
            atomic_write(self.root / "index.json", _index_bytes(index), sync_first=(self.root / "blobs" / "sha256",))

    def put_manifest(self, data: bytes, media_type: str = OCI_MANIFEST, *, ref: str | None = None,
                     platform: Mapping[str, str] | None = None) -> str:
        """Store manifest bytes as given, add them to the index named ``ref`` (verbatim); every
        blob the manifest references must already be in the store."""
        m = json.loads(data)
        needed = [m["config"], *m.get("layers", [])] if media_type in MANIFEST_TYPES else list(m.get("manifests", []))
        self._check_blobs(needed)
        digest = self.put_blob(data)
        desc: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": len(data)}
        if platform:
            desc["platform"] = dict(platform)
        # checked again under the lock: a concurrent gc may have run since
        self.add_to_index(desc, ref, needs=[{"digest": digest}, *needed])
        return digest

    def add_to_index(self, desc: Mapping[str, Any], ref_name: str | None,
                     needs: Sequence[Mapping[str, Any]] = ()) -> None:
        """Add ``desc`` (named ``ref_name``, which then leaves any other entry); ``needs`` must exist."""
        def change(index: dict[str, Any]) -> None:
            self._check_blobs(needs)
            entries = index["manifests"]
            if ref_name:
                entries[:] = [e for e in entries if (e.get("annotations") or {}).get(REF_NAME) != ref_name]
                entries.append({**desc, "annotations": {REF_NAME: ref_name}})
            elif not any(e.get("digest") == desc["digest"] for e in entries):
                entries.append(dict(desc))
        self.update_index(change)

    def _check_blobs(self, needed: Sequence[Mapping[str, Any]]) -> None:
        for desc in needed:
            if not self.has_blob(desc["digest"]):
                raise StoreError(f"manifest references blob {desc['digest']} which is not in the store",
                                 hint="store the config and layers before the manifest (or a concurrent "
                                      "`mlpack system prune` removed them: retry)")


def _empty_index() -> dict[str, Any]:
    return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}


def _index_bytes(index: Mapping[str, Any]) -> bytes:
    return json.dumps(index, indent=None, separators=(",", ":")).encode()
