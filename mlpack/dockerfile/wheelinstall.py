"""Installing a wheel into a virtual environment's directory, without running anything.

A wheel is a zip archive (PEP 427, the binary distribution format): its
root goes into site-packages, ``<name>-<version>.data/<scheme>/`` into the
scheme's directory (``scripts`` into ``bin`` with a ``#!python`` shebang
rewritten to the venv's interpreter), and the ``.dist-info`` directory gets
a fresh ``RECORD`` (the installed paths) and ``INSTALLER``. Console and GUI
entry points become small scripts in ``bin``.

Every wheel is treated as hostile: a member path must be a plain relative
path (no ``..``, no absolute path, no backslash, no NUL) that stays inside
its target; symlinks, devices and other special members are refused; each
member's size is bounded while it is read (the header is not trusted), as
are the count and the total; every member except RECORD must be listed in
RECORD with a matching sha256 and size. Files are created with
``O_NOFOLLOW`` under directories this module made, so nothing is written
through a symlink. A failure leaves the target half-installed: callers
install into a scratch directory they remove on error.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import re
import stat
import zipfile
import zlib
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path

from mlpack.errors import RenderError

__all__ = ["WheelLimits", "InstalledWheel", "VenvLayout", "install_wheel", "parse_wheel_name"]

_WHEEL_NAME = re.compile(
    r"^(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._]*[A-Za-z0-9])?)-(?P<version>[A-Za-z0-9_.!+]+)"
    r"(?:-(?P<build>\d[A-Za-z0-9_.]*))?-(?P<python>[A-Za-z0-9_.]+)-(?P<abi>[A-Za-z0-9_.]+)"
    r"-(?P<platform>[A-Za-z0-9_.]+)\.whl$"
)
_ENTRY = re.compile(r"^(?P<module>[A-Za-z_][\w.]*)\s*:\s*(?P<attr>[A-Za-z_][\w.]*)\s*(?:\[[^\]]*\])?\s*$")
_SCRIPT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class WheelLimits:
    """Bounds on what one wheel may unpack: a member, the whole, and the member count."""

    max_member: int = 4 << 30
    max_total: int = 16 << 30
    max_members: int = 200_000


@dataclass(frozen=True)
class VenvLayout:
    """Where things go: ``root`` on this machine is ``prefix`` in the image."""

    root: Path
    prefix: str  # /opt/venv
    python: str  # "3.11"

    @property
    def site_packages_rel(self) -> str:
        return f"lib/python{self.python}/site-packages"

    @property
    def site_packages(self) -> Path:
        return self.root / self.site_packages_rel

    @property
    def interpreter(self) -> str:
        return f"{self.prefix}/bin/python"


@dataclass(frozen=True)
class InstalledWheel:
    """What was installed: the distribution, its version and the top-level names it put in site-packages."""

    name: str
    version: str
    top_level: tuple[str, ...]
    files: tuple[str, ...] = field(default=(), repr=False)  # paths relative to the venv root


def parse_wheel_name(filename: str) -> dict[str, str]:
    """The fields of a wheel's file name (PEP 427); a RenderError when it is not one."""
    match = _WHEEL_NAME.match(filename)
    if not match:
        raise RenderError(f"{filename!r} is not a wheel file name",
                          hint="wheels are named NAME-VERSION[-BUILD]-PYTHON-ABI-PLATFORM.whl")
    return {k: v or "" for k, v in match.groupdict().items()}


def _bad(wheel: Path, what: str) -> RenderError:
    return RenderError(f"wheel {wheel.name}: {what}",
                       hint="the wheel is damaged or hostile; delete it from the wheel cache and download it again")


def _safe_parts(wheel: Path, name: str) -> list[str]:
    if "\x00" in name or "\\" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise _bad(wheel, f"member {name!r} is not a relative path")
    parts = name.split("/")
    if parts and parts[-1] == "":
        parts = parts[:-1]  # a directory entry
    if not parts or any(p in ("", ".", "..") for p in parts):
        raise _bad(wheel, f"member {name!r} leaves its directory (empty, '.' or '..' component)")
    return parts


def _b64_digest(data_hash: "hashlib._Hash") -> str:
    return base64.urlsafe_b64encode(data_hash.digest()).rstrip(b"=").decode()


def _read_record(wheel: Path, zf: zipfile.ZipFile, dist_info: str) -> dict[str, tuple[str, int | None]]:
    try:
        raw = zf.read(f"{dist_info}/RECORD")
    except KeyError:
        raise _bad(wheel, f"it has no {dist_info}/RECORD") from None
    if len(raw) > 64 << 20:
        raise _bad(wheel, "its RECORD is larger than 64 MiB")
    out: dict[str, tuple[str, int | None]] = {}
    for row in csv.reader(io.StringIO(raw.decode("utf-8", "replace"))):
        if not row:
            continue
        path, digest, size = (row + ["", ""])[:3]
        if not digest:
            continue  # RECORD itself (and signatures) carry no hash
        algo, _, value = digest.partition("=")
        if algo != "sha256":
            raise _bad(wheel, f"RECORD uses {algo!r} for {path}; only sha256 is accepted")
        out[path] = (value, int(size) if size.isdigit() else None)
    return out


class _Writer:
    """Creates directories and files under ``root`` only, never through a symlink."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.made: set[str] = set()

    def ensure_dir(self, parts: list[str]) -> Path:
        path = self.root
        for part in parts:
            path = path / part
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                os.mkdir(path, 0o755)
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise RenderError(f"{path} is in the way of a directory (a symlink or a file)",
                                  hint="two wheels disagree about a path; check the lock")
        return path

    def open_new(self, parts: list[str], mode: int) -> int:
        parent = self.ensure_dir(parts[:-1])
        path = parent / parts[-1]
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            pass
        else:
            if not stat.S_ISREG(st.st_mode):
                raise RenderError(f"{path} exists and is not a file", hint="two wheels disagree about a path")
            os.unlink(path)  # a later wheel overwrites a file (as pip does): shared namespace __init__.py
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)


def _scheme_target(layout: VenvLayout, wheel: Path, parts: list[str], data_dir: str,
                   dist: str) -> list[str]:
    """The venv-relative path parts of a member."""
    sp = layout.site_packages_rel.split("/")
    if parts[0] != data_dir:
        return sp + parts
    if len(parts) < 3:
        raise _bad(wheel, f"{'/'.join(parts)} is not inside a scheme directory of {data_dir}")
    scheme, rest = parts[1], parts[2:]
    if scheme in ("purelib", "platlib"):
        return sp + rest
    if scheme == "scripts":
        return ["bin"] + rest
    if scheme == "headers":
        return ["include", "site", f"python{layout.python}", dist] + rest
    if scheme == "data":
        return rest
    raise _bad(wheel, f"unknown scheme {scheme!r} in {data_dir}")


def install_wheel(wheel: Path, layout: VenvLayout, limits: WheelLimits = WheelLimits()) -> InstalledWheel:
    """Unpack ``wheel`` into ``layout.root`` as an installer does; see the module's rules."""
    wheel = Path(wheel)
    fields = parse_wheel_name(wheel.name)
    try:
        zf = zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as exc:
        raise _bad(wheel, f"it is not a readable zip archive ({exc})") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.max_members:
            raise _bad(wheel, f"it has {len(infos)} members, more than {limits.max_members}")
        names = [i.filename for i in infos]
        if len(set(names)) != len(names):
            raise _bad(wheel, "it has the same member twice")
        dist_infos = {n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".dist-info")}
        if len(dist_infos) != 1:
            raise _bad(wheel, f"it has {len(dist_infos)} .dist-info directories, not one")
        dist_info = dist_infos.pop()
        data_dir = dist_info[: -len(".dist-info")] + ".data"
        try:
            meta = HeaderParser().parsestr(zf.read(f"{dist_info}/METADATA").decode("utf-8", "replace"))
            wheel_meta = HeaderParser().parsestr(zf.read(f"{dist_info}/WHEEL").decode("utf-8", "replace"))
        except KeyError as exc:
            raise _bad(wheel, f"it lacks {exc.args[0]}") from None
        if not str(wheel_meta.get("Wheel-Version", "")).startswith("1."):
            raise _bad(wheel, f"Wheel-Version {wheel_meta.get('Wheel-Version')!r} is not 1.x")
        name, version = str(meta.get("Name") or fields["name"]), str(meta.get("Version") or fields["version"])
        record = _read_record(wheel, zf, dist_info)
        writer = _Writer(layout.root)
        installed: list[tuple[str, str, int]] = []
        total = 0
        top: set[str] = set()
        for info in infos:
            parts = _safe_parts(wheel, info.filename)
            mode = info.external_attr >> 16
            if info.is_dir():
                continue
            if mode and stat.S_IFMT(mode) not in (0, stat.S_IFREG):
                raise _bad(wheel, f"member {info.filename} is not a regular file (a symlink or a device)")
            if info.file_size > limits.max_member:
                raise _bad(wheel, f"member {info.filename} is {info.file_size} bytes, more than {limits.max_member}")
            rel = "/".join(parts)
            if rel == f"{dist_info}/RECORD" or rel in (f"{dist_info}/RECORD.jws", f"{dist_info}/RECORD.p7s"):
                continue
            expected = record.get(rel)
            if expected is None:
                raise _bad(wheel, f"member {rel} is not in RECORD with a hash")
            target = _scheme_target(layout, wheel, parts, data_dir, name)
            is_script = parts[0] == data_dir and parts[1] == "scripts"
            executable = is_script or bool(mode & 0o111)
            h = hashlib.sha256()
            fd = writer.open_new(target, 0o755 if executable else 0o644)
            try:
                size, total = _copy_member(zf, info, fd, h, limits, total, wheel, rel,
                                           layout.interpreter if is_script else None)
            except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                raise _bad(wheel, f"member {rel} is damaged ({exc})") from None
            if _b64_digest(h) != expected[0] or (expected[1] is not None and expected[1] != size):
                raise _bad(wheel, f"member {rel} does not match its RECORD hash")
            rel_target = "/".join(target)
            st = os.stat(layout.root / rel_target)
            installed.append((rel_target, _file_digest(layout.root / rel_target), st.st_size))
            if target[: len(layout.site_packages_rel.split("/"))] == layout.site_packages_rel.split("/"):
                first_part = target[len(layout.site_packages_rel.split("/"))]
                if not first_part.endswith((".dist-info", ".data")):
                    top.add(first_part)
        scripts = _entry_point_scripts(zf, dist_info, layout, writer)
        installed += [(s, _file_digest(layout.root / s), os.stat(layout.root / s).st_size) for s in scripts]
    _write_record(layout, dist_info, installed)
    return InstalledWheel(name=name, version=version, top_level=tuple(sorted(top)),
                          files=tuple(p for p, _, _ in installed))


def _copy_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, fd: int, h: "hashlib._Hash", limits: WheelLimits,
                 total: int, wheel: Path, rel: str, interpreter: str | None) -> tuple[int, int]:
    """Stream one member into ``fd``, hashing the archive's bytes and counting them against the bounds
    as they come out (a header's size is not trusted); ``interpreter``: rewrite a ``#!python`` line."""
    size = 0
    with os.fdopen(fd, "wb") as out, zf.open(info) as src:
        first = True
        while True:
            chunk = src.read(_CHUNK)
            if not chunk:
                break
            h.update(chunk)
            size += len(chunk)
            total += len(chunk)
            if size > limits.max_member:
                raise _bad(wheel, f"member {rel} unpacks to more than {limits.max_member} bytes")
            if total > limits.max_total:
                raise _bad(wheel, f"it unpacks to more than {limits.max_total} bytes")
            if first and interpreter is not None and chunk.startswith(b"#!python"):
                chunk = _rewrite_shebang(chunk, interpreter)
            first = False
            out.write(chunk)
    return size, total


def _rewrite_shebang(chunk: bytes, interpreter: str) -> bytes:
    """``#!python[w] args`` -> ``#!<venv>/bin/python args`` (the wheel spec's placeholder)."""
    line, sep, rest = chunk.partition(b"\n")
    args = line[len(b"#!pythonw"):] if line.startswith(b"#!pythonw") else line[len(b"#!python"):]
    return b"#!" + interpreter.encode() + args + sep + rest


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return _b64_digest(h)


_SCRIPT = """#!{python}
# -*- coding: utf-8 -*-
import re
import sys
from {module} import {head}
if __name__ == "__main__":
    sys.argv[0] = re.sub(r"(-script\\.pyw|\\.exe)?$", "", sys.argv[0])
    sys.exit({call}())
"""


def _entry_point_scripts(zf: zipfile.ZipFile, dist_info: str, layout: VenvLayout, writer: _Writer) -> list[str]:
    """bin/<name> for each console_scripts / gui_scripts entry point; venv-relative paths."""
    import configparser

    try:
        text = zf.read(f"{dist_info}/entry_points.txt").decode("utf-8", "replace")
    except KeyError:
        return []
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        raise RenderError(f"{dist_info}/entry_points.txt does not parse: {exc}",
                          hint="the wheel is damaged; download it again") from None
    out: list[str] = []
    for section in ("console_scripts", "gui_scripts"):
        if not parser.has_section(section):
            continue
        for script, value in parser.items(section):
            match = _ENTRY.match(value)
            if not _SCRIPT_NAME.match(script) or not match:
                raise RenderError(f"{dist_info}: entry point {script!r} = {value!r} is not name = module:attr",
                                  hint="the wheel is damaged or hostile")
            head = match.group("attr").split(".")[0]
            body = _SCRIPT.format(python=layout.interpreter, module=match.group("module"), head=head,
                                  call=match.group("attr"))
            fd = writer.open_new(["bin", script], 0o755)
            with os.fdopen(fd, "w") as fh:
                fh.write(body)
            out.append(f"bin/{script}")
    return out


def _write_record(layout: VenvLayout, dist_info: str, installed: list[tuple[str, str, int]]) -> None:
    """RECORD with the installed paths relative to site-packages (as pip writes them), plus INSTALLER."""
    sp = layout.site_packages
    base = f"{layout.site_packages_rel}/{dist_info}"
    with open(layout.root / base / "INSTALLER", "w") as fh:
        fh.write("mlpack\n")
    rows = installed + [(f"{base}/INSTALLER", _file_digest(layout.root / base / "INSTALLER"),
                         os.stat(layout.root / base / "INSTALLER").st_size)]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for rel, digest, size in sorted(rows):
        writer.writerow([os.path.relpath(layout.root / rel, sp), f"sha256={digest}", size])
    writer.writerow([os.path.relpath(layout.root / base / "RECORD", sp), "", ""])
    (layout.root / base / "RECORD").write_text(buf.getvalue())
