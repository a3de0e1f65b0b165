"""Reproducible layers: tar entries sorted bytewise, gzip without a timestamp.

Same input, same options => same diff_id and same blob digest, on any host:
entries are sorted by their path bytes, every parent directory is an explicit
entry, uid/gid are what the entry (or the options) say, uname/gname are
empty, mtimes are integers clamped to SOURCE_DATE_EPOCH when it is given, the
tar is PAX and the gzip header has mtime 0, no file name and a fixed level.
"""

from __future__ import annotations

import io
import hashlib
import os
import stat
import tarfile
from collections.abc import Iterable
from pathlib import Path

from mlpack.errors import StoreError
from mlpack.oci.image import Layer
from mlpack.oci.layout import Store
from mlpack.oci.media import OCI_LAYER_GZIP
from mlpack.values import dataclass, field

TYPE_CHECKING = False  # typing is the type checker's: a CLI rebuild does not import it
if TYPE_CHECKING:  # pragma: no cover
    import threading
    from typing import IO

__all__ = ["Entry", "LayerOptions", "write_entries", "write_dir", "entries_from_dir", "write_tar", "layer_xattrs", "is_opaque"]

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
_KEEP_XATTR_PREFIXES = ("user.", "security.capability")
_BATCH = 1 << 20
_COPY_BUF = 1 << 20
_TYPES = {"file", "dir", "symlink", "hardlink", "whiteout", "opaque", "char", "block", "fifo"}


_NEW_DICT: dict[str, bytes] = {}  # Entry's xattrs default: a new dict each time (never this one)


@dataclass
class Entry:
    """One path in a layer. ``path`` is relative, ``/``-separated.

    ``type``: file, dir, symlink, hardlink, whiteout (deletes ``path``),
    opaque (hides the lower children of directory ``path``), char, block,
    fifo. A file's content comes from ``data`` or from the file ``source``;
    ``linkname`` is a symlink's target (kept verbatim) or a hardlink's
    in-layer path.
    """

    path: str
    type: str = "file"
    mode: int | None = None       # None: 0o644 files, 0o755 dirs, 0o777 symlinks
    uid: int = 0
    gid: int = 0
    mtime: int = 0
    data: bytes | None = None
    source: Path | None = None
    linkname: str = ""
    xattrs: dict[str, bytes] = field(default_factory=dict)
    devmajor: int = 0
    devminor: int = 0

    # Written out: a layer makes one Entry per file, and the shared __init__ of mlpack.values
    # costs microseconds more per instance (the signature is the fields', checked by a unit test).
    def __init__(self, path: str, type: str = "file", mode: int | None = None, uid: int = 0, gid: int = 0,
                 mtime: int = 0, data: bytes | None = None, source: Path | None = None, linkname: str = "",
                 xattrs: dict[str, bytes] = _NEW_DICT, devmajor: int = 0, devminor: int = 0) -> None:
        self.path, self.type, self.mode, self.uid, self.gid, self.mtime = path, type, mode, uid, gid, mtime
        self.data, self.source, self.linkname, self.devmajor, self.devminor = data, source, linkname, devmajor, devminor
        self.xattrs = {} if xattrs is _NEW_DICT else xattrs


@dataclass(frozen=True)
class LayerOptions:
    """How a layer is written; defaults give a reproducible gzip layer."""

    source_date_epoch: int | None = None   # clamp mtimes to this
    uid: int | None = None                 # force every entry's owner (COPY --chown)
    gid: int | None = None
    prefix: str = ""                       # put entries of a directory under this path
    overlay_upper: bool = False            # input is an overlayfs upperdir: convert its whiteouts
    compress_level: int = 6
    parent_mode: int = 0o755               # mode of parent dirs the entries did not list


class _TarSink:
    """What the tar writer writes into: hashes the tar (its diff_id) and hands it on to ``out``
    in chunks of exactly ``_BATCH`` bytes (the last one shorter).

    tarfile's stream mode ("w|") cuts its output into 10 KB records by slicing a
    bytes buffer (each megabyte of a file is copied about fifty times) and makes
    ten thousand small writes per 100 MB; plain "w" mode over this sink writes a
    file's data as it reads it. The chunks ``out`` gets depend on the tar's bytes
    alone, never on how the writer cut them: a compressor fed the same tar gives
    the same blob (ISA-L's output depends on where its input is cut).
    """

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.hash = hashlib.sha256()
        self.size = 0
        self.buf = bytearray()

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        buf = self.buf
        buf += data
        while len(buf) >= _BATCH:
            self.out.write(bytes(buf[:_BATCH]))
            del buf[:_BATCH]  # O(1): a bytearray drops its head in place
        return len(data)

    def tell(self) -> int:  # tarfile's "w" mode asks where the archive starts
        return self.size

    def flush(self) -> None:
        pass

    def close(self) -> str:
        """Hand on the last chunk; returns the diff_id."""
        if self.buf:
            self.out.write(bytes(self.buf))
            self.buf.clear()
        return "sha256:" + self.hash.hexdigest()


class _Pipe:
    """A writer that passes each chunk to ``out.write`` in a worker thread, in order.

    Compression (zlib, ISA-L) and hashing release the GIL on large buffers, so the
    caller reads files and makes tar headers while the worker compresses, hashes
    and writes the blob. ``out`` gets exactly the calls it would get from the
    caller's thread, in the same order: the bytes it writes are the same. The
    worker starts with the first full chunk (``_TarSink``'s chunks are all
    ``_BATCH`` bytes but the last): a tar smaller than one chunk, a model-only
    rebuild's layer, is written in the caller's thread, with no thread to start.
    """

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None

    def _start(self) -> None:
        import queue
        import threading

        self.queue: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        self.thread = threading.Thread(target=self._run, name="mlpack-layer", daemon=True)
        self.thread.start()

    def write(self, data: bytes) -> int:
        if self.thread is None:
            if len(data) < _BATCH:  # the last chunk, and nothing before it: the whole tar
                self.out.write(data)
                return len(data)
            self._start()
        if self.error is not None:
            raise self.error
        self.queue.put(data)
        return len(data)

    def flush(self) -> None:
        pass

    def _run(self) -> None:
        while (chunk := self.queue.get()) is not None:
            if self.error is not None:
                continue
            try:
                self.out.write(chunk)
            except BaseException as exc:  # noqa: BLE001 - handed to the producer
                self.error = exc

    def finish(self) -> None:
        """Wait until every chunk is written; raises what the worker raised."""
        if self.thread is None:
            return
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error

    def abort(self) -> None:
        if self.thread is not None and self.thread.is_alive():
            self.error = self.error or RuntimeError("aborted")
            self.queue.put(None)
            self.thread.join()


def _norm(path: str) -> str:
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise StoreError(f"layer entry {path!r} has a '..' component", hint="use paths inside the layer")
    return "/".join(parts)


def _complete(entries: Iterable[Entry], options: LayerOptions) -> list[Entry]:
    """Normalize paths, add missing parent dirs, apply owner/mtime options, sort bytewise."""
    by_path: dict[str, Entry] = {}
    for e in entries:
        if e.type not in _TYPES:
            raise StoreError(f"unknown layer entry type {e.type!r} for {e.path!r}")
        e.path = _norm(e.path)
        if not e.path:
            continue  # the root itself is never an entry
        if e.type == "hardlink":
            e.linkname = _norm(e.linkname)
        by_path[_tar_name(e)] = e
    sde = options.source_date_epoch
    for name in list(by_path):
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            parent = "/".join(parts[:i])
            if parent not in by_path:
                by_path[parent] = Entry(parent, "dir", options.parent_mode, 0, 0, sde or 0)
    out = []
    for name in sorted(by_path, key=lambda n: n.encode("utf-8", "surrogateescape")):
        e = by_path[name]
        if options.uid is not None:
            e.uid = options.uid
        if options.gid is not None:
            e.gid = options.gid
        e.mtime = int(e.mtime)
        if sde is not None and e.mtime > sde:
            e.mtime = int(sde)
        out.append(e)
    return out


def _tar_name(e: Entry) -> str:
    if e.type == "whiteout":
        head, _, base = e.path.rpartition("/")
        return (head + "/" if head else "") + WHITEOUT_PREFIX + base
    if e.type == "opaque":
        return e.path + "/" + OPAQUE_MARKER
    return e.path


def _tarinfo(e: Entry) -> tarfile.TarInfo:
    info = tarfile.TarInfo(_tar_name(e))
    default = {"dir": 0o755, "symlink": 0o777}.get(e.type, 0o644)
    info.mode = (default if e.mode is None else e.mode) & 0o7777
    info.uid, info.gid = e.uid, e.gid
    info.uname = info.gname = ""
    info.mtime = e.mtime
    kind = {"file": tarfile.REGTYPE, "whiteout": tarfile.REGTYPE, "opaque": tarfile.REGTYPE,
            "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
            "char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE, "fifo": tarfile.FIFOTYPE}[e.type]
    info.type = kind
    if e.type in ("whiteout", "opaque"):
        info.mode = 0o644 if e.type == "whiteout" else 0o600
    if e.type in ("symlink", "hardlink"):
        info.linkname = e.linkname
    if e.type in ("char", "block"):
        info.devmajor, info.devminor = e.devmajor, e.devminor
    if e.xattrs:
        info.pax_headers = {f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape")
                            for k, v in sorted(e.xattrs.items())}
    return info


def _write_tar_to(sink: IO[bytes], entries: Iterable[Entry], options: LayerOptions) -> None:
    with tarfile.open(fileobj=sink, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8",  # type: ignore[call-overload]
                      copybufsize=_COPY_BUF) as tar:
        for e in _complete(entries, options):
            info = _tarinfo(e)
            if e.type == "file":
                if e.data is not None:
                    info.size = len(e.data)
                    tar.addfile(info, io.BytesIO(e.data))
                elif e.source is not None:
                    with open(e.source, "rb") as f:
                        info.size = os.fstat(f.fileno()).st_size
                        tar.addfile(info, f)
                else:
                    info.size = 0
                    tar.addfile(info)
            else:
                tar.addfile(info)


def write_tar(out: IO[bytes], entries: Iterable[Entry], options: LayerOptions | None = None, *,
              threaded: bool = False) -> tuple[str, int]:
    """Write the uncompressed tar of ``entries`` to ``out`` in chunks of ``_BATCH`` bytes; returns
    (diff_id, tar size). ``threaded``: ``out.write`` runs in a worker thread (:class:`_Pipe`)
    while this one reads the files; every chunk is written before this returns."""
    pipe = _Pipe(out) if threaded else None
    sink = _TarSink(pipe if pipe is not None else out)  # type: ignore[arg-type]
    try:
        _write_tar_to(sink, entries, options or LayerOptions())  # type: ignore[arg-type]
        diff_id = sink.close()
        if pipe is not None:
            pipe.finish()
    except BaseException:
        if pipe is not None:
            pipe.abort()
        raise
    return diff_id, sink.size


def write_entries(store: Store, entries: Iterable[Entry], options: LayerOptions | None = None, *,
                  fast: bool = False) -> Layer:
    """Write ``entries`` as a tar+gzip layer blob into ``store``; returns its Layer (digest, size, diff_id).
    ``fast`` (the builder's layers): the fastest compressor there is, not ``options.compress_level``
    (:func:`mlpack.oci.gzipmember.gzip_member`)."""
    from mlpack.oci.gzipmember import gzip_member

    options = options or LayerOptions()
    with store.blob_writer() as blob:
        gz, _ = gzip_member(blob, None if fast else options.compress_level)  # type: ignore[arg-type]
        with gz:
            diff_id, _ = write_tar(gz, entries, options, threaded=True)
        digest = blob.commit()
        return Layer(digest, blob.size, diff_id, OCI_LAYER_GZIP)


def write_dir(store: Store, path: str | os.PathLike[str], options: LayerOptions | None = None) -> Layer:
    """Write the tree under ``path`` (not ``path`` itself) as a layer into ``store``."""
    options = options or LayerOptions()
    return write_entries(store, entries_from_dir(path, options), options)


def entries_from_dir(path: str | os.PathLike[str], options: LayerOptions | None = None) -> list[Entry]:
    """Entries for every path under ``path``, hardlinks kept, overlay whiteouts converted when asked."""
    options = options or LayerOptions()
    root = Path(path)
    prefix = _norm(options.prefix)
    out: list[Entry] = []
    seen_inodes: dict[tuple[int, int], str] = {}
    names: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        for name in dirnames + filenames:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            names.append((rel, Path(dirpath) / name))
    names.sort(key=lambda t: t[0].encode("utf-8", "surrogateescape"))
    for rel, full in names:
        st = os.lstat(full)
        lpath = f"{prefix}/{rel}" if prefix else rel
        common = dict(mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid, mtime=int(st.st_mtime))
        xattrs = layer_xattrs(full)
        if stat.S_ISCHR(st.st_mode) and options.overlay_upper and st.st_rdev == 0:
            out.append(Entry(lpath, "whiteout", mtime=common["mtime"]))
        elif stat.S_ISDIR(st.st_mode):
            out.append(Entry(lpath, "dir", xattrs=xattrs, **common))  # type: ignore[arg-type]
            if options.overlay_upper and is_opaque(full):
                out.append(Entry(lpath, "opaque", mtime=common["mtime"]))
        elif stat.S_ISLNK(st.st_mode):
            out.append(Entry(lpath, "symlink", linkname=os.readlink(full), xattrs=xattrs, **common))  # type: ignore[arg-type]
        elif stat.S_ISREG(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in seen_inodes:
                out.append(Entry(lpath, "hardlink", linkname=seen_inodes[key], **common))  # type: ignore[arg-type]
            else:
                seen_inodes[key] = lpath
                out.append(Entry(lpath, "file", source=full, xattrs=xattrs, **common))  # type: ignore[arg-type]
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            kind = "char" if stat.S_ISCHR(st.st_mode) else "block"
            out.append(Entry(lpath, kind, devmajor=os.major(st.st_rdev), devminor=os.minor(st.st_rdev), **common))  # type: ignore[arg-type]
        elif stat.S_ISFIFO(st.st_mode):
            out.append(Entry(lpath, "fifo", **common))  # type: ignore[arg-type]
        # sockets are not content: skipped like docker does
    return out


def layer_xattrs(path: Path | str) -> dict[str, bytes]:
    """The extended attributes of ``path`` that belong in a layer.

    Only ``user.*`` and file capabilities; ``trusted.overlay.*`` and
    ``user.overlay.*`` describe an overlay itself and must never leak.
    """
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    out = {}
    for name in names:
        if name.startswith(_KEEP_XATTR_PREFIXES) and not name.startswith("user.overlay."):
            try:
                out[name] = os.getxattr(path, name, follow_symlinks=False)
            except OSError:
                continue
    return out


def is_opaque(path: Path | str) -> bool:
    """True when ``path`` is an overlay upper directory marked opaque."""
    for attr in ("trusted.overlay.opaque", "user.overlay.opaque"):
        try:
            if os.getxattr(path, attr, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False



