"""Wheels made by the tests (zip archives as PEP 427 lays them out), honest or hostile."""

from __future__ import annotations

import base64
import hashlib
import stat
import zipfile
from pathlib import Path


def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_wheel(directory: Path, name: str, version: str, files: dict[str, bytes], *,
               tag: str = "py3-none-any", entry_points: str | None = None,
               record: dict[str, str] | None = None, unrecorded: tuple[str, ...] = (),
               symlinks: dict[str, str] | None = None, extra_members: list[tuple[zipfile.ZipInfo, bytes]] = (),
               ) -> Path:
    """A wheel holding ``files`` (archive paths) plus its .dist-info; ``record`` overrides hashes,
    ``unrecorded`` leaves members out of RECORD, ``symlinks`` adds symlink members."""
    dist = f"{name}-{version}.dist-info"
    members = dict(files)
    members[f"{dist}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    members[f"{dist}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: mlpack-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    if entry_points is not None:
        members[f"{dist}/entry_points.txt"] = entry_points.encode()
    lines = []
    for path, data in members.items():
        if path in unrecorded:
            continue
        digest = (record or {}).get(path, record_hash(data))
        lines.append(f"{path},{digest},{len(data)}")
    for path in (symlinks or {}):
        lines.append(f"{path},{record_hash(b'x')},1")
    lines.append(f"{dist}/RECORD,,")
    members[f"{dist}/RECORD"] = ("\n".join(lines) + "\n").encode()
    wheel = directory / f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, data in members.items():
            info = zipfile.ZipInfo(path)
            info.external_attr = (stat.S_IFREG | (0o755 if path.endswith(".sh") else 0o644)) << 16
            zf.writestr(info, data)
        for path, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(path)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
        for info, data in extra_members:
            zf.writestr(info, data)
    return wheel
