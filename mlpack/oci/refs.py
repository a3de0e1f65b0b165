"""References and tags of the store: name normalisation, lookup, tagging and untagging.

A tag is an index entry's ``org.opencontainers.image.ref.name``, always in
the normal form of :func:`ref_name` (``docker.io/library/x:latest``).
Lookups read ``index.json`` without the lock (it is only ever replaced by
rename); :func:`tag` and :func:`delete` change it only through
:meth:`BlobStore.update_index <mlpack.oci.cas.BlobStore.update_index>`, so
each is one atomic replacement and never removes a blob (gc does, later).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from mlpack.errors import ImageNotFound, StoreError
from mlpack import reference as _reference
from mlpack.oci.cas import BlobStore
from mlpack.oci.image import Image, ImageSummary
from mlpack.oci.media import OCI_MANIFEST, REF_NAME, digest_hex
from mlpack.oci.platforms import DEFAULT_PLATFORM, load_image

TYPE_CHECKING = False  # typing is the type checker's: a CLI start (mlpack run) does not import it
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

__all__ = ["ref_name", "ref_of", "looks_like_digest", "candidate_names", "resolve", "tag", "delete",
           "list_images"]


def ref_name(ref: str) -> str:
    """The normal form a tag is stored under."""
    return str(_reference.parse(ref))


def ref_of(entry: Mapping[str, Any]) -> str | None:
    """The name of an index entry, if it has one."""
    return (entry.get("annotations") or {}).get(REF_NAME)


def looks_like_digest(text: str) -> bool:
    """A full ``sha256:`` digest, or a hex prefix of one (6+ characters, with a digit)."""
    hexpart = text.removeprefix("sha256:")
    return (text.startswith("sha256:") and len(hexpart) == 64) or (
        6 <= len(hexpart) <= 64 and all(c in "0123456789abcdef" for c in hexpart) and not text.startswith("sha256:")
        and any(c.isdigit() for c in hexpart))


def candidate_names(text: str) -> list[str]:
    """The stored names ``text`` may mean, most literal first."""
    names = [text]
    try:
        ref = _reference.parse(text)
    except Exception:  # noqa: BLE001 - a raw ref.name (e.g. "latest") still matches literally
        return names
    if ref.digest and not ref.tag:
        return names
    names.append(str(ref.with_tag(ref.tag or "latest")))
    if ref.registry == _reference.DOCKER_HUB and "." not in text.split("/")[0]:
        # podman's habit: an unqualified name may be a local image
        local = ref.repository.removeprefix("library/")
        names.append(f"{_reference.LOCAL_REGISTRY}/{local}:{ref.tag or 'latest'}")
    return names


def resolve(store: BlobStore, ref_or_digest: str, *, platform: tuple[str, str] = DEFAULT_PLATFORM) -> Image:
    """The image named by a tag, a full digest or a unique hex prefix of one (>= 6 chars)."""
    text = ref_or_digest.strip()
    entries = store.index()["manifests"]
    entry: dict[str, Any] | None = None
    if looks_like_digest(text):
        digest = text if text.startswith("sha256:") else None
        prefix = text.removeprefix("sha256:")
        if digest:
            entry = next((e for e in entries if e.get("digest") == digest), None)
            if entry is None and store.has_blob(digest):
                image = load_image(store, digest, None, None, platform)
                assert image is not None
                return image
        else:
            matches = {e["digest"]: e for e in entries if digest_hex(e["digest"]).startswith(prefix)}
            if not matches:
                for e in entries:  # docker ids are config digests
                    img = load_image(store, e["digest"], ref_of(e), e.get("mediaType"), platform, quiet=True)
                    if img is not None and digest_hex(img.id).startswith(prefix):
                        matches[e["digest"]] = e
            if len(matches) > 1:
                raise ImageNotFound(f"{text!r} matches {len(matches)} images",
                                    hint="give more characters of the digest")
            entry = next(iter(matches.values()), None)
    if entry is None:
        for name in candidate_names(text):
            entry = next((e for e in entries if ref_of(e) == name), None)
            if entry is not None:
                break
    if entry is None:
        raise ImageNotFound(f"image {text!r} is not in the store at {store.root}",
                            hint="see `mlpack images`; pull, load or build it first", ref=text)
    image = load_image(store, entry["digest"], ref_of(entry), entry.get("mediaType"), platform)
    assert image is not None
    return image


def tag(store: BlobStore, source: str, ref: str) -> str:
    """Give the image ``source`` (a ref or digest) the name ``ref``; returns its digest."""
    image = resolve(store, source)
    store.add_to_index(_descriptor_for(store, image.digest), ref_name(ref))
    return image.digest


def delete(store: BlobStore, ref_or_digest: str) -> list[str]:
    """Remove a tag, or every entry of a digest; returns the removed names/digests (blobs stay)."""
    image = resolve(store, ref_or_digest)
    by_digest = looks_like_digest(ref_or_digest)
    removed: list[str] = []

    def change(index: dict[str, Any]) -> None:
        keep = []
        for e in index["manifests"]:
            hit = (e.get("digest") == image.digest and (by_digest or image.ref is None)) or (
                image.ref is not None and not by_digest and ref_of(e) == image.ref)
            if hit:
                removed.append(ref_of(e) or e["digest"])
            else:
                keep.append(e)
        index["manifests"] = keep
    store.update_index(change)
    return removed


def list_images(store: BlobStore) -> list[ImageSummary]:
    """Every index entry, with its total size in bytes."""
    out = []
    for e in store.index()["manifests"]:
        img = load_image(store, e["digest"], ref_of(e), e.get("mediaType"), DEFAULT_PLATFORM, quiet=True)
        if img is None:  # an index without linux/amd64 (an arm64 base, say) is listed by its first platform
            img = _first_platform(store, e)
        if img is not None:
            out.append(ImageSummary(img.ref, img.digest, img.id, img.size, img.config.created))
    return out


def _first_platform(store: BlobStore, entry: Mapping[str, Any]) -> Image | None:
    try:
        children = json.loads(store.read_blob(entry["digest"])).get("manifests") or []
    except (StoreError, ValueError):
        return None
    for child in children:
        platform = child.get("platform") or {}
        if platform.get("os") and platform.get("architecture"):
            return load_image(store, entry["digest"], ref_of(entry), entry.get("mediaType"),
                              (platform["os"], platform["architecture"]), quiet=True)
    return None


def _descriptor_for(store: BlobStore, digest: str) -> dict[str, Any]:
    for e in store.index()["manifests"]:
        if e.get("digest") == digest:
            return {k: v for k, v in e.items() if k != "annotations"}
    data = store.read_blob(digest)
    mt = json.loads(data).get("mediaType", OCI_MANIFEST)
    return {"mediaType": mt, "digest": digest, "size": len(data)}
