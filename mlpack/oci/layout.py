"""The local image store: an OCI image layout, one :class:`Store` over the pieces that do the work.

Layout (what skopeo and umoci read and write too)::

    oci-layout            {"imageLayoutVersion": "1.0.0"}
    index.json            an image index; tags are org.opencontainers.image.ref.name
    blobs/sha256/<hex>    content-addressed blobs
    index.json.lock       mlpack's fcntl lock (other tools ignore it)

Each piece states its own atomicity contract:

* :mod:`mlpack.oci.cas`        blobs and index.json, the only code that writes
  (:mod:`mlpack.oci.blobs`: the atomic files under it);
* :mod:`mlpack.oci.refs`       names: normalisation, lookup, tag, untag;
* :mod:`mlpack.oci.platforms`  from a manifest or index to one platform's image;
* :mod:`mlpack.oci.gc`         reachability and garbage collection;
* :mod:`mlpack.oci.validate`   re-hash and walk everything; takes a store, never
  imported by the store.

:class:`Store` adds to :class:`~mlpack.oci.cas.BlobStore` what callers want in
one place: tags in normal form on every write, images put from a config and
layers, and the read side of :mod:`~mlpack.oci.refs` and :mod:`~mlpack.oci.gc`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mlpack.errors import StoreError
from mlpack.oci import gc as _gc
from mlpack.oci import refs as _refs
from mlpack.oci.cas import BlobStore
from mlpack.oci.config import complete_blob
from mlpack.oci.image import Image, ImageSummary, Layer
from mlpack.oci.media import OCI_CONFIG, OCI_MANIFEST, canonical_json
from mlpack.oci.platforms import DEFAULT_PLATFORM

TYPE_CHECKING = False  # typing is the type checker's: a CLI start (mlpack run) does not import it
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

__all__ = ["Store"]


class Store(BlobStore):
    """An OCI image layout at ``root``, created on first write."""

    def put_manifest(self, data: bytes, media_type: str = OCI_MANIFEST, *, ref: str | None = None,
                     platform: Mapping[str, str] | None = None) -> str:
        """Store manifest bytes as given and tag them ``ref`` (normalised); see :class:`BlobStore`."""
        return super().put_manifest(data, media_type, ref=_refs.ref_name(ref) if ref else None,
                                    platform=platform)

    def put_image(self, config: Mapping[str, Any], layers: Sequence[Layer | Mapping[str, Any]], *,
                  ref: str | None = None, annotations: Mapping[str, str] | None = None) -> str:
        """Write config + OCI manifest for ``layers`` (already stored), tag ``ref``; returns the manifest digest.

        If ``config`` has no ``rootfs`` it is filled from the layers' diff_ids.
        """
        descs = [l.descriptor() if isinstance(l, Layer) else dict(l) for l in layers]
        cfg, parsed = complete_blob(config, [l.diff_id if isinstance(l, Layer) else l.get("diff_id") for l in layers])
        for d in descs:
            d.pop("diff_id", None)
        if len(parsed.diff_ids) != len(descs):
            raise StoreError("config rootfs.diff_ids and layers differ in length")
        cfg_bytes = canonical_json(cfg)
        cfg_digest = self.put_blob(cfg_bytes)
        manifest: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": cfg_digest, "size": len(cfg_bytes)},
            "layers": descs,
        }
        if annotations:
            manifest["annotations"] = dict(annotations)
        return self.put_manifest(canonical_json(manifest), OCI_MANIFEST, ref=ref,
                                 platform=parsed.platform)

    def resolve(self, ref_or_digest: str, *, platform: tuple[str, str] = DEFAULT_PLATFORM) -> Image:
        """The image named by a tag, a full digest or a unique hex prefix of one; see :func:`refs.resolve`."""
        return _refs.resolve(self, ref_or_digest, platform=platform)

    def has(self, ref_or_digest: str, *, platform: tuple[str, str] | None = None) -> bool:
        """Whether :meth:`resolve` finds an image (of exactly ``platform``, when given)."""
        try:
            image = self.resolve(ref_or_digest, **({"platform": platform} if platform else {}))
        except LookupError:
            return False
        return platform is None or (image.config.os or "linux", image.config.architecture or "amd64") == platform

    def tag(self, source: str, ref: str) -> str:
        """Give the image ``source`` (a ref or digest) the name ``ref``; returns its digest."""
        return _refs.tag(self, source, ref)

    def delete(self, ref_or_digest: str) -> list[str]:
        """Remove a tag, or every entry of a digest; returns the removed names/digests (blobs stay)."""
        return _refs.delete(self, ref_or_digest)

    def list(self) -> list[ImageSummary]:
        """Every index entry, with its total size in bytes."""
        return _refs.list_images(self)

    def reachable(self) -> set[str]:
        """Digests of every blob the index references, directly or through manifests."""
        return _gc.reachable(self)

    def gc(self, *, grace_s: float = 300.0) -> tuple[int, int]:
        """Delete unreferenced blobs and stale temp files older than ``grace_s``; returns (count, bytes)."""
        return _gc.gc(self, grace_s=grace_s)
