"""COPY and ADD: resolve sources, key them by content, write their changeset directly.

Sources come from the build context (after .dockerignore), from another
stage or image (``--from``: a merged view of its layers), from heredocs, or
for ADD from a local tar archive (extracted) or a URL (only with
``--checksum``). File modes and exact mtimes are kept (the layer writer
clamps them to SOURCE_DATE_EPOCH), owners are 0:0 from the context and kept
from ``--from`` unless ``--chown`` says otherwise.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import stat
from collections.abc import Callable
from pathlib import Path

from mlpack.builder.context import BuildContextDir, has_glob
from mlpack.builder.ignore import IgnoreMatcher
from mlpack.builder.parser import Instruction
from mlpack.builder.rootfs import RootView
from mlpack.oci.layer import Entry
from mlpack.runtime.inroot import resolve_in_root
from mlpack.values import dataclass, field

__all__ = ["CopyRequest", "Source", "resolve_sources", "entries_for", "parse_chown", "parse_chmod",
           "is_archive", "archive_entries", "fetch_url"]

MAX_URL_BYTES = 8 << 30


@dataclass
class Source:
    """One matched source: a file/dir/symlink on disk, or inline bytes."""

    name: str                 # as matched (context-relative, or path in the --from root)
    full: str | None          # on-disk path (None for heredoc/url data)
    st: os.stat_result | None
    data: bytes | None = None
    data_mode: int = 0o644    # heredocs 0644; ADD <url> 0600 as docker does
    is_dir: bool = False
    children: list[tuple[str, str, os.stat_result]] = field(default_factory=list)


@dataclass
class CopyRequest:
    """A COPY/ADD after expansion: what the step needs to run."""

    instr: Instruction
    sources: list[str]
    dest: str                 # absolute, as written after WORKDIR join (may end in "/")
    chown: tuple[int, int] | None
    chmod: int | None
    is_add: bool
    keep_owner: bool          # --from keeps owners
    excludes: IgnoreMatcher = field(default_factory=IgnoreMatcher)


def parse_chmod(instr: Instruction, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        mode = int(value, 8)
    except ValueError:
        raise instr.error(f"--chmod={value} is not an octal mode", hint="use e.g. --chmod=0755") from None
    if mode > 0o7777:
        raise instr.error(f"--chmod={value} is out of range")
    return mode


def parse_chown(instr: Instruction, value: str | None, view: Callable[[], RootView]) -> tuple[int, int] | None:
    """``uid[:gid]`` or names looked up in the stage's /etc/passwd and /etc/group."""
    if value is None:
        return None
    user, _, group = value.partition(":")

    def lookup(db: str, name: str) -> int:
        if name.isdigit():
            return int(name)
        data = view().read_file(f"/etc/{db}") or b""
        for line in data.decode("utf-8", "replace").splitlines():
            fields = line.split(":")
            if len(fields) >= 3 and fields[0] == name and fields[2].isdigit():
                return int(fields[2])
        kind = "user" if db == "passwd" else "group"
        raise instr.error(f"--chown: {kind} {name!r} is not in /etc/{db} of the image",
                          hint="use numeric ids (--chown=1000:1000) or create the user in an earlier RUN")

    uid = lookup("passwd", user)
    if group:
        return uid, lookup("group", group)
    # a user name alone: its primary group from /etc/passwd (BuildKit); a number alone: gid = uid
    for line in ((view().read_file("/etc/passwd") or b"").decode("utf-8", "replace").splitlines()
                 if not user.isdigit() else []):
        fields = line.split(":")
        if len(fields) >= 4 and fields[0] == user and fields[3].isdigit():
            return uid, int(fields[3])
    return uid, uid


def is_archive(path: str) -> bool:
    """Local ADD extracts tar archives (plain, gzip, bzip2, xz), recognized by content."""
    import lzma

    with open(path, "rb") as fh:
        head = fh.read(512)
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00":
        try:
            with _open_compressed(path) as raw:
                inner = raw.read(512)
        except (OSError, EOFError, lzma.LZMAError):
            return False
        return len(inner) >= 262 and inner[257:262] == b"ustar"
    return len(head) >= 262 and head[257:262] == b"ustar"


def _open_compressed(path: str) -> io.BufferedIOBase:
    import bz2
    import gzip
    import lzma

    with open(path, "rb") as fh:
        head = fh.read(6)
    if head[:2] == b"\x1f\x8b":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if head[:3] == b"BZh":
        return bz2.open(path, "rb")  # type: ignore[return-value]
    if head[:6] == b"\xfd7zXZ\x00":
        return lzma.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def archive_entries(instr: Instruction, path: str, dest: str, chown: tuple[int, int] | None) -> list[Entry]:
    """Entries of a local tar archive extracted under ``dest`` (names that leave it are refused)."""
    import tarfile

    out: list[Entry] = []
    base = dest.strip("/")
    with _open_compressed(path) as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
        for m in tar:
            name = posixpath.normpath("/" + m.name).lstrip("/")
            if m.name.startswith("/") or ".." in m.name.split("/"):
                raise instr.error(f"archive {os.path.basename(path)} has an unsafe member {m.name!r}",
                                  hint="ADD extracts only archives whose names stay inside the destination")
            if not name or name == ".":
                continue
            target = f"{base}/{name}" if base else name
            uid, gid = chown if chown else (m.uid, m.gid)
            common = dict(mode=m.mode & 0o7777, uid=uid, gid=gid, mtime=int(m.mtime))
            if m.isdir():
                out.append(Entry(target, "dir", **common))  # type: ignore[arg-type]
            elif m.isreg():
                fh = tar.extractfile(m)
                out.append(Entry(target, "file", data=fh.read() if fh else b"", **common))  # type: ignore[arg-type]
            elif m.issym():
                out.append(Entry(target, "symlink", linkname=m.linkname, **common))  # type: ignore[arg-type]
            elif m.islnk():
                link = posixpath.normpath("/" + m.linkname).lstrip("/")
                link = f"{base}/{link}" if base else link
                out.append(Entry(target, "hardlink", linkname=link, **common))  # type: ignore[arg-type]
            elif m.isfifo():
                out.append(Entry(target, "fifo", **common))  # type: ignore[arg-type]
            # device nodes in an ADDed archive are dropped: a build never needs them
    return out


def fetch_url(instr: Instruction, url: str, checksum: str) -> bytes:
    """Download ``url`` and check it against ``sha256:<hex>``."""
    import urllib.request

    algo, _, want = checksum.partition(":")
    if algo != "sha256" or len(want) != 64:
        raise instr.error(f"--checksum={checksum} is not sha256:<64 hex digits>")
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310 - the checksum pins the content
            data = resp.read(MAX_URL_BYTES + 1)
    except OSError as exc:
        raise instr.error(f"cannot download {url}: {exc}", hint="check the URL and the network") from None
    if len(data) > MAX_URL_BYTES:
        raise instr.error(f"{url} is larger than {MAX_URL_BYTES} bytes")
    got = hashlib.sha256(data).hexdigest()
    if got != want:
        raise instr.error(f"{url} has sha256:{got}, --checksum says sha256:{want}",
                          hint="the download changed or the checksum is wrong")
    return data


def resolve_sources(req: CopyRequest, ctx: BuildContextDir | None, root: Path | None,
                    heredocs: dict[str, bytes]) -> list[Source]:
    """Match every source (globs included) in the context or the ``--from`` root."""
    instr = req.instr
    out: list[Source] = []
    for raw in req.sources:
        if raw in heredocs:
            out.append(Source(name=raw, full=None, st=None, data=heredocs[raw]))
            continue
        if root is None:
            assert ctx is not None
            rel = ctx.normalize(raw)
            names = ctx.glob(rel) if has_glob(rel) else ([rel] if ctx.exists(rel) else [])
            if not names:
                if posixpath.normpath(raw.replace("\\", "/")).split("/")[0] == "..":
                    raise instr.error(f"{raw}: the path leaves the build context (COPY sees only files under "
                                      f"{ctx.root}; .. stops at its top) and {rel or '.'} is not there",
                                      hint="move the file into the context, or build from a directory above it")
                raise instr.error(f"{raw}: not found in the build context (or excluded by .dockerignore)",
                                  hint=f"the context is {ctx.root}")
            for name in names:
                out.append(_source_from_disk(instr, name, str(ctx.full(name)), str(ctx.root),
                                             lambda r: ctx.walk(r), req.excludes))
        else:
            rel = posixpath.normpath("/" + raw).lstrip("/")
            if has_glob(rel):
                names = _glob_dir(root, rel)
            else:
                names = [rel] if not rel or resolve_in_root(root, rel, follow=False) is not None else []
            if not names:
                raise instr.error(f"{raw}: not found in the source stage or image")
            for name in names:
                # parents resolved inside the stage's root: its absolute symlinks mean its own files
                full = resolve_in_root(root, name, follow=False)
                assert full is not None
                out.append(_source_from_disk(instr, name, str(full), str(root),
                                             lambda r: _walk_plain(root, r), req.excludes))
    return out


def _glob_dir(root: Path, pattern: str) -> list[str]:
    import fnmatch
    found = [""]
    for part in [p for p in pattern.split("/") if p]:
        nxt = []
        for base in found:
            d = resolve_in_root(root, base)
            if d is None or not d.is_dir():
                continue
            if has_glob(part):
                matches = [n for n in sorted(os.listdir(d)) if fnmatch.fnmatchcase(n, part)]
            else:
                matches = [part] if os.path.lexists(d / part) else []
            nxt.extend(f"{base}/{name}" if base else name for name in matches)
        found = nxt
    return found


def _walk_plain(root: Path, rel: str) -> list[tuple[str, str, os.stat_result]]:
    out = []
    top = str(resolve_in_root(root, rel) or root / rel)
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        sub = os.path.relpath(dirpath, top)
        for name in sorted(dirnames + filenames):
            inner = name if sub == "." else f"{sub}/{name}"
            full = f"{dirpath}/{name}"
            out.append((inner, full, os.lstat(full)))
    out.sort(key=lambda t: t[0])
    return out


def _source_from_disk(instr: Instruction, name: str, full: str, top: str,
                      walker: Callable[[str], list[tuple[str, str, os.stat_result]]],
                      excludes: IgnoreMatcher) -> Source:
    st = os.lstat(full)
    if stat.S_ISLNK(st.st_mode):
        # the named source itself is followed (docker does), inside its root: an absolute
        # target means the root's own path, ``..`` stops at the root
        real = resolve_in_root(top, name)
        if real is None:
            raise instr.error(f"{name} is a symlink to {os.readlink(full)!r}, which is not in its root "
                              "(symlinks never lead outside the build context or stage)",
                              hint="symlinks are followed inside the context or stage only")
        full, st = str(real), os.lstat(real)
        top_real = os.path.realpath(top)
        name = os.path.relpath(real, top_real) if str(real) != top_real else ""
    if stat.S_ISDIR(st.st_mode):
        children = [c for c in walker(name) if not excludes.ignored(c[0])]
        return Source(name=name, full=full, st=st, is_dir=True, children=children)
    return Source(name=name, full=full, st=st)


def key_parts(sources: list[Source], hasher: Callable[[str, os.stat_result], str]) -> list[list[object]]:
    """(path, mode, uid, gid, link target, sha256) per file: content, never mtimes."""
    parts: list[list[object]] = []
    for src in sources:
        if src.data is not None:
            parts.append([src.name, "data", hashlib.sha256(src.data).hexdigest()])
            continue
        assert src.st is not None and src.full is not None
        items = [("", src.full, src.st)] + (src.children if src.is_dir else [])
        for inner, full, st in items:
            mode = st.st_mode
            if stat.S_ISREG(mode):
                digest = hasher(full, st)
                link = ""
            else:
                digest = ""
                link = os.readlink(full) if stat.S_ISLNK(mode) else ""
            parts.append([src.name, inner, mode, st.st_uid, st.st_gid, link, digest])
    return parts


def entries_for(req: CopyRequest, sources: list[Source], *, dest_is_dir: Callable[[str], bool],
                epoch: int) -> list[Entry]:
    """The layer entries of a COPY/ADD (parents are completed by the layer writer)."""
    instr = req.instr
    dest = req.dest
    many = len(sources) > 1 or any(has_glob(s) for s in req.sources)
    into_dir = dest.endswith("/") or (dest_is_dir(dest) if dest not in ("/",) else True)
    if many and not into_dir and len(sources) > 1:
        raise instr.error("with more than one source the destination must be a directory ending in /",
                          hint=f"write {dest}/")
    base = dest.strip("/")
    out: list[Entry] = []

    def owner(st: os.stat_result | None) -> tuple[int, int]:
        if req.chown:
            return req.chown
        if req.keep_owner and st is not None:
            return st.st_uid, st.st_gid
        return 0, 0

    def mode_of(st: os.stat_result, is_dir: bool) -> int:
        if req.chmod is not None:
            return req.chmod
        return stat.S_IMODE(st.st_mode)

    for src in sources:
        if src.data is not None:  # heredoc or downloaded data
            target = f"{base}/{posixpath.basename(src.name)}" if into_dir else base
            uid, gid = owner(None)
            mode = req.chmod if req.chmod is not None else src.data_mode
            out.append(Entry(target, "file", mode=mode, uid=uid, gid=gid, mtime=epoch, data=src.data))
            continue
        assert src.st is not None and src.full is not None
        if src.is_dir:
            if base and not dest_is_dir(dest):  # an existing destination keeps its own metadata
                uid, gid = owner(src.st)
                out.append(Entry(base, "dir", mode=mode_of(src.st, True), uid=uid, gid=gid,
                                 mtime=int(src.st.st_mtime)))
            links: dict[tuple[int, int], str] = {}
            for inner, full, st in src.children:
                target = f"{base}/{inner}" if base else inner
                out.append(_disk_entry(target, full, st, owner(st), mode_of(st, stat.S_ISDIR(st.st_mode)), links))
            continue
        if req.is_add and src.full and stat.S_ISREG(src.st.st_mode) and is_archive(src.full):
            out.extend(archive_entries(instr, src.full, dest, req.chown))
            continue
        target = f"{base}/{posixpath.basename(src.name)}" if into_dir else base
        if not target:
            raise instr.error("cannot copy a file onto /", hint="give a file or directory destination")
        out.append(_disk_entry(target, src.full, src.st, owner(src.st), mode_of(src.st, False), {}))
    return out


def _disk_entry(target: str, full: str, st: os.stat_result, owner: tuple[int, int], mode: int,
                links: dict[tuple[int, int], str]) -> Entry:
    uid, gid = owner
    common = dict(mode=mode, uid=uid, gid=gid, mtime=int(st.st_mtime))
    if stat.S_ISDIR(st.st_mode):
        return Entry(target, "dir", **common)  # type: ignore[arg-type]
    if stat.S_ISLNK(st.st_mode):
        common["mode"] = 0o777
        return Entry(target, "symlink", linkname=os.readlink(full), **common)  # type: ignore[arg-type]
    if stat.S_ISREG(st.st_mode):
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in links:
            return Entry(target, "hardlink", linkname=links[key], **common)  # type: ignore[arg-type]
        links[key] = target
        return Entry(target, "file", source=Path(full), **common)  # type: ignore[arg-type]
    if stat.S_ISFIFO(st.st_mode):
        return Entry(target, "fifo", **common)  # type: ignore[arg-type]
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        return Entry(target, "char" if stat.S_ISCHR(st.st_mode) else "block",
                     devmajor=os.major(st.st_rdev), devminor=os.minor(st.st_rdev), **common)  # type: ignore[arg-type]
    raise OSError(f"cannot copy {full}: unsupported file type")


def url_name(url: str) -> str:
    import urllib.parse

    path = urllib.parse.urlparse(url).path
    return posixpath.basename(path) or "index.html"

