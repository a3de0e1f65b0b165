"""The environment a bundle records: Python, platform and the pinned lock.

An ONNX bundle's lock holds only what serving needs (onnxruntime, numpy,
fastapi, uvicorn, orjson, PyYAML), never the training stack. A python
bundle adds the distributions that provide the pickled classes, at the
exact versions installed now (local labels such as ``+cpu`` kept), and
their own requirements, pinned the same way.
"""

from __future__ import annotations

import platform
import re
import sys
from collections.abc import Iterable
from importlib import metadata

from mlpack.errors import CaptureError

__all__ = ["SERVING_DISTRIBUTIONS", "environment", "serving_lock", "distributions_for_modules", "pinned_closure"]

# Keep in step with the ``serve`` extra in pyproject.toml (a unit test checks).
SERVING_DISTRIBUTIONS = (
    "onnxruntime", "numpy", "fastapi", "uvicorn", "orjson", "PyYAML", "httptools", "uvloop", "grpcio", "protobuf",
)  # fmt: skip

# Used only where a serving dependency is not installed in the capturing
# environment (a notebook without mlpack[serve]): versions known to work.
_FALLBACK_PINS = {
    "onnxruntime": "1.32.0",
    "numpy": "2.4.6",
    "fastapi": "0.165.0",
    "uvicorn": "0.54.0",
    "orjson": "3.13.0",
    "PyYAML": "6.0.4",
    "httptools": "0.9.0",
    "uvloop": "0.23.0",
    "grpcio": "1.85.3",
    "protobuf": "6.33.6",
}


def environment() -> dict[str, str]:
    """Python version and platform of the capturing kernel."""
    import mlpack

    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": f"{sys.platform}-{platform.machine()}",
        "mlpack": mlpack.__version__,
    }


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def installed_versions(dists: Iterable[str]) -> dict[str, str]:
    """``{name: version}`` of those of ``dists`` that are installed."""
    return {d: v for d in dists if (v := _version(d)) is not None}


def serving_lock(with_onnxruntime: bool = True) -> dict[str, str]:
    """Serving dependencies pinned to the installed (or known-good) versions."""
    pins = {}
    for dist in SERVING_DISTRIBUTIONS:
        if dist == "onnxruntime" and not with_onnxruntime:
            continue
        pins[dist] = _version(dist) or _FALLBACK_PINS[dist]
    return pins


def distributions_for_modules(modules: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """Maps module names to installed distributions ``{name: version}``.

    Returns the distributions and the top-level modules that no distribution
    provides (a local file or a class defined in the notebook).
    """
    providers = metadata.packages_distributions()
    found: dict[str, str] = {}
    orphans: list[str] = []
    for module in sorted(set(modules)):
        top = module.split(".")[0]
        if top in sys.stdlib_module_names or top in ("builtins", "copyreg", "__builtin__", "mlpack"):
            continue
        dists = providers.get(top)
        if not dists:
            orphans.append(top)
            continue
        for dist in dists:
            version = _version(dist)
            if version is not None:
                found[_project_name(dist)] = version
    return found, sorted(set(orphans))


def _project_name(dist: str) -> str:
    try:
        return metadata.metadata(dist)["Name"] or dist
    except metadata.PackageNotFoundError:  # pragma: no cover - just listed
        return dist


def pinned_closure(roots: dict[str, str]) -> dict[str, str]:
    """``roots`` plus their installed requirements (recursively), all pinned.

    Requirements behind an ``extra`` marker are skipped; other markers are
    evaluated for this interpreter when ``packaging`` is available.
    """
    try:
        from packaging.requirements import Requirement
    except ImportError:  # pragma: no cover - packaging ships with pip/setuptools
        Requirement = None  # type: ignore[assignment,misc]
    pins = dict(roots)
    seen = {_canonical(n) for n in pins}
    queue = list(pins)
    while queue:
        dist = queue.pop()
        try:
            reqs = metadata.requires(dist) or []
        except metadata.PackageNotFoundError:
            continue
        for line in reqs:
            if Requirement is not None:
                try:
                    req = Requirement(line)
                except Exception:
                    continue
                if req.marker is not None:
                    if "extra" in str(req.marker):
                        continue
                    try:
                        if not req.marker.evaluate({"extra": ""}):
                            continue
                    except Exception:
                        continue
                name = req.name
            else:  # without packaging: marker-free requirements only
                if ";" in line:
                    continue
                name = re.split(r"[\s<>=!~\[(]", line, maxsplit=1)[0]
            key = _canonical(name)
            if key in seen:
                continue
            version = _version(name)
            if version is None:
                continue
            seen.add(key)
            pins[_project_name(name)] = version
            queue.append(name)
    return pins


def lock_lines(pins: dict[str, str]) -> list[str]:
    """``name==version`` lines, sorted case-insensitively."""
    return [f"{name}=={version}" for name, version in sorted(pins.items(), key=lambda kv: kv[0].lower())]


def check_orphans(orphans: list[str]) -> None:
    if not orphans:
        return
    where = "the notebook (__main__)" if "__main__" in orphans else "local modules " + ", ".join(orphans)
    raise CaptureError(
        f"the model's classes come from {where}, which no installed distribution provides, "
        "so the serving image could not unpickle it",
        hint="move the classes into an installed package (pip install -e .), or make the model "
        "convertible to ONNX (flavor='onnx')",
        modules=orphans,
    )
