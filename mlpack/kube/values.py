"""The plain values the export works from: what the image is, what to write.

mlpack.kube never looks into the image store: the front door (mlpack.api,
mlpack.pipeline.export) resolves the image and hands over an :class:`ImageInfo`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlpack.errors import ExportError
from mlpack.kube.naming import parse_reference
from mlpack.reference import Reference
from mlpack.types import DEFAULT_PORT

__all__ = [
    "ImageInfo",
    "ExportOptions",
    "ExportResult",
    "LABEL_START_SECONDS",
    "LABEL_SHUTDOWN_GRACE",
    "DEFAULT_PORT",
    "DEFAULT_SHUTDOWN_GRACE",
]

# Image labels the export reads when ImageInfo leaves the value out: the
# builder or a benchmark may record them, so a later export needs no flags.
LABEL_START_SECONDS = "dev.mlpack.start-seconds"
LABEL_SHUTDOWN_GRACE = "dev.mlpack.shutdown-grace-seconds"
# mlpack-serve's default graceful_timeout_s (mlpack.server.config), used when
# neither ImageInfo nor an image label says otherwise.
DEFAULT_SHUTDOWN_GRACE = 20


@dataclass(frozen=True)
class ImageInfo:
    """What the export needs to know about one image, as plain values.

    ``reference`` is where the cluster pulls from (``repo[:tag][@digest]``), a
    :class:`~mlpack.reference.Reference`; text is parsed once, here (ExportError when bad);
    ``digest`` the manifest digest (``sha256:...``) when known, which the
    manifests then use instead of the mutable tag. ``user_uid``/``user_gid``
    come from the image config's ``User`` when numeric; ``port`` from its
    ``ExposedPorts``; ``start_seconds`` is the measured time from start to
    ready; ``stop_grace_seconds`` how long the server drains on SIGTERM.
    """

    reference: Reference
    digest: str | None = None
    user_uid: int | None = None
    user_gid: int | None = None
    port: int = DEFAULT_PORT
    grpc_port: int | None = None  # the gRPC inference service's port (MLPACK_GRPC_PORT), None: none
    labels: dict[str, str] = field(default_factory=dict)
    start_seconds: float | None = None
    stop_grace_seconds: int | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.reference, Reference):
            object.__setattr__(self, "reference", parse_reference(self.reference))

    def label_number(self, key: str) -> float | None:
        """A numeric image label, or None when absent or not a number."""
        raw = (self.labels or {}).get(key)
        try:
            value = float(raw) if raw is not None else None
        except ValueError:
            return None
        return value if value is not None and value >= 0 else None


@dataclass(frozen=True)
class ExportOptions:
    """How to write the manifests (every field has a safe default).

    ``replicas`` is the floor the autoscaler keeps (``min_replicas`` when
    that is not given); ``max_replicas`` defaults to four times it. With
    ``max_replicas == min_replicas`` no HorizontalPodAutoscaler is written
    and the Deployment carries ``replicas`` itself. ``allow_tag`` accepts an
    image known only by a mutable tag (pulled with ``imagePullPolicy:
    Always``); without it such an image is an error, because a tag can
    change under a running Deployment. ``registry`` is where the cluster
    pulls from when that is not the image's own reference: a host
    (``registry.example.com:5000``, the image's path is kept) or a full
    repository (``registry.example.com/team/model``). ``run_as_user`` overrides the uid
    (needed when the image's ``User`` is a name rather than a number).
    """

    name: str | None = None
    namespace: str | None = None
    replicas: int = 2
    min_replicas: int | None = None
    max_replicas: int | None = None
    target_cpu: int = 70
    kserve: bool = False
    kserve_mode: str = "RawDeployment"
    allow_tag: bool = False
    registry: str | None = None
    run_as_user: int | None = None
    tmp_size: str = "256Mi"
    startup_factor: float = 3.0
    startup_min_seconds: int = 30
    service_type: str = "ClusterIP"

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ExportError(f"replicas must be at least 1, got {self.replicas}")
        low = self.floor
        if low < 1:
            raise ExportError(f"min replicas must be at least 1, got {low}")
        if self.ceiling < low:
            raise ExportError(
                f"max replicas ({self.ceiling}) is below min replicas ({low})",
                hint="give --max-replicas at least as large as --min-replicas",
            )
        if not 1 <= self.target_cpu <= 1000:
            raise ExportError(
                f"target CPU utilisation {self.target_cpu}% is out of range",
                hint="use a percentage of the CPU request, typically 50 to 80",
            )
        if self.kserve_mode not in ("RawDeployment", "Serverless"):
            raise ExportError(
                f"unknown KServe deployment mode {self.kserve_mode!r}",
                hint="use RawDeployment or Serverless",
            )
        if self.service_type not in ("ClusterIP", "NodePort", "LoadBalancer"):
            raise ExportError(f"unknown Service type {self.service_type!r}")
        if self.run_as_user is not None and self.run_as_user < 1:
            raise ExportError(
                f"run_as_user must be a non-root uid (1 or more), got {self.run_as_user}"
            )

    @property
    def floor(self) -> int:
        return self.min_replicas if self.min_replicas is not None else self.replicas

    @property
    def ceiling(self) -> int:
        return self.max_replicas if self.max_replicas is not None else 4 * self.floor

    @property
    def autoscaled(self) -> bool:
        return self.ceiling > self.floor


@dataclass(frozen=True)
class ExportResult:
    """What was written: the directory, its files, the objects and the image line."""

    out_dir: Path
    files: tuple[Path, ...]
    objects: tuple[dict[str, Any], ...]
    image: str
    name: str
    notes: tuple[str, ...] = ()
