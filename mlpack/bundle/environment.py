"""The environment a bundle records: Python, platform and the pinned lock.

An ONNX bundle's lock holds only what serving needs (onnxruntime, numpy,
starlette, uvicorn, orjson, PyYAML), never the training stack. A python
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
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

from mlpack._version import __version__
from mlpack.errors import CaptureError

__all__ = ["SERVING_DISTRIBUTIONS", "environment", "serving_lock", "distributions_for_modules", "pinned_closure",
           "hook_distributions", "requested", "requirement_specs", "lock_for",
           "local_source", "build_local_wheels"]

# Keep in step with the ``serve`` extra in pyproject.toml (a unit test checks).
SERVING_DISTRIBUTIONS = (
    "onnxruntime", "numpy", "starlette", "uvicorn", "orjson", "PyYAML", "httptools", "uvloop", "zttp", "protobuf",
)  # fmt: skip

# Used only where a serving dependency is not installed in the capturing
# environment (a notebook without mlpack[serve]): versions known to work.
_FALLBACK_PINS = {
    "onnxruntime": "1.32.0",
    "numpy": "2.4.6",
    "starlette": "1.10.0",
    "uvicorn": "0.55.0",
    "orjson": "3.13.0",
    "PyYAML": "6.0.4",
    "httptools": "0.9.0",
    "uvloop": "0.23.0",
    "zttp": "0.0.35",
    "protobuf": "6.33.6",
}


def environment() -> dict[str, str]:
    """Python version and platform of the capturing kernel."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": f"{sys.platform}-{platform.machine()}",
        "mlpack": __version__,
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
    modules = set(modules)
    for module in sorted(modules | implied_modules(modules)):
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


# Keras 3 pickles name only keras classes; the backend it runs on is a separate package.
_KERAS_BACKENDS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch", "numpy": "numpy"}


def implied_modules(modules: Iterable[str]) -> set[str]:
    """Modules a model needs that its pickle does not name: Keras's backend framework
    (``KERAS_BACKEND``, else what the installed keras is configured with, else tensorflow)."""
    import os

    tops = {m.split(".")[0] for m in modules}
    implied: set[str] = set()
    if "keras" in tops:
        backend = os.environ.get("KERAS_BACKEND", "").strip().lower()
        if not backend:
            try:
                import keras  # already imported by whoever built the model

                backend = str(keras.config.backend())
            except Exception:  # keras 2 (tf.keras) or no config: TensorFlow is the backend
                backend = "tensorflow"
        implied.add(_KERAS_BACKENDS.get(backend, backend))
    return implied


def _project_name(dist: str) -> str:
    try:
        return metadata.metadata(dist)["Name"] or dist
    except metadata.PackageNotFoundError:  # pragma: no cover - just listed
        return dist


def pinned_closure(roots: dict[str, str], why: dict[str, str] | None = None) -> dict[str, str]:
    """``roots`` plus their installed requirements (recursively), all pinned; ``why``
    (canonical name -> reason), when given, gets "required by X" for each added package.

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
            if why is not None:
                why.setdefault(key, f"required by {_project_name(dist)}")
            queue.append(name)
    return pins


def lock_lines(pins: dict[str, str], why: dict[str, str] | None = None) -> list[str]:
    """``name==version`` lines, sorted case-insensitively, each with its reason as a comment."""
    lines = []
    for name, version in sorted(pins.items(), key=lambda kv: kv[0].lower()):
        reason = (why or {}).get(_canonical(name))
        lines.append(f"{name}=={version}" + (f"  # {reason}" if reason else ""))
    return lines


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


def hook_distributions(source: str | None) -> dict[str, str]:
    """The installed distributions the hooks import (``import transformers`` in a hook puts
    transformers in the image, even when the model does not need it), pinned exactly."""
    if not source:
        return {}
    from mlpack.bundle.hooks import imported_modules

    dists, orphans = distributions_for_modules(imported_modules(source))
    if orphans:
        raise CaptureError(
            f"the hooks import {', '.join(orphans)}, which no installed distribution provides, "
            "so the serving image could not import them",
            hint="install it as a package (pip install -e .) or import only installed packages in the hooks",
            modules=orphans,
        )
    return dists


_SPEC = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:==\s*([A-Za-z0-9.+!_-]+))?\s*$")


def requested(requirements: Iterable[str] | str | None) -> dict[str, str]:
    """The user's own additions, pinned: ``name==version`` as given, a bare ``name`` at the
    version installed here. ``requirements`` is a list of such specs or the path of a
    requirements file (comments and blank lines skipped; pip options refused)."""
    if requirements is None:
        return {}
    if isinstance(requirements, (str, bytes)) or hasattr(requirements, "__fspath__"):
        from pathlib import Path

        path = Path(requirements)  # type: ignore[arg-type]
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise CaptureError(f"cannot read the requirements file {path}: {exc.strerror or exc}",
                               hint="pass a list of 'name==version' specs or an existing file") from None
    else:
        lines = [str(r) for r in requirements]
    pins: dict[str, str] = {}
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _SPEC.match(line)
        if match is None:
            raise CaptureError(f"requirement {raw.strip()!r} is not 'name' or 'name==version'",
                               hint="pin exact versions (the image must be reproducible); pip options, "
                                    "ranges and URLs are not accepted")
        name, version = match.group(1), match.group(2)
        if version is None:
            version = _version(name)
            if version is None:
                raise CaptureError(f"requirement {name!r} is not installed here, so its version is unknown",
                                   hint=f"pin it ({name}==VERSION) or pip install {name} first; "
                                        "check the spelling of the package name")
        pins[_project_name(name) if _version(name) else name] = version
    return pins


def requirement_specs(specs: Iterable[str] = (), path: str | None = None) -> tuple[str, ...] | None:
    """``--pip SPEC`` (repeatable) and ``--requirements FILE`` as one tuple of specs (None when neither)."""
    if not specs and not path:
        return None
    lines = list(specs)
    if path:
        from pathlib import Path

        try:
            lines += Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise CaptureError(f"cannot read the requirements file {path}: {exc.strerror or exc}",
                               hint="pass a readable file of 'name==version' lines") from None
    return tuple(lines)


def lock_for(groups: list[tuple[str, dict[str, str]]]) -> tuple[dict[str, str], dict[str, str]]:
    """The pinned lock and why each package is in it, from ``(reason, {name: version})``
    groups in priority order (a later group never re-pins an earlier group's package, except
    the user's own requests, which win)."""
    roots: dict[str, str] = {}
    why: dict[str, str] = {}
    for reason, dists in groups:
        for name, version in dists.items():
            key = next((k for k in roots if _canonical(k) == _canonical(name)), None)
            if key is not None and reason != "requested":
                continue
            if key is not None:
                del roots[key]
            roots[name] = version
            why[_canonical(name)] = reason
    return pinned_closure(roots, why), why


def local_source(name: str) -> str | None:
    """The local path a distribution was installed from (``pip install -e .``, ``pip install
    ./dir`` or a local wheel), read from its PEP 610 ``direct_url.json``; None for an index."""
    import json
    from urllib.parse import unquote, urlparse

    try:
        text = metadata.distribution(name).read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    if not text:
        return None
    try:
        url = str(json.loads(text).get("url", ""))
    except ValueError:
        return None
    return unquote(urlparse(url).path) if url.startswith("file://") else None


def build_local_wheels(pins: dict[str, str], out_dir: "Path") -> list[str]:
    """Build a wheel for each pinned distribution that no index has (installed from a local
    path) into ``out_dir``, so the image installs it from the build context; the file names."""
    import shutil
    import subprocess
    from pathlib import Path

    built: list[str] = []
    for name, version in sorted(pins.items()):
        source = local_source(name)
        if source is None:
            continue
        path = Path(source)
        before = set(Path(out_dir).glob("*.whl"))
        if path.is_file() and path.suffix == ".whl":
            shutil.copyfile(path, Path(out_dir) / path.name)
        elif path.is_dir():
            cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                   "-w", str(out_dir), str(path)]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise CaptureError(f"building a wheel of the local package {name} ({path}) failed: {exc}",
                                   hint="check that `pip wheel` works for it") from None
            if proc.returncode != 0:
                tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
                raise CaptureError(
                    f"the local package {name}=={version} at {path} does not build into a wheel:\n{tail}",
                    hint=f"fix its build (pip wheel {path} must work), or publish it to an index",
                    package=name)
        else:
            raise CaptureError(f"the local package {name}=={version} was installed from {path}, which is gone",
                               hint="reinstall it (pip install -e PATH) or publish it to an index",
                               package=name)
        new = sorted(p.name for p in set(Path(out_dir).glob("*.whl")) - before)
        if not new:
            raise CaptureError(f"pip wheel wrote no wheel for the local package {name} ({path})",
                               hint="check that `pip wheel` works for it", package=name)
        built.extend(new)
    return built
