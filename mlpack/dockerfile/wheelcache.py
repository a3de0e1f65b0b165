"""The locked wheels of an image, for the image's platform and Python, from a local cache first.

``resolve_wheels(lock, target, cache)`` returns one wheel file per pinned
line of ``lock``, each compatible with ``target`` (CPython X.Y on
manylinux for the image's machine and glibc; never the host's platform).
Wheels already in ``cache`` are used without any index, so a second build
of the same lock is offline; the missing ones are fetched with
``pip download --only-binary=:all: --no-deps --platform ... --python-version
... --implementation cp --abi ...`` into the cache, and checked again
(a wheel pip brought that does not fit the target is refused by its tags).
A bundle's own wheels (local packages) are found in ``extra_dirs``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mlpack.dockerfile.wheelinstall import parse_wheel_name
from mlpack.errors import RenderError

__all__ = ["WheelTarget", "Pin", "lock_pins", "resolve_wheels", "wheel_fits"]

_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*([A-Za-z0-9_.!+-]+)\s*(?:[;#].*)?$")
_MACHINES = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}


@dataclass(frozen=True)
class WheelTarget:
    """The image's interpreter: CPython ``python`` (``3.11``) on Linux ``machine`` with glibc ``glibc``."""

    python: str = "3.11"
    machine: str = "x86_64"
    glibc: tuple[int, int] = (2, 36)

    def __post_init__(self) -> None:
        machine = _MACHINES.get(self.machine)
        if machine is None:
            raise RenderError(f"machine {self.machine!r} is not one mlpack installs wheels for",
                              hint="use linux/amd64 or linux/arm64")
        object.__setattr__(self, "machine", machine)
        if not re.match(r"^3\.\d{1,2}$", self.python):
            raise RenderError(f"python {self.python!r} is not of the form 3.11")

    @property
    def nodot(self) -> str:
        return self.python.replace(".", "")

    @property
    def platform(self) -> str:
        """``linux/amd64`` or ``linux/arm64`` (the OCI name)."""
        return "linux/amd64" if self.machine == "x86_64" else "linux/arm64"

    def platforms(self) -> list[str]:
        """Platform tags, most specific first: manylinux_2_<glibc> down to manylinux1's glibc."""
        major, minor = self.glibc
        out = [f"manylinux_{major}_{m}_{self.machine}" for m in range(minor, 4, -1)]
        legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
        out += [f"{name}_{self.machine}" for glibc_minor, name in legacy.items()
                if glibc_minor <= minor and (self.machine == "x86_64" or name == "manylinux2014")]
        return out

    def tags(self) -> set[tuple[str, str, str]]:
        """Every (python, abi, platform) tag a wheel for this target may carry."""
        minor = int(self.python.split(".")[1])
        plats = self.platforms()
        out: set[tuple[str, str, str]] = set()
        for plat in plats + ["any"]:
            if plat != "any":
                out.add((f"cp{self.nodot}", f"cp{self.nodot}", plat))
                out.update((f"cp3{m}", "abi3", plat) for m in range(2, minor + 1))
                out.add((f"cp{self.nodot}", "none", plat))
            out.update((f"py3{m}", "none", plat) for m in range(0, minor + 1))
            out.add(("py3", "none", plat))
        return out


@dataclass(frozen=True)
class Pin:
    name: str
    version: str

    @property
    def key(self) -> str:
        return canonical(self.name)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_pins(lines: Iterable[str]) -> list[Pin]:
    """The ``name==version`` pins of a lock; any other requirement line is refused (it needs a resolver)."""
    out: list[Pin] = []
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _PIN.match(line)
        if not match:
            raise RenderError(f"lock line {line!r} is not name==version",
                              hint="installing without RUN needs an exact pin for every package (deps='run' "
                                   "resolves ranges with pip inside the build)")
        out.append(Pin(match.group(1), match.group(2)))
    return out


def wheel_fits(filename: str, target: WheelTarget) -> bool:
    """True when a wheel's tags (compressed tag sets expanded) include one of the target's."""
    fields = parse_wheel_name(filename)
    tags = target.tags()
    return any((py, abi, plat) in tags for py in fields["python"].split(".")
               for abi in fields["abi"].split(".") for plat in fields["platform"].split("."))


def _find(pin: Pin, dirs: Sequence[Path], target: WheelTarget) -> Path | None:
    ranked: list[tuple[int, Path]] = []
    order = target.platforms() + ["any"]
    for directory in dirs:
        if not directory.is_dir():
            continue
        for path in directory.glob("*.whl"):
            try:
                fields = parse_wheel_name(path.name)
            except RenderError:
                continue
            if canonical(fields["name"]) != pin.key or _norm_version(fields["version"]) != _norm_version(pin.version):
                continue
            if wheel_fits(path.name, target):
                plats = fields["platform"].split(".")
                rank = min(order.index(p) for p in plats if p in order) if any(p in order for p in plats) else 999
                ranked.append((rank, path))
    ranked.sort(key=lambda item: (item[0], item[1].name))
    return ranked[0][1] if ranked else None


def _norm_version(version: str) -> str:
    from packaging.version import InvalidVersion, Version

    try:
        return str(Version(version))
    except InvalidVersion:
        return version.lower()


def resolve_wheels(lock: Iterable[str], target: WheelTarget, cache: Path, *,
                   extra_dirs: Sequence[Path] = (), pip: Sequence[str] | None = None,
                   timeout: float = 1800.0) -> list[Path]:
    """One wheel per pin of ``lock`` for ``target``: from ``extra_dirs`` or ``cache``, else downloaded into it."""
    pins = lock_pins(lock)
    cache.mkdir(parents=True, exist_ok=True)
    dirs = [*extra_dirs, cache]
    found = {pin: _find(pin, dirs, target) for pin in pins}
    missing = [pin for pin, path in found.items() if path is None]
    if missing:
        _download(missing, target, cache, pip=pip, timeout=timeout)
        for pin in missing:
            found[pin] = _find(pin, dirs, target)
        still = [f"{p.name}=={p.version}" for p, path in found.items() if path is None]
        if still:
            raise RenderError(f"no wheel for {target.platform} CPython {target.python} of {', '.join(still)}",
                              hint="these packages publish no matching binary wheel; build with deps='run' "
                                   "(pip inside the build compiles them) or pin versions that have wheels")
    return [found[pin] for pin in pins]  # type: ignore[misc]


def _download(pins: list[Pin], target: WheelTarget, cache: Path, *, pip: Sequence[str] | None,
              timeout: float) -> None:
    argv = [*(pip or (sys.executable, "-m", "pip")), "download", "--only-binary=:all:", "--no-deps",
            "--disable-pip-version-check", "-q", "--implementation", "cp", "--python-version", target.python,
            "--abi", f"cp{target.nodot}", "--abi", "abi3", "--abi", "none", "-d", str(cache)]
    for plat in target.platforms():
        argv += ["--platform", plat]
    argv += [f"{p.name}=={p.version}" for p in pins]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_TARGET")}
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise RenderError(f"pip download of {len(pins)} wheels took more than {timeout:.0f}s",
                          hint="check the network or the index (PIP_INDEX_URL)") from None
    except OSError as exc:
        raise RenderError(f"cannot run pip: {exc}", hint="install pip in the environment that runs mlpack") from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise RenderError(
            f"pip could not download wheels for {target.platform} CPython {target.python}: {tail}",
            hint="check the network and the index (PIP_INDEX_URL, PIP_EXTRA_INDEX_URL); offline, put the wheels in "
                 f"{cache} (pip download --only-binary=:all: --platform ... -d {cache})")
