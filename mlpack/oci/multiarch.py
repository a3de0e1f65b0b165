"""One tag for several platforms: ``add_platform`` puts an image into the image index a tag names.

``add_platform(store, ref, digest)`` tags ``digest`` as ``ref`` when it is
an image of this machine's platform and ``ref`` names nothing else, and
otherwise writes an OCI image index holding one manifest per platform (the
new one replacing any of its platform), so ``Store.resolve(ref,
platform=...)`` picks the image for a platform as ``docker --platform``
picks from a multi-platform tag, and an arm64-only tag is never taken for
this machine's image (an index without it says so).
"""

from __future__ import annotations

import json
from typing import Any

from mlpack.oci.layout import Store
from mlpack.oci.media import INDEX_TYPES, OCI_INDEX, OCI_MANIFEST, canonical_json
from mlpack.oci.platforms import host_platform, platform_descriptor
from mlpack.oci.refs import candidate_names, ref_of

__all__ = ["add_platform", "platform_entries"]


def _platform_of(store: Store, desc: dict[str, Any]) -> dict[str, str]:
    if desc.get("platform"):
        return dict(desc["platform"])
    manifest = json.loads(store.read_blob(desc["digest"]))
    config = store.read_json(manifest["config"]["digest"])
    return platform_descriptor((config.get("os", "linux"), config.get("architecture", "amd64")))


def platform_entries(store: Store, ref: str) -> list[dict[str, Any]]:
    """The per-platform manifest descriptors ``ref`` names now (none when it names nothing)."""
    entries = store.index()["manifests"] if (store.root / "index.json").exists() else []
    entry_digest = next((e["digest"] for name in candidate_names(ref) for e in entries if ref_of(e) == name), None)
    if entry_digest is None:
        return []
    data = json.loads(store.read_blob(entry_digest))
    if data.get("mediaType") in INDEX_TYPES or "manifests" in data:
        return [{**d, "platform": _platform_of(store, d)} for d in data.get("manifests", [])]
    desc = {"mediaType": data.get("mediaType") or OCI_MANIFEST, "digest": entry_digest,
            "size": len(store.read_blob(entry_digest))}
    return [{**desc, "platform": _platform_of(store, desc)}]


def add_platform(store: Store, ref: str, digest: str) -> str:
    """Make ``ref`` name ``digest`` for its platform and keep the other platforms ``ref`` had;
    returns the digest ``ref`` now names (the manifest's, or the index's)."""
    new = {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(store.read_blob(digest))}
    new["platform"] = _platform_of(store, new)
    key = (new["platform"]["os"], new["platform"]["architecture"])
    others = [d for d in platform_entries(store, ref)
              if (d["platform"].get("os"), d["platform"].get("architecture")) != key]
    if not others and key == host_platform():
        tagged = store.put_manifest(store.read_blob(digest), OCI_MANIFEST, ref=ref, platform=new["platform"])
    else:
        order = sorted([*others, new], key=lambda d: (d["platform"]["os"], d["platform"]["architecture"]))
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": order}
        tagged = store.put_manifest(canonical_json(index), OCI_INDEX, ref=ref)

    def drop_untagged(index: dict[str, Any]) -> None:  # the tag holds the image now
        index["manifests"][:] = [e for e in index["manifests"] if e.get("annotations") or e["digest"] != digest]
    store.update_index(drop_untagged)
    return tagged
