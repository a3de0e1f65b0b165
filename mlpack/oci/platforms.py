"""Platform selection: from a manifest or image index in the store to one platform's :class:`Image`.

Read-only: nothing here takes the store's lock or writes. A blob that
vanishes under a concurrent gc shows as a :class:`~mlpack.errors.StoreError`
(or, with ``quiet=True``, as ``None``), never as a half-read image.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from mlpack.errors import ImageNotFound, StoreError
from mlpack.oci.cas import BlobStore
from mlpack.oci.config import ImageConfig
from mlpack.oci.image import Image
from mlpack.oci.media import INDEX_TYPES, OCI_MANIFEST

TYPE_CHECKING = False  # typing is the type checker's: a CLI start (mlpack run) does not import it
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

__all__ = ["DEFAULT_PLATFORM", "pick_platform", "load_image", "parse_platform", "host_platform",
           "platform_text", "platform_descriptor", "BUILDABLE"]

DEFAULT_PLATFORM = ("linux", "amd64")  # (os, architecture)
# The architectures mlpack builds images for, with the names Linux (uname -m) and pip use, and the
# OCI variant a registry lists them with.
BUILDABLE = {"amd64": ("x86_64", ""), "arm64": ("aarch64", "v8")}
_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def parse_platform(text: str) -> tuple[str, str]:
    """``linux/arm64`` (also ``linux/arm64/v8``, ``linux/aarch64``, ``arm64``) -> ``("linux", "arm64")``."""
    from mlpack.errors import MlpackError

    parts = [p.strip().lower() for p in str(text).strip().split("/")]
    if len(parts) == 1:
        parts = ["linux", *parts]
    os_name, arch = parts[0], _ALIASES.get(parts[1] if len(parts) > 1 else "")
    variant = parts[2] if len(parts) > 2 else ""
    if len(parts) > 3 or os_name != "linux" or arch is None or variant not in ("", BUILDABLE[arch][1]):
        raise MlpackError(f"platform {text!r} is not one mlpack builds for",
                          hint="use linux/amd64 or linux/arm64 (OS/ARCH[/VARIANT], as docker --platform takes it)")
    return os_name, arch


def host_platform() -> tuple[str, str]:
    """This machine's platform, e.g. ``("linux", "amd64")``."""
    import os

    return "linux", _ALIASES.get(os.uname().machine, os.uname().machine)


def platform_text(platform: tuple[str, str]) -> str:
    """``linux/arm64``."""
    return f"{platform[0]}/{platform[1]}"


def platform_descriptor(platform: tuple[str, str]) -> dict[str, str]:
    """An index entry's ``platform`` (with the variant registries list arm64 images under)."""
    variant = BUILDABLE.get(platform[1], ("", ""))[1]
    return {"architecture": platform[1], "os": platform[0], **({"variant": variant} if variant else {})}


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
