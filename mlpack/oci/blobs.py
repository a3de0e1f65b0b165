"""Atomic files of the store: blobs that appear only complete and verified, replaced files.

A blob is written to ``.tmp-<pid>-<random>`` in its final directory, hashed
while written, checked against the expected digest and size, fsynced and
renamed to its digest: after a crash a blob name always matches its content,
and what is left is a ``.tmp-`` file. The rename itself becomes durable when
the directory is fsynced, which :meth:`mlpack.oci.cas.BlobStore.update_index`
does before index.json names anything: one directory sync for all the blobs an
image adds (its layers, config and manifest) instead of one per blob. Until
then a crash of the machine may lose a new blob's name (never its content
under another name), and nothing durable refers to it yet.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from mlpack.errors import StoreError
from mlpack.oci import faults
from mlpack.oci.media import check_digest, digest_hex

TYPE_CHECKING = False  # typing is the type checker's: a CLI start (mlpack run) does not import it
if TYPE_CHECKING:  # pragma: no cover
    from typing import IO

    from mlpack.oci.cas import BlobStore

__all__ = ["BlobWriter", "fsync_dir", "atomic_write", "replace_text", "temp_file", "TMP_PREFIX"]

TMP_PREFIX = ".tmp-"


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename in it survives a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobWriter:
    """Streams one blob into the store; see :meth:`BlobStore.blob_writer`."""

    def __init__(self, store: "BlobStore", expected_digest: str | None, expected_size: int | None,
                 max_size: int | None) -> None:
        self._store = store
        self._expected = check_digest(expected_digest) if expected_digest else None
        self._expected_size = expected_size
        self._max = max_size if max_size is not None else expected_size
        import hashlib  # a blob written: `mlpack run` reads blobs only (see media.sha256_digest)

        self._hash = hashlib.sha256()
        self.size = 0
        store.init()
        self._dir = store.root / "blobs" / "sha256"
        fd, tmp = temp_file(self._dir)
        self._file: IO[bytes] | None = os.fdopen(fd, "wb")
        self._tmp = Path(tmp)
        self.digest: str | None = None

    def write(self, data: bytes) -> int:
        assert self._file is not None, "blob already committed"
        self.size += len(data)
        if self._max is not None and self.size > self._max:
            raise StoreError(
                f"blob is larger than expected ({self.size} > {self._max} bytes)",
                hint="the source sent more data than its descriptor says; it is corrupt or hostile",
                digest=self._expected,
            )
        self._hash.update(data)
        self._file.write(data)
        faults.point("blob.write")
        return len(data)

    def commit(self) -> str:
        """Verify, fsync and rename into place; returns the digest. The directory is synced
        before the index next changes (see the module docstring), not here."""
        assert self._file is not None, "blob already committed"
        digest = "sha256:" + self._hash.hexdigest()
        if self._expected and digest != self._expected:
            self.abort()
            raise StoreError(
                f"blob content does not match its digest: expected {self._expected}, got {digest}",
                hint="the source is corrupt or was changed in transit; fetch it again",
                digest=self._expected,
            )
        if self._expected_size is not None and self.size != self._expected_size:
            self.abort()
            raise StoreError(
                f"blob {digest} has {self.size} bytes, its descriptor says {self._expected_size}",
                hint="the source is corrupt or truncated; fetch it again",
                digest=digest,
            )
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        final = self._dir / digest_hex(digest)
        os.chmod(self._tmp, 0o644)
        faults.point("blob.before-rename")
        os.replace(self._tmp, final)
        faults.point("blob.after-rename")
        self.digest = digest
        return digest

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        with contextlib.suppress(FileNotFoundError):
            self._tmp.unlink()

    def __enter__(self) -> "BlobWriter":
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None or self._file is not None:
            self.abort()


def temp_file(directory: Path) -> tuple[int, str]:
    """``(fd, path)`` of a new file ``.tmp-<pid>-<random>`` in ``directory``, created exclusively with
    mode 0600 (what :func:`tempfile.mkstemp` makes, without importing tempfile and random)."""
    name = directory / f"{TMP_PREFIX}{os.getpid()}-{os.urandom(6).hex()}"
    return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), str(name)


def replace_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` by a rename, not fsynced: for a cache, which a crash may lose
    but never leaves half written."""
    fd, tmp = temp_file(path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write(path: Path, data: bytes, *, sync_first: tuple[Path, ...] = ()) -> None:
    """Replace ``path`` with ``data`` atomically (temp file, fsync, rename, fsync dir).

    ``sync_first``: directories fsynced after the new file's data and before the rename (what
    the new content refers to must be durable first). After the file's own fsync they usually
    cost no second journal commit: on a journalling filesystem that one committed their
    changes too, so the explicit sync, kept for any filesystem, finds nothing left to do."""
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}-{os.getpid()}-{os.urandom(4).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        for directory in sync_first:
            fsync_dir(directory)
        faults.point("file.before-rename")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)

