"""Debian packages that locked wheels load from the system but do not vendor.

auditwheel copies most native dependencies into a wheel (xgboost, scikit-learn
and torch each carry their own libgomp), but LightGBM's ``lib_lightgbm.so``
links the system's ``libgomp.so.1``: on ``python:3.11-slim`` ``import lightgbm``
fails with "libgomp.so.1: cannot open shared object file". The offline base
(``mlpack base bootstrap``, :mod:`mlpack.oci.base`) installs these packages; any
other base gets them through the Dockerfile's apt step, in the builder (whose
import check loads every module) and in the runtime stage.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["SYSTEM_PACKAGES", "LOCAL_BASE_PACKAGES", "apt_packages"]

# distribution (normalised name) -> the Debian packages its wheels need from the system
SYSTEM_PACKAGES: dict[str, tuple[str, ...]] = {"lightgbm": ("libgomp1",)}
# what the offline base installs of those (mlpack.oci.base.BaseOptions.packages; a unit test keeps them in step)
LOCAL_BASE_PACKAGES = frozenset({"libgomp1"})

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _dist(line: str) -> str:
    match = _NAME.match(line)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else ""


def apt_packages(asked: Iterable[str], lock: Iterable[str], *, local_base: bool) -> tuple[str, ...]:
    """``asked`` (the user's apt packages, in order) plus the system packages the lock's
    distributions need that the base may lack, each package once; on the offline base
    (``local_base``) nothing is added that it already has, so its images stay apt-free."""
    wanted = list(asked)
    have = {p.split("=", 1)[0] for p in wanted}
    for line in lock:
        for package in SYSTEM_PACKAGES.get(_dist(line), ()):
            if package in have or (local_base and package in LOCAL_BASE_PACKAGES):
                continue
            wanted.append(package)
            have.add(package)
    return tuple(wanted)
