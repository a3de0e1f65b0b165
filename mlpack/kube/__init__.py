"""Export: an image and the one Limits value as Kubernetes manifests.

Depends only on plain values (mlpack.errors, mlpack.types): the front doors
resolve images in the store or a registry and pass an :class:`ImageInfo`.
"""

from mlpack.kube.export import check_export, export_k8s
from mlpack.kube.values import (
    LABEL_SHUTDOWN_GRACE,
    LABEL_START_SECONDS,
    ExportOptions,
    ExportResult,
    ImageInfo,
)

__all__ = [
    "export_k8s",
    "check_export",
    "ExportOptions",
    "ExportResult",
    "ImageInfo",
    "LABEL_START_SECONDS",
    "LABEL_SHUTDOWN_GRACE",
]
