"""Media types, digests and small JSON helpers shared by the oci modules."""

from __future__ import annotations

import json
import sys

from mlpack.reference import is_digest

TYPE_CHECKING = False  # typing is the type checker's: a CLI start (mlpack run) does not import it
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

__all__ = [
    "OCI_INDEX", "OCI_MANIFEST", "OCI_CONFIG", "OCI_LAYER_GZIP", "OCI_LAYER_TAR", "OCI_LAYER_ZSTD",
    "DOCKER_MANIFEST_LIST", "DOCKER_MANIFEST", "DOCKER_CONFIG", "DOCKER_LAYER_GZIP",
    "INDEX_TYPES", "MANIFEST_TYPES", "ACCEPT_MANIFESTS", "REF_NAME",
    "sha256_digest", "check_digest", "digest_hex", "canonical_json",
]

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
ACCEPT_MANIFESTS = ", ".join(MANIFEST_TYPES + INDEX_TYPES)
REF_NAME = "org.opencontainers.image.ref.name"


# A blob up to this size (a manifest, a config) is hashed by CPython's own sha256: `mlpack run`
# verifies two or three of them, and loading OpenSSL's (hashlib) takes ~2 ms, more than hashing
# them does; past it OpenSSL's, ~5 times as fast, pays for its loading.
_SMALL_BLOB = 64 << 10


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    if len(data) <= _SMALL_BLOB:
        try:
            if sys.version_info >= (3, 12):
                from _sha2 import sha256
            else:
                from _sha256 import sha256
        except ImportError:  # an interpreter built without its own hashes: OpenSSL's
            from hashlib import sha256
    else:
        from hashlib import sha256
    return "sha256:" + sha256(data).hexdigest()


def check_digest(digest: str) -> str:
    """Return ``digest`` if it is a well-formed sha256 digest, else raise ValueError.

    Every digest that becomes a file name goes through here, so a hostile
    manifest cannot name ``../../etc/passwd`` as a blob.
    """
    if not isinstance(digest, str) or not is_digest(digest):
        raise ValueError(f"not a sha256 digest: {digest!r}")
    return digest


def digest_hex(digest: str) -> str:
    """The hex part of a checked sha256 digest."""
    return check_digest(digest).split(":", 1)[1]


def canonical_json(obj: Any) -> bytes:
    """Deterministic JSON bytes (sorted keys, compact): the same object hashes the same."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# Caps on the JSON documents of an image, on every way in (pull, load). A real
# config is a few KiB (a large Env or history: tens of KiB); one of hundreds
# of MB made every `mlpack images` hold it in memory, and crun spin on it.
MAX_MANIFEST_BYTES = 4 << 20
MAX_CONFIG_BYTES = 8 << 20


def oversized_config(manifest: dict[str, Any]) -> str | None:
    """Why ``manifest``'s config descriptor is refused (its announced size), or None."""
    size = (manifest.get("config") or {}).get("size")
    if not isinstance(size, int) or size < 0:
        return f"the image config descriptor has no valid size ({size!r})"
    if size > MAX_CONFIG_BYTES:
        return f"the image config is {size} bytes, more than the cap of {MAX_CONFIG_BYTES}"
    return None
