"""The one error tree of mlpack.

Every error a user can meet derives from :class:`MlpackError`, one subclass
per pipeline stage, each message saying what went wrong and what to do::

    MlpackError
    ├── ConfigError          bad settings or option values (e.g. Limits)
    ├── CaptureError         capture: unsupported model, bad sample, parity
    │   └── BundleError      a bundle on disk is incomplete, tampered or too new
    ├── RenderError          render: bad options, missing templates
    ├── BuildError           build: Dockerfile syntax, failing RUN step
    ├── StoreError           local image store: corrupt blob, lock, layout
    │   └── ImageNotFound    a reference the store does not hold
    ├── UnpackError          a layer that would write outside its root, too big, …
    ├── RegistryError        pull / push: network, auth, protocol
    ├── RunError             run: runtime missing, limits, lifecycle
    │   └── ContainerNotFound
    ├── ServeError           the inference server or a Service
    └── ExportError          Kubernetes export

Errors carry their context as attributes (``hint``, and per class the
step, exit status or stderr), so front doors can show them without a
traceback.
"""

from __future__ import annotations

__all__ = [
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


class MlpackError(Exception):
    """Root of every error mlpack raises on purpose.

    ``hint`` is the "what to do next" sentence; ``stage`` names the pipeline
    stage so a notebook can say which one failed.
    """

    stage = "mlpack"

    def __init__(self, message: str, *, hint: str | None = None, **context: object) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.context = context
        for key, value in context.items():
            setattr(self, key, value)

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class ConfigError(MlpackError, ValueError):
    stage = "config"


class CaptureError(MlpackError):
    stage = "capture"


class BundleError(CaptureError):
    stage = "capture"


class RenderError(MlpackError):
    stage = "render"


class BuildError(MlpackError):
    """A build failed. ``step``, ``exit_code`` and ``output`` when a RUN failed."""

    stage = "build"


class StoreError(MlpackError):
    stage = "store"


class ImageNotFound(StoreError, LookupError):
    stage = "store"


class UnpackError(MlpackError):
    stage = "store"


class RegistryError(MlpackError):
    """A registry operation failed. ``registry`` and ``step`` say where."""

    stage = "registry"


class RunError(MlpackError):
    """Running a container failed. ``exit_code`` and ``stderr`` when known."""

    stage = "run"


class ContainerNotFound(RunError, LookupError):
    stage = "run"


class ServeError(MlpackError):
    stage = "serve"


class ExportError(MlpackError):
    stage = "export"
