"""Checks of a store: every blob re-hashed, every reference followed (go-containerregistry's validate).

Read-only and lock-free: :func:`verify` takes a store and never changes it; a
concurrent writer can make it report garbage (a blob not tagged yet), never a
problem. The store's modules never import this one.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlpack.errors import StoreError
from mlpack.oci.blobs import TMP_PREFIX
from mlpack.oci.cas import BlobStore
from mlpack.oci.gc import reachable
from mlpack.oci.media import INDEX_TYPES, MANIFEST_TYPES, digest_hex

__all__ = ["VerifyReport", "verify"]

_CHUNK = 1 << 20


@dataclass
class VerifyReport:
    """What :func:`verify` found; ``ok`` when ``problems`` is empty."""

    checked: int = 0
    problems: list[str] = field(default_factory=list)
    garbage: list[str] = field(default_factory=list)  # leftover temp files, unreferenced blobs

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(store: BlobStore) -> VerifyReport:
    """Re-hash every blob of ``store`` and check every reference resolves; never changes the store."""
    report = VerifyReport()
    if not (store.root / "oci-layout").exists():
        if store.root.exists() and any(store.root.iterdir()):
            report.problems.append("oci-layout is missing")
        return report
    try:
        layout = json.loads((store.root / "oci-layout").read_bytes())
        if layout.get("imageLayoutVersion") != "1.0.0":
            report.problems.append(f"oci-layout has version {layout.get('imageLayoutVersion')!r}")
    except ValueError:
        report.problems.append("oci-layout is not JSON")
    try:
        index = store.index()
    except StoreError as exc:
        report.problems.append(exc.message)
        return report
    blobs = store.root / "blobs" / "sha256"
    present = set()
    for entry in os.scandir(blobs):
        if entry.name.startswith(TMP_PREFIX):
            report.garbage.append(entry.path)
            continue
        present.add(entry.name)
        h = hashlib.sha256()
        with open(entry.path, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        report.checked += 1
        if h.hexdigest() != entry.name:
            report.problems.append(f"blob {entry.name} hashes to sha256:{h.hexdigest()}")
    for e in index["manifests"]:
        _verify_tree(store, e, present, report, set())
    referenced = {digest_hex(d) for d in reachable(store)}
    report.garbage.extend(str(blobs / n) for n in sorted(present - referenced))
    return report


def _verify_tree(store: BlobStore, desc: Mapping[str, Any], present: set[str], report: VerifyReport, seen: set[str]) -> None:
    digest = desc.get("digest", "")
    try:
        hexd = digest_hex(digest)
    except ValueError:
        report.problems.append(f"bad digest {digest!r} in a descriptor")
        return
    if hexd in seen:
        return
    seen.add(hexd)
    if hexd not in present:
        report.problems.append(f"missing blob {digest}")
        return
    if "size" in desc and (store.root / "blobs" / "sha256" / hexd).stat().st_size != desc["size"]:
        report.problems.append(f"blob {digest} size differs from its descriptor")
    mt = desc.get("mediaType", "")
    if mt in MANIFEST_TYPES or mt in INDEX_TYPES:
        try:
            m = json.loads((store.root / "blobs" / "sha256" / hexd).read_bytes())
        except ValueError:
            report.problems.append(f"manifest {digest} is not JSON")
            return
        children = ([m["config"]] + m.get("layers", [])) if "config" in m else m.get("manifests", [])
        for child in children:
            _verify_tree(store, child, present, report, seen)
