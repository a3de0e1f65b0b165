"""Apply a layer into a directory without ever writing outside it.

Every parent directory of an entry is opened one component at a time with
``O_NOFOLLOW | O_DIRECTORY`` relative to the previous one (``dir_fd``), so
no symlink, whether it came from a lower layer or was planted by an earlier
entry of the same layer, can redirect a write. Final components are
created with ``O_EXCL | O_NOFOLLOW`` after removing what was there, so a write
never goes through an existing symlink or into an existing inode. Symlink
targets are stored verbatim: they are content, only following them is
dangerous. ``..`` and absolute names, hardlinks whose target is outside
the root or missing, whiteouts with odd names, device nodes (unless allowed)
and streams bigger than the cap raise :class:`~mlpack.errors.UnpackError`.

Two whiteout modes: ``apply`` deletes the whited-out paths (flattening layers
into one rootfs), ``overlay`` records them the way overlayfs reads a
lowerdir (char device 0/0 for a deletion, ``trusted.overlay.opaque=y`` on an
opaque directory; needs root).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from mlpack.errors import UnpackError

if TYPE_CHECKING:  # tarfile and gzip load when a layer is unpacked, not when a cached one is run
    import tarfile

__all__ = ["UnpackOptions", "UnpackResult", "apply_layer", "open_layer_stream"]

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20


@dataclass(frozen=True)
class UnpackOptions:
    """Limits and modes for :func:`apply_layer`."""

    whiteouts: str = "apply"                 # "apply" or "overlay"
    devices: str = "refuse"                  # char/block entries: "refuse", "skip" or "allow"
    max_size: int = 32 << 30                 # uncompressed bytes (decompression bomb cap)
    max_entries: int = 2_000_000
    same_owner: bool | None = None           # chown entries; None = when running as root
    xattrs: bool = True


@dataclass(frozen=True)
class UnpackResult:
    diff_id: str        # sha256 of the uncompressed tar stream
    size: int           # uncompressed bytes
    entries: int


class _Counted:
    """Reader over the uncompressed stream: hashes it and enforces the size cap."""

    def __init__(self, raw: IO[bytes], cap: int) -> None:
        self.raw, self.cap = raw, cap
        self.hash = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n if n is not None and n >= 0 else _CHUNK)
        self.size += len(data)
        if self.size > self.cap:
            raise UnpackError(f"layer is larger than the cap of {self.cap} bytes uncompressed",
                              hint="it may be a decompression bomb; raise UnpackOptions.max_size if it is genuine")
        self.hash.update(data)
        return data

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass


def open_layer_stream(raw: IO[bytes]) -> IO[bytes]:
    """The uncompressed tar stream of a layer blob (gzip, zstd or plain tar, sniffed)."""
    head = raw.read(4)
    rest = _Prefixed(head, raw)
    if head[:2] == b"\x1f\x8b":
        import gzip

        return gzip.GzipFile(fileobj=rest, mode="rb")  # type: ignore[arg-type]
    if head == b"\x28\xb5\x2f\xfd":  # zstd (OCI tar+zstd)
        try:
            import zstandard
        except ImportError as exc:
            raise UnpackError("this layer is zstd-compressed and the zstandard package is not installed",
                              hint="pip install zstandard (it is in mlpack's notebook extra)") from exc
        return zstandard.ZstdDecompressor(max_window_size=1 << 27).stream_reader(rest, read_across_frames=True)  # type: ignore[arg-type,no-any-return]
    return rest  # type: ignore[return-value]


class _Prefixed:
    def __init__(self, head: bytes, raw: IO[bytes]) -> None:
        self.head, self.raw = head, raw

    def read(self, n: int = -1) -> bytes:
        if self.head:
            if n is None or n < 0:
                data, self.head = self.head + self.raw.read(), b""
                return data
            data, self.head = self.head[:n], self.head[n:]
            if len(data) < n:
                data += self.raw.read(n - len(data))
            return data
        return self.raw.read(n)


def apply_layer(root: str | os.PathLike[str], blob: str | os.PathLike[str] | IO[bytes],
                options: UnpackOptions | None = None, *, expected_diff_id: str | None = None) -> UnpackResult:
    """Apply the layer ``blob`` (a path or a binary stream) onto the directory ``root``.

    Raises UnpackError on any entry that would escape ``root`` or break a
    limit, and when the stream's diff_id differs from ``expected_diff_id``.
    """
    options = options or UnpackOptions()
    if options.whiteouts not in ("apply", "overlay"):
        raise ValueError("whiteouts must be 'apply' or 'overlay'")
    if isinstance(blob, (str, os.PathLike)):
        with open(blob, "rb") as f:
            return apply_layer(root, f, options, expected_diff_id=expected_diff_id)
    Path(root).mkdir(parents=True, exist_ok=True)
    import gzip
    import tarfile

    root_fd = os.open(root, _DIR_FLAGS)
    try:
        stream = _Counted(open_layer_stream(blob), options.max_size)
        applier = _Applier(root_fd, options)
        try:
            with tarfile.open(fileobj=stream, mode="r|", encoding="utf-8", errors="surrogateescape") as tar:  # type: ignore[call-overload]
                for member in tar:
                    applier.entry(member, tar)
            stream.drain()
        except (tarfile.TarError, EOFError, OSError, gzip.BadGzipFile, UnicodeError) as exc:
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise UnpackError(f"no space left while unpacking into {root}", hint="free disk space") from exc
            raise UnpackError(f"layer is not a valid tar stream or cannot be written: {exc}",
                              hint="the blob is corrupt or hostile; pull the image again") from exc
        applier.finish()
    finally:
        os.close(root_fd)
    diff_id = "sha256:" + stream.hash.hexdigest()
    if expected_diff_id and diff_id != expected_diff_id:
        raise UnpackError(f"layer's uncompressed content hashes to {diff_id}, the config says {expected_diff_id}",
                          hint="the image is corrupt; pull or build it again")
    return UnpackResult(diff_id, stream.size, applier.count)


def _split(name: str, what: str = "entry") -> list[str]:
    if name.startswith("/"):
        raise UnpackError(f"layer {what} {name!r} is an absolute path", hint="the layer is hostile or broken")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnpackError(f"layer {what} {name!r} contains '..'", hint="the layer is hostile or broken")
    if any("\x00" in p for p in parts):
        raise UnpackError(f"layer {what} {name!r} contains a NUL byte")
    return parts


class _Applier:
    def __init__(self, root_fd: int, options: UnpackOptions) -> None:
        self.root_fd = root_fd
        self.opt = options
        self.same_owner = options.same_owner if options.same_owner is not None else os.geteuid() == 0
        self.count = 0
        self.written = 0  # apparent bytes of regular files: a sparse entry's holes count too
        self.created: set[tuple[str, ...]] = set()  # paths this layer wrote (opaque spares them)
        self.dir_times: list[tuple[list[str], int]] = []

    # -- walking ---------------------------------------------------------------------
    def _open_dir(self, parts: list[str], create: bool) -> int:
        fd = os.dup(self.root_fd)
        try:
            for i, comp in enumerate(parts):
                try:
                    nfd = os.open(comp, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    os.mkdir(comp, 0o755, dir_fd=fd)
                    self.created.add(tuple(parts[: i + 1]))
                    nfd = os.open(comp, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise UnpackError(
                            f"layer entry goes through {'/'.join(parts[: i + 1])!r}, which is a symlink or not a directory",
                            hint="the layer is hostile or broken; nothing is written through links") from None
                    raise
                os.close(fd)
                fd = nfd
            return fd
        except BaseException:
            os.close(fd)
            raise

    def _remove(self, dir_fd: int, name: str) -> None:
        """Remove ``name`` in ``dir_fd`` whatever it is, never following symlinks."""
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            sub = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
            try:
                for child in os.listdir(sub):
                    self._remove(sub, child)
            finally:
                os.close(sub)
            os.rmdir(name, dir_fd=dir_fd)
        else:
            os.unlink(name, dir_fd=dir_fd)

    # -- entries ---------------------------------------------------------------------
    def entry(self, m: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
        self.count += 1
        if self.count > self.opt.max_entries:
            raise UnpackError(f"layer has more than {self.opt.max_entries} entries", hint="raise UnpackOptions.max_entries")
        parts = _split(m.name)
        if not parts:
            return  # the root itself: its attributes belong to whoever made the directory
        if any(p.startswith(WHITEOUT_PREFIX) for p in parts[:-1]):
            raise UnpackError(f"layer entry {m.name!r} has a whiteout name as a directory",
                              hint="whiteouts are files; the layer is hostile or broken")
        base = parts[-1]
        if base.startswith(WHITEOUT_PREFIX):
            return self._whiteout(parts[:-1], base, m.name)
        if m.ischr() or m.isblk():
            if self.opt.devices == "skip":
                return
            if self.opt.devices != "allow":
                raise UnpackError(f"layer entry {m.name!r} is a device node",
                                  hint="device nodes are refused; the runtime creates /dev itself")
        parent = self._open_dir(parts[:-1], create=True)
        try:
            self._write(parent, parts, base, m, tar)
        finally:
            os.close(parent)
        self.created.add(tuple(parts))

    def _write(self, pfd: int, parts: list[str], base: str, m: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
        if m.isdir():
            try:
                st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
                if not stat.S_ISDIR(st.st_mode):
                    self._remove(pfd, base)
                    os.mkdir(base, 0o700, dir_fd=pfd)
            except FileNotFoundError:
                os.mkdir(base, 0o700, dir_fd=pfd)
            fd = os.open(base, _DIR_FLAGS, dir_fd=pfd)
            try:
                self._attrs(fd, m)
            finally:
                os.close(fd)
            self.dir_times.append((parts, int(m.mtime)))
            return
        if m.isreg():
            # tarfile reports a sparse member's real (apparent) size, which is what
            # writing it costs: 10 KiB of tar can describe a 4 GiB file of holes.
            self.written += m.size
            if self.written > self.opt.max_size:
                raise UnpackError(f"layer is larger than the cap of {self.opt.max_size} bytes written "
                                  f"(entry {m.name!r} is {m.size} bytes, sparse holes included)",
                                  hint="it may be a decompression or sparse-file bomb; raise UnpackOptions.max_size "
                                       "if it is genuine")
        self._remove(pfd, base)
        if m.isreg():
            fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=pfd)
            try:
                src = tar.extractfile(m)
                if src is not None:
                    while chunk := src.read(_CHUNK):
                        _write_all(fd, chunk)
                self._attrs(fd, m)
                os.utime(fd, (m.mtime, m.mtime))
            finally:
                os.close(fd)
        elif m.issym():
            os.symlink(m.linkname, base, dir_fd=pfd)
            if self.same_owner:
                os.chown(base, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
            os.utime(base, (m.mtime, m.mtime), dir_fd=pfd, follow_symlinks=False)
        elif m.islnk():
            target = _split(m.linkname, "hardlink target")
            if not target:
                raise UnpackError(f"hardlink {m.name!r} points at the root directory")
            try:
                tfd = self._open_dir(target[:-1], create=False)
            except FileNotFoundError:
                raise UnpackError(f"hardlink {m.name!r} points at {m.linkname!r}, which the layer does not contain",
                                  hint="the layer is broken or hostile") from None
            try:
                tst = os.stat(target[-1], dir_fd=tfd, follow_symlinks=False)
                if stat.S_ISDIR(tst.st_mode):
                    raise UnpackError(f"hardlink {m.name!r} points at a directory")
                os.link(target[-1], base, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
            except FileNotFoundError:
                raise UnpackError(f"hardlink {m.name!r} points at {m.linkname!r}, which the layer does not contain",
                                  hint="the layer is broken or hostile") from None
            finally:
                os.close(tfd)
        elif m.isfifo():
            os.mkfifo(base, 0o600, dir_fd=pfd)
            self._path_attrs(pfd, base, m)
        elif m.ischr() or m.isblk():
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            os.mknod(base, kind | 0o600, os.makedev(m.devmajor, m.devminor), dir_fd=pfd)
            self._path_attrs(pfd, base, m)
        else:
            raise UnpackError(f"layer entry {m.name!r} has unsupported tar type {m.type!r}")

    def _path_attrs(self, pfd: int, base: str, m: tarfile.TarInfo) -> None:
        if self.same_owner:
            os.chown(base, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
        os.chmod(base, m.mode & 0o7777, dir_fd=pfd)
        os.utime(base, (m.mtime, m.mtime), dir_fd=pfd, follow_symlinks=False)

    def _attrs(self, fd: int, m: tarfile.TarInfo) -> None:
        if self.same_owner:
            os.fchown(fd, m.uid, m.gid)
        os.fchmod(fd, m.mode & 0o7777)  # after chown, which clears setuid bits
        if self.opt.xattrs:
            for key, value in (m.pax_headers or {}).items():
                if not key.startswith("SCHILY.xattr."):
                    continue
                name = key[len("SCHILY.xattr."):]
                if name.startswith("trusted.overlay.") or name.startswith("user.overlay."):
                    continue  # a layer must never steer overlayfs
                with contextlib.suppress(OSError):
                    os.setxattr(fd, name, value.encode("utf-8", "surrogateescape"))

    def _whiteout(self, parent: list[str], base: str, name: str) -> None:
        if base == OPAQUE_MARKER:
            try:
                pfd = self._open_dir(parent, create=self.opt.whiteouts == "overlay")
            except FileNotFoundError:
                return
            try:
                if self.opt.whiteouts == "overlay":
                    try:
                        os.setxattr(pfd, "trusted.overlay.opaque", b"y")
                    except PermissionError:  # in a user namespace: what overlay's userxattr mode reads
                        os.setxattr(pfd, "user.overlay.opaque", b"y")
                else:
                    for child in os.listdir(pfd):
                        if tuple(parent + [child]) not in self.created:
                            self._remove(pfd, child)
            finally:
                os.close(pfd)
            return
        target = base[len(WHITEOUT_PREFIX):]
        if target in ("", ".", "..") or "/" in target or target.startswith(WHITEOUT_PREFIX):
            raise UnpackError(f"layer has a whiteout with a bad name: {name!r}", hint="the layer is hostile or broken")
        try:
            pfd = self._open_dir(parent, create=self.opt.whiteouts == "overlay")
        except FileNotFoundError:
            return  # nothing below to delete
        try:
            self._remove(pfd, target)
            if self.opt.whiteouts == "overlay":
                os.mknod(target, stat.S_IFCHR | 0o600, os.makedev(0, 0), dir_fd=pfd)
                self.created.add(tuple(parent + [target]))
        finally:
            os.close(pfd)

    def finish(self) -> None:
        """Set directory mtimes last: creating their children changed them."""
        for parts, mtime in self.dir_times:
            try:
                fd = self._open_dir(parts, create=False)
            except (FileNotFoundError, UnpackError):
                continue  # deleted again by a later entry
            try:
                os.utime(fd, (mtime, mtime))
            finally:
                os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
