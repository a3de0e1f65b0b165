"""The build context: a directory, its .dockerignore, and content hashes of its files.

Hashes are what COPY/ADD cache keys are made of (content, never mtimes).
A file's hash is remembered per (path, size, mtime_ns, ctime_ns, inode) in
``cache_dir/build/file-hashes.json`` so a rebuild reads only files that changed.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import posixpath
import stat
from pathlib import Path

from mlpack.builder.ignore import IgnoreMatcher, load_dockerignore
from mlpack.errors import BuildError
from mlpack.oci.blobs import replace_text
from mlpack.runtime.inroot import resolve_in_root
from mlpack.values import dataclass, field

__all__ = ["BuildContextDir", "HashCache", "has_glob", "sha256_file"]

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(_CHUNK)
            if not chunk:
                break
            h.update(chunk)
    return h.hexdigest()


def _listdir(dirpath: str) -> list[str]:
    try:
        return sorted(os.listdir(dirpath))
    except OSError as exc:
        raise BuildError(f"cannot read {dirpath}: {exc.strerror}", hint="check permissions") from None


def has_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


class HashCache:
    """sha256 of files, remembered across builds by path and stat identity (size, mtime, ctime,
    inode): one entry per path, which a changed file replaces, so the file grows with the paths
    hashed, not with every version of them (a model rebuilt a thousand times is one entry per
    file of its bundle, and each build reads and writes the whole file). Kept in
    ``cache/build/file-hashes.json``; the ``hashes.json`` of older versions (an entry per version of
    a file) is no longer read, and goes with the rest of the build cache (``mlpack system prune``)."""

    FILE = "file-hashes.json"
    VERSION = 2  # {"version": 2, "files": {path: [size, mtime_ns, ctime_ns, ino, sha256]}}

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.data: dict[str, list[int | str]] = {}
        self.dirty = False
        if path is not None:
            try:
                saved = json.loads(path.read_text())
            except (OSError, ValueError):
                saved = None
            if isinstance(saved, dict) and saved.get("version") == self.VERSION and isinstance(saved.get("files"), dict):
                self.data = saved["files"]

    def digest(self, full: str, st: os.stat_result) -> str:
        ident: list[int | str] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        entry = self.data.get(full)
        if isinstance(entry, list) and len(entry) == 5 and entry[:4] == ident:
            return str(entry[4])
        value = sha256_file(full)
        self.data.pop(full, None)  # re-inserted last: the newest survive the trim below
        self.data[full] = ident + [value]
        self.dirty = True
        return value

    def save(self) -> None:
        if self.path is None or not self.dirty:
            return
        if len(self.data) > 200_000:  # keep the file small: forget the paths not hashed for longest
            self.data = dict(list(self.data.items())[-100_000:])
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # dumps: C encoder (dump to a file encodes in Python)
        replace_text(self.path, json.dumps({"version": self.VERSION, "files": self.data}))
        self.dirty = False


@dataclass
class BuildContextDir:
    """The context directory and the files COPY may see (after .dockerignore)."""

    root: Path
    ignore: IgnoreMatcher = field(default_factory=IgnoreMatcher)
    hashes: HashCache = field(default_factory=lambda: HashCache(None))

    @classmethod
    def open(cls, root: Path, dockerfile_name: str, hashes: HashCache) -> "BuildContextDir":
        if not root.is_dir():
            raise BuildError(f"build context {root} is not a directory", hint="pass the directory to build")
        return cls(root.resolve(), load_dockerignore(root, dockerfile_name), hashes)

    def normalize(self, raw: str) -> str:
        """Context-relative path of a COPY source; ``..`` cannot leave the context (docker's rule)."""
        rel = posixpath.normpath("/" + raw.replace("\\", "/")).lstrip("/")
        if rel == ".":
            rel = ""
        return rel

    def full(self, rel: str) -> Path:
        """``rel``'s real path with its parent directories resolved inside the context
        (a symlink ``etc -> /etc`` means the context's own ``etc``); lexical when it is absent."""
        found = resolve_in_root(self.root, rel, follow=False) if rel else None
        return found if found is not None else (self.root / rel if rel else self.root)

    def resolve(self, rel: str, *, follow: bool = True) -> Path | None:
        """``rel`` resolved inside the context (symlinks included); None when it is absent."""
        return resolve_in_root(self.root, rel, follow=follow)

    def exists(self, rel: str) -> bool:
        if rel and self.ignore.ignored(rel):
            return False
        return self.resolve(rel, follow=False) is not None

    def glob(self, pattern: str) -> list[str]:
        """Context paths matching ``pattern`` component by component, not ignored."""
        parts = [p for p in pattern.split("/") if p]
        found = [""]
        for part in parts:
            nxt: list[str] = []
            for base in found:
                full = self.resolve(base)
                if full is None or not full.is_dir():
                    continue
                if has_glob(part):
                    try:
                        names = sorted(os.listdir(full))
                    except OSError:
                        continue
                    for name in names:
                        if fnmatch.fnmatchcase(name, part):
                            nxt.append(f"{base}/{name}" if base else name)
                elif os.path.lexists(full / part):
                    nxt.append(f"{base}/{part}" if base else part)
            found = nxt
        return [rel for rel in found if not self.ignore.ignored(rel)]

    def walk(self, rel: str) -> list[tuple[str, str, os.stat_result]]:
        """(path relative to ``rel``, full path, lstat) below directory ``rel``,
        sorted, not ignored (excluded dirs are pruned unless an exception may match)."""
        out: list[tuple[str, str, os.stat_result]] = []
        resolved = self.resolve(rel)
        if resolved is None:
            raise BuildError(f"{rel} is not in the build context")
        top = str(resolved)

        def visit(dirpath: str, sub: str) -> None:
            names = _listdir(dirpath)
            for name in names:
                full = f"{dirpath}/{name}"
                inner = f"{sub}/{name}" if sub else name
                ctx_rel = f"{rel}/{inner}" if rel else inner
                st = os.lstat(full)
                ignored = self.ignore.ignored(ctx_rel)
                if stat.S_ISDIR(st.st_mode):
                    if ignored and not self.ignore.may_contain_exceptions(ctx_rel):
                        continue
                    if not ignored:
                        out.append((inner, full, st))
                    visit(full, inner)
                elif not ignored:
                    out.append((inner, full, st))

        visit(top, "")
        return out

    def ignored_paths(self) -> list[str]:
        """Context paths .dockerignore excludes (a directory stands for all below it unless an
        exception may match inside); what a context bind mount must hide."""
        if not self.ignore.patterns:
            return []
        out: list[str] = []

        def visit(dirpath: str, sub: str) -> None:
            names = _listdir(dirpath)
            for name in names:
                full = f"{dirpath}/{name}"
                rel = f"{sub}/{name}" if sub else name
                ignored = self.ignore.ignored(rel)
                is_dir = stat.S_ISDIR(os.lstat(full).st_mode)
                if is_dir and (not ignored or self.ignore.may_contain_exceptions(rel)):
                    visit(full, rel)  # a real directory (lstat): never leaves the context
                elif ignored:
                    out.append(rel)

        visit(str(self.root), "")
        return out
