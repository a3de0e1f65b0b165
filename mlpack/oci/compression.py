"""Layer compression: gzip (the default: every tool reads it) or zstd (OCI's ``tar+zstd``).

``recompress(store, image, "zstd")`` returns the same image (same config, same
diff_ids, so the same running container) whose layer blobs are re-encoded, as
a new manifest in the store (tagged ``ref`` when given). The builder's step
cache and layer writers stay gzip, so one cached build serves both; zstd at a
fixed level with a fixed frame layout is reproducible, so recompressing twice
gives the same digests. Docker's media types have no zstd: a Docker manifest
asked for zstd is refused. Every re-encoded layer is checked against its
diff_id before the manifest names it.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
from typing import IO, Any

from mlpack.errors import StoreError
from mlpack.oci.image import Image
from mlpack.oci.layout import Store
from mlpack.oci.media import (DOCKER_LAYER_GZIP, DOCKER_MANIFEST, OCI_LAYER_GZIP, OCI_LAYER_ZSTD,
                              canonical_json)
from mlpack.oci.unpack import open_layer_stream

__all__ = ["COMPRESSIONS", "recompress", "compression_of", "zstd_writer"]

COMPRESSIONS = ("gzip", "zstd")
ZSTD_LEVEL = 3
GZIP_LEVEL = 6
_CHUNK = 1 << 20


def compression_of(media_type: str) -> str:
    """``gzip``, ``zstd`` or ``none`` for a layer media type."""
    if media_type in (OCI_LAYER_GZIP, DOCKER_LAYER_GZIP) or media_type.endswith("gzip"):
        return "gzip"
    if media_type.endswith("zstd"):
        return "zstd"
    return "none"


def check_compression(compression: str) -> str:
    if compression not in COMPRESSIONS:
        raise StoreError(f"unknown layer compression {compression!r}", hint=f"use one of {', '.join(COMPRESSIONS)}")
    return compression


def zstd_writer(out: IO[bytes]) -> Any:
    """A write-only zstd stream into ``out`` (level 3; needs the ``zstandard`` package)."""
    try:
        import zstandard
    except ImportError as exc:
        raise StoreError("zstd layers need the zstandard package",
                         hint="pip install zstandard (it is in mlpack's notebook extra)") from exc
    # threads=-1: one worker per core; zstd's output does not depend on the number of workers
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=-1).stream_writer(out, closefd=False)


def recompress(store: Store, image: Image, compression: str, *, ref: str | None = None) -> Image:
    """``image`` with every layer in ``compression`` (see the module docstring); keeps ``image.ref``
    in the returned value when ``ref`` is not given."""
    check_compression(compression)
    if compression == "zstd" and image.media_type == DOCKER_MANIFEST:
        raise StoreError(f"{image.ref or image.digest} has a Docker manifest, whose layer types have no zstd",
                         hint="use --compression gzip for Docker-format images")
    layers = [desc if compression_of(desc.get("mediaType", "")) == compression
              else _reencode(store, desc, diff_id, compression, docker=image.media_type == DOCKER_MANIFEST)
              for desc, diff_id in zip(image.layers, image.diff_ids)]
    if layers == image.layers:
        if ref:
            store.tag(image.digest, ref)
            return store.resolve(ref)
        return image
    manifest = dict(image.manifest, layers=layers)
    platform = image.config.platform
    digest = store.put_manifest(canonical_json(manifest), image.media_type, ref=ref, platform=platform)
    return dataclasses.replace(store.resolve(ref or digest), ref=ref or image.ref)


def _reencode(store: Store, desc: dict[str, Any], diff_id: str, compression: str, *, docker: bool) -> dict[str, Any]:
    hasher = hashlib.sha256()
    with store.open_blob(desc["digest"]) as raw, store.blob_writer() as blob:
        stream = open_layer_stream(raw)
        if compression == "zstd":
            sink, media = zstd_writer(blob), OCI_LAYER_ZSTD  # type: ignore[arg-type]
        else:
            sink = gzip.GzipFile(filename="", mode="wb", fileobj=blob, compresslevel=GZIP_LEVEL, mtime=0)  # type: ignore[arg-type]
            media = DOCKER_LAYER_GZIP if docker else OCI_LAYER_GZIP
        with sink:
            while chunk := stream.read(_CHUNK):
                hasher.update(chunk)
                sink.write(chunk)
        got = "sha256:" + hasher.hexdigest()
        if got != diff_id:
            raise StoreError(f"layer {desc['digest']} does not uncompress to its diff_id {diff_id} (got {got})",
                             hint="the store is damaged: mlpack system verify, then pull or build the image again")
        digest = blob.commit()
        out = {"mediaType": media, "digest": digest, "size": blob.size}
    if desc.get("annotations"):
        out["annotations"] = desc["annotations"]
    return out


