"""System libraries that locked wheels load but do not vendor, and the Debian packages that bring them.

auditwheel copies most native dependencies into a wheel (xgboost, scikit-learn
and torch each carry their own libgomp), but LightGBM's ``lib_lightgbm.so``
links the system's ``libgomp.so.1``: on ``python:3.11-slim`` ``import lightgbm``
fails with "libgomp.so.1: cannot open shared object file". The offline base
(``mlpack base bootstrap``, :mod:`mlpack.oci.base`) installs these packages, so
its images get no step for them. On any other base the Dockerfile looks for
each library (``ldconfig -p``) in the builder, before the import check loads
every module, and in the runtime stage, and installs the package with apt only
where the library is missing: a base that has it (the offline base pushed to a
registry, an image without apt) builds as before, without a mirror.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["SystemLibrary", "SYSTEM_LIBRARIES", "LOCAL_BASE_PACKAGES", "system_libraries"]


@dataclass(frozen=True)
class SystemLibrary:
    """The Debian ``package`` that provides the shared library ``soname``."""

    package: str
    soname: str


# distribution (normalised name) -> the system libraries its wheels load
SYSTEM_LIBRARIES: dict[str, tuple[SystemLibrary, ...]] = {"lightgbm": (SystemLibrary("libgomp1", "libgomp.so.1"),)}
# what the offline base installs of those (mlpack.oci.base.BaseOptions.packages; a unit test keeps them in step)
LOCAL_BASE_PACKAGES = frozenset({"libgomp1"})

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _dist(line: str) -> str:
    match = _NAME.match(line)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else ""


def system_libraries(lock: Iterable[str], *, asked: Iterable[str] = (), local_base: bool) -> tuple[SystemLibrary, ...]:
    """The system libraries the lock's distributions load, each once, in lock order: none on
    the offline base (``local_base``), which has them, nor any whose package the user
    already asks apt for (``asked``, installed unconditionally)."""
    have = {p.split("=", 1)[0] for p in asked}
    found: list[SystemLibrary] = []
    for line in lock:
        for lib in SYSTEM_LIBRARIES.get(_dist(line), ()):
            if lib.package in have or (local_base and lib.package in LOCAL_BASE_PACKAGES):
                continue
            found.append(lib)
            have.add(lib.package)
    return tuple(found)
