"""RUN: mounts, the sandboxed process, and its upper directory as a changeset.

``RUN --mount`` types: ``cache`` (a host directory under
``Settings.cache_dir/mounts`` that outlives builds), ``bind`` (from the
context, a stage or an image; read-only unless ``rw``), ``secret`` (a host
file bound read-only, never in a layer or a cache key) and ``tmpfs``.
``--network`` is ``default`` (a namespace of the step's own with a
slirp4netns uplink: the internet, never the host's loopback), ``none`` (only
``lo``) or ``host`` (the host's namespace, asked for explicitly, as with
``docker build --network=host``). The build's ``--network`` sets what
``default`` means for every step.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

from mlpack.builder.parser import Instruction
from mlpack.builder.shell import Expander
from mlpack.values import dataclass

__all__ = ["MountSpec", "parse_mounts", "parse_network", "remove_mountpoints",
           "DEFAULT_CA_BUNDLE", "cache_mount_dir", "NETWORKS"]

DEFAULT_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# Mount points the runtime itself creates in the root; never content of a layer.
RUNTIME_MOUNTPOINTS = ("proc", "sys", "dev", "etc/resolv.conf", "etc/hosts", "etc/hostname")


@dataclass(frozen=True)
class MountSpec:
    """One ``--mount=...`` after expansion."""

    type: str
    target: str
    source: str = ""
    from_: str = ""
    id: str = ""
    readonly: bool = False
    sharing: str = "shared"
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    size: str | None = None
    required: bool = False

    def key(self) -> list[object]:
        """What goes into the cache key (never a secret's value)."""
        return [self.type, self.target, self.source, self.from_, self.id, self.readonly,
                self.mode, self.uid, self.gid, self.size]


def _bool(value: str) -> bool:
    return value.lower() in ("", "true", "1", "yes")


def parse_mounts(instr: Instruction, values: list[str], expander: Expander) -> list[MountSpec]:
    mounts: list[MountSpec] = []
    for raw in values:
        fields: dict[str, str] = {}
        for part in expander.word(raw).split(","):
            if not part:
                continue
            key, eq, value = part.partition("=")
            fields[key.strip().lower()] = value.strip() if eq else ""
        kind = fields.pop("type", "bind")
        target = fields.pop("target", None) or fields.pop("dst", None) or fields.pop("destination", None)
        common: dict[str, object] = {}
        if kind not in ("cache", "bind", "secret", "tmpfs"):
            raise instr.error(f"--mount type={kind} is not supported",
                              hint="use type=cache, bind, secret or tmpfs")
        if kind == "secret":
            secret_id = fields.pop("id", "") or (os.path.basename(target) if target else "")
            if not secret_id:
                raise instr.error("--mount=type=secret needs id=...")
            target = target or f"/run/secrets/{secret_id}"
            common["id"] = secret_id
            common["required"] = _bool(fields.pop("required", "false"))
        if not target:
            raise instr.error(f"--mount=type={kind} needs target=...")
        if not target.startswith("/"):
            target = "/" + target
        if kind == "cache":
            common["id"] = fields.pop("id", "") or target
            sharing = fields.pop("sharing", "shared")
            if sharing not in ("shared", "private", "locked"):
                raise instr.error(f"--mount sharing={sharing} is not shared, private or locked")
            common["sharing"] = sharing
        if kind in ("cache", "bind"):
            common["source"] = fields.pop("source", "") or fields.pop("src", "")
            common["from_"] = fields.pop("from", "")
        for flag in ("ro", "readonly"):
            if flag in fields:
                common["readonly"] = _bool(fields.pop(flag))
        for flag in ("rw", "readwrite"):
            if flag in fields:
                common["readonly"] = not _bool(fields.pop(flag))
        if kind == "bind" and "readonly" not in common:
            common["readonly"] = True  # docker: bind mounts are read-only unless rw
        for num in ("uid", "gid"):
            if num in fields:
                value = fields.pop(num)
                if not value.isdigit():
                    raise instr.error(f"--mount {num}={value} is not a number")
                common[num] = int(value)
        if "mode" in fields:
            value = fields.pop("mode")
            try:
                common["mode"] = int(value, 8)
            except ValueError:
                raise instr.error(f"--mount mode={value} is not octal") from None
        if kind == "tmpfs" and "size" in fields:
            common["size"] = fields.pop("size")
        if fields:
            raise instr.error(f"--mount: unknown option(s) {', '.join(sorted(fields))} for type={kind}")
        mounts.append(MountSpec(type=kind, target=target, **common))  # type: ignore[arg-type]
    return mounts


NETWORKS = ("default", "none", "host")


def parse_network(instr: Instruction, values: list[str] | None, build_default: str = "default") -> str:
    """The sandbox network of a RUN: its own ``--network``, else the build's."""
    value = (values or [build_default])[-1]
    if value not in NETWORKS:
        raise instr.error(f"--network={value} is not supported", hint="use default, host or none")
    return build_default if value == "default" else value


def cache_mount_dir(cache_dir: Path, mount: MountSpec) -> Path:
    """The host directory of a cache mount: one per id, shared by every build."""
    ident = hashlib.sha256(mount.id.encode()).hexdigest()[:24]
    path = cache_dir / "mounts" / ident
    if not path.exists():
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, mount.mode if mount.mode is not None else 0o755)
        if mount.uid is not None or mount.gid is not None:
            os.chown(path, mount.uid or 0, mount.gid or 0)
    return path


def remove_mountpoints(upper: Path, targets: list[str], lower_exists) -> None:  # type: ignore[no-untyped-def]
    """Drop empty files/dirs the runtime made in the upper dir only to mount on them.

    The step may have replaced a target's parents with symlinks (to ``/etc``,
    to a host path): the walk opens one component at a time below the upper
    directory with O_NOFOLLOW and stops at a symlink, so nothing outside the
    upper directory is ever looked at or removed.
    """
    for target in sorted(set(t.strip("/") for t in targets), key=len, reverse=True):
        if not target:
            continue
        parts = [p for p in target.split("/") if p not in ("", ".")]
        if ".." in parts:
            continue
        for k in range(len(parts), 0, -1):
            rel = "/".join(parts[:k])
            if lower_exists(rel):
                break
            if not _remove_empty(upper, parts[:k]):
                break


def _remove_empty(upper: Path, parts: list[str]) -> bool:
    """Remove ``upper/parts`` if it is an empty directory or an empty regular file;
    True when it is gone (or was never there), False to stop climbing."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(upper, flags)
    except OSError:
        return False
    try:
        for part in parts[:-1]:
            try:
                nxt = os.open(part, flags, dir_fd=fd)  # a symlinked parent fails here (ELOOP/ENOTDIR)
            except FileNotFoundError:
                return True
            except OSError:
                return False
            os.close(fd)
            fd = nxt
        name = parts[-1]
        try:
            st = os.lstat(name, dir_fd=fd)
        except FileNotFoundError:
            return True
        if stat.S_ISDIR(st.st_mode):
            try:
                os.rmdir(name, dir_fd=fd)
            except OSError:
                return False  # not empty: the step wrote something there
            return True
        if stat.S_ISREG(st.st_mode) and st.st_size == 0:
            os.unlink(name, dir_fd=fd)
            return True
        return False
    finally:
        os.close(fd)


def rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
