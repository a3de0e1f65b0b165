"""Media types, digests and small JSON helpers shared by the oci modules."""

from __future__ import annotations

import hashlib
import json
import re
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

_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_digest(digest: str) -> str:
    """Return ``digest`` if it is a well-formed sha256 digest, else raise ValueError.

    Every digest that becomes a file name goes through here, so a hostile
    manifest cannot name ``../../etc/passwd`` as a blob.
    """
    if not isinstance(digest, str) or not _DIGEST_RE.match(digest):
        raise ValueError(f"not a sha256 digest: {digest!r}")
    return digest


def digest_hex(digest: str) -> str:
    """The hex part of a checked sha256 digest."""
    return check_digest(digest).split(":", 1)[1]


def canonical_json(obj: Any) -> bytes:
    """Deterministic JSON bytes (sorted keys, compact): the same object hashes the same."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
