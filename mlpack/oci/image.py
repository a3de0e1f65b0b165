"""The values the store hands out: a stored layer, a resolved image, a listing row."""

from __future__ import annotations


from mlpack.oci.config import ImageConfig
from mlpack.oci.media import OCI_LAYER_GZIP, OCI_MANIFEST
from mlpack.values import dataclass

TYPE_CHECKING = False  # typing is the type checker's: a CLI start (mlpack run) does not import it
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

__all__ = ["Layer", "Image", "ImageSummary"]


@dataclass(frozen=True)
class Layer:
    """A layer blob in the store: what put_image needs to describe it."""

    digest: str
    size: int
    diff_id: str
    media_type: str = OCI_LAYER_GZIP

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True)
class Image:
    """One image manifest resolved from the store (or a registry); its config parsed once."""

    digest: str                      # manifest digest
    manifest: dict[str, Any]
    config: ImageConfig              # .blob: the config document as stored
    layers: list[dict[str, Any]]     # layer descriptors, base first
    diff_ids: list[str]
    ref: str | None = None
    media_type: str = OCI_MANIFEST
    size: int = 0                    # manifest + config + layers, bytes

    @property
    def id(self) -> str:
        """The image id (docker's): the config digest."""
        return self.manifest["config"]["digest"]

    @property
    def config_descriptor(self) -> dict[str, Any]:
        return self.manifest["config"]


@dataclass(frozen=True)
class ImageSummary:
    ref: str | None
    digest: str
    id: str
    size: int
    created: str | None
