"""mlpack: from a notebook model to a running, limited, verified container.

The public surface is chosen here; stage packages are imported lazily so that
``import mlpack`` stays cheap and has no side effects.
"""

from __future__ import annotations


from mlpack.errors import (
    BuildError,
    BundleError,
    CaptureError,
    ConfigError,
    ContainerNotFound,
    ExportError,
    ImageNotFound,
    MlpackError,
    RegistryError,
    RenderError,
    RunError,
    ServeError,
    StoreError,
    UnpackError,
)
from mlpack._version import __version__
from mlpack.types import Limits

__all__ = [
    "__version__",
    "capture",
    "render",
    "build",
    "run",
    "serve",
    "push",
    "pull",
    "export_k8s",
    "services",
    "Service",
    "Bundle",
    "Limits",
    "MlpackError",
    "ConfigError",
    "CaptureError",
    "BundleError",
    "RenderError",
    "BuildError",
    "StoreError",
    "ImageNotFound",
    "UnpackError",
    "RegistryError",
    "RunError",
    "ContainerNotFound",
    "ServeError",
    "ExportError",
]

_LAZY = {
    "capture": "mlpack.api",
    "render": "mlpack.api",
    "build": "mlpack.api",
    "run": "mlpack.api",
    "serve": "mlpack.api",
    "push": "mlpack.api",
    "pull": "mlpack.api",
    "export_k8s": "mlpack.api",
    "services": "mlpack.service",
    "Service": "mlpack.service",
    "Bundle": "mlpack.bundle",
}

TYPE_CHECKING = False  # typing is the type checker's: a CLI start (mlpack run) does not import it
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

    from mlpack.api import build, capture, export_k8s, pull, push, render, run, serve
    from mlpack.bundle import Bundle
    from mlpack.service import Service, services


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mlpack' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext mlpack`` registers the ``%%containerize`` magics."""
    from mlpack.ipython import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from mlpack.ipython import unload_ipython_extension as _unload

    _unload(ipython)
