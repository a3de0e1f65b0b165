"""The build cache: step key -> the layer that step produced.

Keys chain: each filesystem step's key hashes its parent's key with what the
step consumes (see FACTS.md "Cache keys"), so the first miss invalidates
everything after it. Records live under ``Settings.cache_dir/build/steps``
as one small JSON file each (written atomically); a record whose blob left
the store is a miss. Secret values never enter a key.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from mlpack.oci.blobs import replace_text
from mlpack.oci.image import Layer
from mlpack.oci.layout import Store
from mlpack.values import dataclass

TYPE_CHECKING = False  # typing is the type checker's: a CLI rebuild does not import it
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

__all__ = ["StepCache", "StepRecord", "chain_key", "VIRTUAL", "virtual_layer", "is_virtual"]

# A RUN layer of a stage that is not the target is kept only as its overlay
# upper directory ("virtual"): no tar, no gzip, no blob. It becomes a real
# layer only if it ends up in the built image (see Executor._materialize).
VIRTUAL = "application/vnd.mlpack.virtual-layer"


def virtual_layer(key: str) -> Layer:
    ident = "virtual:" + key.split(":", 1)[1]
    return Layer(ident, 0, ident, VIRTUAL)


def is_virtual(layer: Layer) -> bool:
    return layer.media_type == VIRTUAL


def chain_key(parent: str, *parts: Any) -> str:
    """sha256 over the parent key and the JSON of ``parts`` (stable, sorted keys)."""
    payload = json.dumps([parent, *parts], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(payload.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True)
class StepRecord:
    """What a cached step produced: a layer, or nothing (``layer`` None)."""

    layer: Layer | None
    created_by: str = ""


class StepCache:
    """Step records in ``root``; lookups verify the layer blob still exists."""

    def __init__(self, root: Path, store: Store, virtual_root: Path) -> None:
        self.root = root
        self.store = store
        self.virtual_root = virtual_root

    def _path(self, key: str) -> Path:
        hexpart = key.split(":", 1)[1]
        return self.root / hexpart[:2] / f"{hexpart}.json"

    def get(self, key: str) -> StepRecord | None:
        try:
            data = json.loads(self._path(key).read_text())
        except (OSError, ValueError):
            return None
        layer = data.get("layer")
        if layer is None:
            return StepRecord(None, data.get("created_by", ""))
        try:
            rec = Layer(layer["digest"], int(layer["size"]), layer["diff_id"], layer["media_type"])
        except (KeyError, TypeError, ValueError):
            return None
        if is_virtual(rec):
            if not (self.virtual_root / rec.digest.split(":", 1)[1]).is_dir():
                return None
        elif not self.store.has_blob(rec.digest):
            return None
        return StepRecord(rec, data.get("created_by", ""))

    def put(self, key: str, record: StepRecord) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        layer = record.layer
        data = {
            "layer": None if layer is None else {
                "digest": layer.digest, "size": layer.size, "diff_id": layer.diff_id, "media_type": layer.media_type,
            },
            "created_by": record.created_by,
        }
        replace_text(path, json.dumps(data))  # dumps: C encoder (dump to a file encodes in Python)
