"""The image's virtual environment made on this machine, for a Dockerfile without RUN.

``make_deps_dir`` installs the locked wheels (:mod:`.wheelcache` finds them
for the image's platform and Python, :mod:`.wheelinstall` unpacks them)
into a directory laid out as ``/opt/venv`` (``bin/python`` links to the base
image's interpreter, ``pyvenv.cfg``), applies the same trims as the RUN
template (installers, tests, unused tooling, type stubs), strips ELF debug
information with the pure-Python stripper, and compiles bytecode with
unchecked hashes when this machine's Python is the image's major.minor
(otherwise Python compiles at import). The Dockerfile copies it with
``COPY --from=deps / /opt/venv/`` from a named build context.

What is checked here instead of the RUN template's import check: every pin
of the lock is installed at its version (by construction), every top-level
module each distribution records is still present after the trims, and
every module the model's pickle or hooks name is provided by an installed
distribution, the serving code or the standard library. Whether the
modules *import* (a shared library the base lacks, say) is first seen when
the container starts: ``mlpack serve`` checks parity right then.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mlpack.dockerfile import _stripelf
from mlpack.dockerfile.wheelcache import WheelTarget, resolve_wheels
from mlpack.dockerfile.wheelinstall import InstalledWheel, VenvLayout, WheelLimits, install_wheel
from mlpack.errors import RenderError

__all__ = ["BaseFacts", "Trims", "DepsReport", "make_deps_dir", "user_files"]


@dataclass(frozen=True)
class BaseFacts:
    """What the venv needs to know about the base image: its interpreter's path, users and platform."""

    interpreter: str  # e.g. /usr/local/bin/python3.11 (absolute, inside the image)
    passwd: bytes
    group: bytes
    machine: str = "x86_64"
    glibc: tuple[int, int] = (2, 36)


@dataclass(frozen=True)
class Trims:
    """The RUN template's trims: installer packages, packages whose tests go, site-packages globs."""

    installers: tuple[str, ...] = ()
    tests: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class DepsReport:
    """What went into the directory: the distributions, and whether bytecode was compiled."""

    root: Path
    installed: tuple[InstalledWheel, ...]
    compiled: bool
    stripped: tuple[int, int, int] = (0, 0, 0)  # files changed, bytes before, bytes after
    wheels: tuple[str, ...] = field(default=())


def make_deps_dir(out: Path, lock: Sequence[str], *, target: WheelTarget, base: BaseFacts, cache: Path,
                  venv: str = "/opt/venv", extra_wheel_dirs: Sequence[Path] = (), trims: Trims = Trims(),
                  modules: Sequence[str] = (), provided: Sequence[str] = (), limits: WheelLimits = WheelLimits(),
                  pip: Sequence[str] | None = None) -> DepsReport:
    """Install ``lock`` for ``target`` into ``out`` (new or empty) as the image's ``venv``."""
    if out.exists() and any(out.iterdir()):
        raise RenderError(f"{out} is not empty", hint="choose a new directory for the dependencies")
    wheels = resolve_wheels(lock, target, cache, extra_dirs=extra_wheel_dirs, pip=pip)
    out.mkdir(parents=True, exist_ok=True)
    layout = VenvLayout(root=out, prefix=venv, python=target.python)
    layout.site_packages.mkdir(parents=True)
    installed = tuple(install_wheel(w, layout, limits) for w in wheels)
    _venv_files(layout, base)
    _trim(layout, trims)
    _check_modules(layout, installed, modules, provided)
    stripped = _stripelf.strip_tree([str(out)])
    compiled = compile_tree(layout.site_packages, f"{venv}/{layout.site_packages_rel}", target.python)
    for directory, _, _ in os.walk(out):
        os.chmod(directory, 0o755)
    return DepsReport(root=out, installed=installed, compiled=compiled, stripped=stripped,
                      wheels=tuple(w.name for w in wheels))


def _venv_files(layout: VenvLayout, base: BaseFacts) -> None:
    """pyvenv.cfg and the interpreter links, as ``python -m venv`` makes them."""
    interp = base.interpreter
    if not interp.startswith("/"):
        raise RenderError(f"the base image's interpreter {interp!r} is not an absolute path")
    home = interp.rsplit("/", 1)[0]
    (layout.root / "pyvenv.cfg").write_text(
        f"home = {home}\ninclude-system-site-packages = false\nversion = {layout.python}\n"
        f"executable = {interp}\ncommand = {interp} -m venv {layout.prefix}\n")
    bindir = layout.root / "bin"
    bindir.mkdir(exist_ok=True)
    for name, to in (("python", interp), ("python3", "python"), (f"python{layout.python}", "python")):
        link = bindir / name
        if os.path.lexists(link):
            raise RenderError(f"a wheel installed bin/{name}, which the venv's interpreter link needs",
                              hint="a package of the lock ships a script named like the interpreter; remove it")
        os.symlink(to, link)
    if not os.path.lexists(layout.root / "lib64"):
        os.symlink("lib", layout.root / "lib64")


def _trim(layout: VenvLayout, trims: Trims) -> None:
    sp = layout.site_packages
    for module in trims.installers:
        for hit in [sp / module, *sp.glob(f"{module}-*.dist-info")]:
            _remove(hit)
    for script in ("pip", "pip3", f"pip{layout.python}", "wheel", "easy_install"):
        if script.startswith("pip") and "pip" in trims.installers or script in trims.installers \
                or script == "easy_install" and "setuptools" in trims.installers:
            _remove(layout.root / "bin" / script)
    if "setuptools" in trims.installers:
        _remove(sp / "distutils-precedence.pth")
    for package in trims.tests:
        top = sp / package
        if top.is_dir() and not top.is_symlink():
            for dirpath, dirnames, _ in os.walk(top):
                for name in [d for d in dirnames if d == "tests"]:
                    _remove(Path(dirpath) / name)
                    dirnames.remove(name)
    for pattern in trims.paths:
        for hit in _glob(sp, pattern):
            _remove(hit)
    for dirpath, dirnames, filenames in os.walk(layout.root):
        for name in [d for d in dirnames if d == "__pycache__"]:
            _remove(Path(dirpath) / name)
            dirnames.remove(name)
        if Path(dirpath).is_relative_to(sp):
            for name in filenames:
                if name.endswith(".pyi"):
                    os.unlink(os.path.join(dirpath, name))


def _glob(root: Path, pattern: str) -> list[Path]:
    """Shell-glob ``pattern`` (relative, '/'-separated) under ``root``, never leaving it."""
    found = [root]
    for part in [p for p in pattern.split("/") if p]:
        if part in ("..", "."):
            raise RenderError(f"trim pattern {pattern!r} leaves site-packages")
        nxt = []
        for base in found:
            if base.is_dir() and not base.is_symlink():
                nxt += [base / n for n in sorted(os.listdir(base)) if fnmatch.fnmatchcase(n, part)]
        found = nxt
    return found


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


def _present(sp: Path, name: str) -> bool:
    return (sp / name).is_dir() or any(sp.glob(f"{name}.py")) or any(sp.glob(f"{name}.*.so")) \
        or any(sp.glob(f"{name}.so")) or any(sp.glob(f"{name}.pyd"))


def _check_modules(layout: VenvLayout, installed: Sequence[InstalledWheel], modules: Sequence[str],
                   provided: Sequence[str]) -> None:
    """Every recorded top-level module survives the trims; every needed module has a provider."""
    sp = layout.site_packages
    # distributions trimmed whole (the installers) are gone on purpose
    installed = [w for w in installed if any(".dist-info/" in f and (layout.root / f).exists() for f in w.files)]
    lost = [f"{name} (from {w.name} {w.version})" for w in installed for name in w.top_level
            if (name.endswith(".py") or "." not in name) and not _present(sp, name.split(".")[0])]
    if lost:
        raise RenderError(f"the trimmed environment lost modules: {', '.join(lost)}",
                          hint="a trim removed a module a distribution needs; build with deps='run' and report it")
    have = {name.split(".")[0] for w in installed for name in w.top_level} | set(provided)
    stdlib = set(sys.stdlib_module_names) | set(sys.builtin_module_names)
    missing = sorted({m for m in modules if m.split(".")[0] not in have and m.split(".")[0] not in stdlib
                      and not _present(sp, m.split(".")[0])})
    if missing:
        raise RenderError(f"no package of the image provides {', '.join(missing)} (the model or its hooks import "
                          "it)", hint="add the package that provides it (pip=[...] / requirements) and render again")


def compile_tree(tree: Path, ddir: str, python: str) -> bool:
    """Bytecode for ``tree`` as ``ddir`` in the image, unchecked-hash; only when this Python is the image's."""
    tree = Path(tree)
    if f"{sys.version_info[0]}.{sys.version_info[1]}" != python:
        return False
    # a fixed hash seed: Pythons before 3.11 marshal set constants in hash order
    argv = [sys.executable, "-S", "-m", "compileall", "-q", "-q", "-j", "0", "-d", ddir,
            "--invalidation-mode", "unchecked-hash", str(tree)]
    proc = subprocess.run(argv, env={"PYTHONHASHSEED": "0"}, capture_output=True, text=True, timeout=1800,
                          stdin=subprocess.DEVNULL)
    return proc.returncode in (0, 1)  # 1: a file that does not compile is compiled at import, as in the image


def user_files(base: BaseFacts, uid: int) -> tuple[bytes, bytes]:
    """The base's /etc/passwd and /etc/group with the serving user ``mlpack`` (uid = gid) added
    when absent: what the RUN template's ``grep -q || echo >>`` does."""
    passwd, group = base.passwd, base.group
    if not any(line.startswith(b"mlpack:") for line in group.splitlines()):
        group = _append(group, f"mlpack:x:{uid}:\n".encode())
    if not any(line.startswith(b"mlpack:") for line in passwd.splitlines()):
        passwd = _append(passwd, f"mlpack:x:{uid}:{uid}:mlpack:/nonexistent:/usr/sbin/nologin\n".encode())
    return passwd, group


def _append(text: bytes, line: bytes) -> bytes:
    return text + (b"" if not text or text.endswith(b"\n") else b"\n") + line
