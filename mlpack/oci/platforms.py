"""Platform selection: from a manifest or image index in the store to one platform's :class:`Image`.

Read-only: nothing here takes the store's lock or writes. A blob that
vanishes under a concurrent gc shows as a :class:`~mlpack.errors.StoreError`
(or, with ``quiet=True``, as ``None``), never as a half-read image.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from mlpack.errors import ImageNotFound, StoreError
from mlpack.oci.cas import BlobStore
from mlpack.oci.config import ImageConfig
from mlpack.oci.image import Image
from mlpack.oci.media import INDEX_TYPES, OCI_MANIFEST

__all__ = ["DEFAULT_PLATFORM", "pick_platform", "load_image"]

DEFAULT_PLATFORM = ("linux", "amd64")  # (os, architecture)


def pick_platform(manifests: Sequence[Mapping[str, Any]], platform: tuple[str, str]) -> Mapping[str, Any] | None:
    """The entry of an index for ``(os, architecture)``; a lone entry without platform also fits."""
    want_os, want_arch = platform
    for m in manifests:
        p = m.get("platform") or {}
        if p.get("os") == want_os and p.get("architecture") == want_arch:
            return m
    bare = [m for m in manifests if not m.get("platform")]
    return bare[0] if len(bare) == 1 and len(manifests) == 1 else None


def load_image(store: BlobStore, digest: str, ref: str | None, media_type: str | None,
               platform: tuple[str, str] = DEFAULT_PLATFORM, *, quiet: bool = False) -> Image | None:
    """The image of manifest ``digest`` (an index is followed to its ``platform`` entry).

    ``None`` only with ``quiet`` when a blob is missing or malformed; raises otherwise.
    """
    try:
        data = store.read_blob(digest)
        manifest = json.loads(data)
        media_type = manifest.get("mediaType") or media_type or OCI_MANIFEST
        if media_type in INDEX_TYPES or "manifests" in manifest:
            child = pick_platform(manifest.get("manifests", []), platform)
            if child is None:
                raise ImageNotFound(f"image index {digest} has no {platform[0]}/{platform[1]} image",
                                    hint="pull or load an image built for this platform")
            return load_image(store, child["digest"], ref, child.get("mediaType"), platform)
        config = ImageConfig.from_blob(store.read_json(manifest["config"]["digest"]))
    except (StoreError, KeyError, ValueError):
        if quiet:
            return None
        raise
    layers = list(manifest.get("layers", []))
    size = len(data) + manifest["config"]["size"] + sum(int(l["size"]) for l in layers)
    diff_ids = list(config.diff_ids)
    return Image(digest, manifest, config, layers, diff_ids, ref, media_type, size)
