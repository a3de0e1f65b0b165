"""The local image store: an OCI image layout directory.

Layout (what skopeo and umoci read and write too)::

    oci-layout            {"imageLayoutVersion": "1.0.0"}
    index.json            an image index; tags are org.opencontainers.image.ref.name
    blobs/sha256/<hex>    content-addressed blobs
    index.json.lock       mlpack's fcntl lock (other tools ignore it)

What is atomic and idempotent (the contract other stages rely on):

* a blob appears under its name only complete, fsynced and verified (written
  to ``blobs/sha256/.tmp-*`` and renamed); writing an existing blob again is
  a no-op; a crash leaves at most a ``.tmp-*`` file that :meth:`Store.gc`
  removes and :meth:`Store.verify` reports as garbage, never as corruption;
* ``index.json`` is replaced by rename under an exclusive ``flock``, and only
  after every blob it references exists, so readers never need the lock and
  never see a dangling reference;
* :meth:`Store.gc` runs under the same lock and spares unreferenced blobs
  younger than ``grace_s`` (a concurrent pull may not have tagged them yet).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from mlpack.errors import ImageNotFound, StoreError
from mlpack.oci import reference as _reference
from mlpack.oci.blobs import TMP_PREFIX, BlobWriter, atomic_write, fsync_dir
from mlpack.oci.media import (
    INDEX_TYPES, MANIFEST_TYPES, OCI_CONFIG, OCI_INDEX, OCI_LAYER_GZIP, OCI_MANIFEST, REF_NAME,
    canonical_json, check_digest, digest_hex,
)

if TYPE_CHECKING:  # pragma: no cover
    from mlpack.oci.validate import VerifyReport

__all__ = ["Store", "Image", "Layer", "ImageSummary", "BlobWriter", "fsync_dir", "pick_platform"]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Layer:
    """A layer blob in the store: what put_image needs to describe it."""

    digest: str
    size: int
    diff_id: str
    media_type: str = OCI_LAYER_GZIP

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True)
class Image:
    """One image manifest resolved from the store (or a registry)."""

    digest: str                      # manifest digest
    manifest: dict[str, Any]
    config: dict[str, Any]
    layers: list[dict[str, Any]]     # layer descriptors, base first
    diff_ids: list[str]
    ref: str | None = None
    media_type: str = OCI_MANIFEST
    size: int = 0                    # manifest + config + layers, bytes

    @property
    def id(self) -> str:
        """The image id (docker's): the config digest."""
        return self.manifest["config"]["digest"]

    @property
    def config_descriptor(self) -> dict[str, Any]:
        return self.manifest["config"]


@dataclass(frozen=True)
class ImageSummary:
    ref: str | None
    digest: str
    id: str
    size: int
    created: str | None


class Store:
    """An OCI image layout at ``root``, created on first write."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    # -- layout ------------------------------------------------------------------------
    def init(self) -> None:
        """Create the layout if missing (idempotent)."""
        blobs = self.root / "blobs" / "sha256"
        if (self.root / "oci-layout").exists() and blobs.is_dir():
            return
        blobs.mkdir(parents=True, exist_ok=True)
        with self._locked():
            if not (self.root / "oci-layout").exists():
                atomic_write(self.root / "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
            if not (self.root / "index.json").exists():
                atomic_write(self.root / "index.json", _index_bytes(_empty_index()))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / "index.json.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing drops the lock, also when the process dies

    # -- blobs -------------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        return self.root / "blobs" / "sha256" / digest_hex(digest)

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def blob_size(self, digest: str) -> int:
        return self.blob_path(digest).stat().st_size

    def blob_writer(self, expected_digest: str | None = None, expected_size: int | None = None,
                    max_size: int | None = None) -> BlobWriter:
        """A writer for one streamed blob: ``write()`` chunks, then ``commit()`` -> digest.

        With ``expected_digest``/``expected_size`` the content is checked
        before it gets its name; leaving the ``with`` block without commit
        removes the temp file.
        """
        return BlobWriter(self, expected_digest, expected_size, max_size)

    def put_blob(self, data: bytes, expected_digest: str | None = None) -> str:
        """Store ``data`` (verified against ``expected_digest`` if given); returns its digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if expected_digest and digest != check_digest(expected_digest):
            raise StoreError(f"blob content does not match its digest {expected_digest}",
                             hint="the source is corrupt", digest=expected_digest)
        if self.has_blob(digest):
            return digest
        with self.blob_writer(digest, len(data)) as w:
            w.write(data)
            return w.commit()

    def put_blob_stream(self, chunks: Iterable[bytes], expected_digest: str | None = None,
                        expected_size: int | None = None) -> str:
        """Store a stream of chunks; skipped when ``expected_digest`` is already present."""
        if expected_digest and self.has_blob(expected_digest):
            return expected_digest
        with self.blob_writer(expected_digest, expected_size) as w:
            for chunk in chunks:
                w.write(chunk)
            return w.commit()

    def open_blob(self, digest: str) -> IO[bytes]:
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            raise StoreError(f"blob {digest} is missing from the store at {self.root}",
                             hint="run `mlpack system verify`; pull or load the image again",
                             digest=digest) from None

    def read_blob(self, digest: str, *, verify: bool = True) -> bytes:
        with self.open_blob(digest) as f:
            data = f.read()
        if verify and "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise StoreError(f"blob {digest} in {self.root} does not match its name",
                             hint="the store is corrupt: run `mlpack system verify` and pull the image again",
                             digest=digest)
        return data

    def read_json(self, digest: str) -> dict[str, Any]:
        try:
            value = json.loads(self.read_blob(digest))
        except ValueError as exc:
            raise StoreError(f"blob {digest} is not JSON: {exc}", digest=digest) from None
        if not isinstance(value, dict):
            raise StoreError(f"blob {digest} is not a JSON object", digest=digest)
        return value

    # -- index -------------------------------------------------------------------------
    def index(self) -> dict[str, Any]:
        """The current index.json (an empty index when the store does not exist yet)."""
        try:
            data = (self.root / "index.json").read_bytes()
        except FileNotFoundError:
            return _empty_index()
        try:
            index = json.loads(data)
        except ValueError as exc:
            raise StoreError(f"{self.root}/index.json is not valid JSON: {exc}",
                             hint="restore it or remove the store directory") from None
        index.setdefault("manifests", [])
        return index

    def update_index(self, change: Callable[[dict[str, Any]], None]) -> None:
        """Apply ``change`` to index.json under the lock and replace it atomically."""
        self.init()
        with self._locked():
            index = self.index()
            change(index)
            atomic_write(self.root / "index.json", _index_bytes(index))

    def put_manifest(self, data: bytes, media_type: str = OCI_MANIFEST, *, ref: str | None = None,
                     platform: Mapping[str, str] | None = None) -> str:
        """Store manifest bytes as given and add them to the index (tagged ``ref``).

        Every blob the manifest references must already be in the store.
        """
        manifest = json.loads(data)
        if media_type in MANIFEST_TYPES:
            needed = [manifest["config"]] + list(manifest.get("layers", []))
        else:
            needed = list(manifest.get("manifests", []))
        self._check_blobs(needed)
        digest = self.put_blob(data)
        desc: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": len(data)}
        if platform:
            desc["platform"] = dict(platform)
        # checked again under the lock: a concurrent gc may have run since
        self._add_to_index(desc, self._ref_name(ref) if ref else None,
                           needs=[{"digest": digest}, *needed])
        return digest

    def _check_blobs(self, needed: Sequence[Mapping[str, Any]]) -> None:
        for desc in needed:
            if not self.has_blob(desc["digest"]):
                raise StoreError(f"manifest references blob {desc['digest']} which is not in the store",
                                 hint="store the config and layers before the manifest (or a concurrent "
                                      "`mlpack system prune` removed them: retry)")

    def put_image(self, config: Mapping[str, Any], layers: Sequence[Layer | Mapping[str, Any]], *,
                  ref: str | None = None, annotations: Mapping[str, str] | None = None) -> str:
        """Write config + OCI manifest for ``layers`` (already stored), tag ``ref``; returns the manifest digest.

        If ``config`` has no ``rootfs`` it is filled from the layers' diff_ids.
        """
        cfg = dict(config)
        descs = [l.descriptor() if isinstance(l, Layer) else dict(l) for l in layers]
        if "rootfs" not in cfg:
            diff_ids = [l.diff_id if isinstance(l, Layer) else l.get("diff_id") for l in layers]
            if any(d is None for d in diff_ids):
                raise StoreError("put_image needs the diff_id of every layer (or a config with rootfs)")
            cfg["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
        for d in descs:
            d.pop("diff_id", None)
        if len(cfg["rootfs"]["diff_ids"]) != len(descs):
            raise StoreError("config rootfs.diff_ids and layers differ in length")
        cfg.setdefault("architecture", "amd64")
        cfg.setdefault("os", "linux")
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
                                 platform={"architecture": cfg["architecture"], "os": cfg["os"]})

    def _add_to_index(self, desc: dict[str, Any], ref_name: str | None,
                      needs: Sequence[Mapping[str, Any]] = ()) -> None:
        def change(index: dict[str, Any]) -> None:
            self._check_blobs(needs)
            entries = index["manifests"]
            if ref_name:
                entries[:] = [e for e in entries if _ref_of(e) != ref_name]
                entries.append({**desc, "annotations": {REF_NAME: ref_name}})
            elif not any(e.get("digest") == desc["digest"] for e in entries):
                entries.append(desc)
        self.update_index(change)

    def tag(self, source: str, ref: str) -> str:
        """Give the image ``source`` (a ref or digest) the name ``ref``; returns its digest."""
        image = self.resolve(source)
        desc = self._descriptor_for(image.digest)
        self._add_to_index(desc, self._ref_name(ref))
        return image.digest

    def delete(self, ref_or_digest: str) -> list[str]:
        """Remove a tag, or every entry of a digest; returns the removed names/digests.

        Blobs stay until :meth:`gc`.
        """
        image = self.resolve(ref_or_digest)
        by_digest = _looks_like_digest(ref_or_digest)
        removed: list[str] = []

        def change(index: dict[str, Any]) -> None:
            keep = []
            for e in index["manifests"]:
                hit = (e.get("digest") == image.digest and (by_digest or image.ref is None)) or (
                    image.ref is not None and not by_digest and _ref_of(e) == image.ref)
                if hit:
                    removed.append(_ref_of(e) or e["digest"])
                else:
                    keep.append(e)
            index["manifests"] = keep
        self.update_index(change)
        return removed

    # -- resolve -----------------------------------------------------------------------
    def resolve(self, ref_or_digest: str, *, platform: tuple[str, str] = ("linux", "amd64")) -> Image:
        """The image named by a tag, a full digest or a unique hex prefix of one (>= 6 chars)."""
        text = ref_or_digest.strip()
        entries = self.index()["manifests"]
        entry: dict[str, Any] | None = None
        if _looks_like_digest(text):
            digest = text if text.startswith("sha256:") else None
            prefix = text.removeprefix("sha256:")
            if digest:
                entry = next((e for e in entries if e.get("digest") == digest), None)
                if entry is None and self.has_blob(digest):
                    return self._load(digest, None, None, platform)
            else:
                matches = {e["digest"]: e for e in entries if digest_hex(e["digest"]).startswith(prefix)}
                if not matches:
                    for e in entries:  # docker ids are config digests
                        img = self._load(e["digest"], _ref_of(e), e.get("mediaType"), platform, quiet=True)
                        if img is not None and digest_hex(img.id).startswith(prefix):
                            matches[e["digest"]] = e
                if len(matches) > 1:
                    raise ImageNotFound(f"{text!r} matches {len(matches)} images",
                                        hint="give more characters of the digest")
                entry = next(iter(matches.values()), None)
        if entry is None:
            for name in self._candidate_names(text):
                entry = next((e for e in entries if _ref_of(e) == name), None)
                if entry is not None:
                    break
        if entry is None:
            raise ImageNotFound(f"image {text!r} is not in the store at {self.root}",
                                hint="see `mlpack images`; pull, load or build it first", ref=text)
        image = self._load(entry["digest"], _ref_of(entry), entry.get("mediaType"), platform)
        assert image is not None
        return image

    def _candidate_names(self, text: str) -> list[str]:
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

    def _ref_name(self, ref: str) -> str:
        return str(_reference.parse(ref))

    def _descriptor_for(self, digest: str) -> dict[str, Any]:
        for e in self.index()["manifests"]:
            if e.get("digest") == digest:
                return {k: v for k, v in e.items() if k != "annotations"}
        data = self.read_blob(digest)
        mt = json.loads(data).get("mediaType", OCI_MANIFEST)
        return {"mediaType": mt, "digest": digest, "size": len(data)}

    def _load(self, digest: str, ref: str | None, media_type: str | None, platform: tuple[str, str],
              quiet: bool = False) -> Image | None:
        try:
            data = self.read_blob(digest)
            manifest = json.loads(data)
            media_type = manifest.get("mediaType") or media_type or OCI_MANIFEST
            if media_type in INDEX_TYPES or "manifests" in manifest:
                child = pick_platform(manifest.get("manifests", []), platform)
                if child is None:
                    raise ImageNotFound(f"image index {digest} has no {platform[0]}/{platform[1]} image",
                                        hint="pull or load an image built for this platform")
                return self._load(child["digest"], ref, child.get("mediaType"), platform)
            config = self.read_json(manifest["config"]["digest"])
        except (StoreError, KeyError, ValueError):
            if quiet:
                return None
            raise
        layers = list(manifest.get("layers", []))
        size = len(data) + manifest["config"]["size"] + sum(int(l["size"]) for l in layers)
        diff_ids = list(config.get("rootfs", {}).get("diff_ids", []))
        return Image(digest, manifest, config, layers, diff_ids, ref, media_type, size)

    def list(self) -> list[ImageSummary]:
        """Every index entry, with its total size in bytes."""
        out = []
        for e in self.index()["manifests"]:
            img = self._load(e["digest"], _ref_of(e), e.get("mediaType"), ("linux", "amd64"), quiet=True)
            if img is None:
                continue
            out.append(ImageSummary(img.ref, img.digest, img.id, img.size, img.config.get("created")))
        return out

    # -- maintenance -------------------------------------------------------------------
    def reachable(self) -> set[str]:
        """Digests of every blob the index references, directly or through manifests."""
        seen: set[str] = set()
        todo = [e["digest"] for e in self.index()["manifests"]]
        while todo:
            d = todo.pop()
            if d in seen:
                continue
            seen.add(d)
            try:
                m = json.loads(self.read_blob(d, verify=False))
            except (StoreError, ValueError):
                continue
            if not isinstance(m, dict):
                continue
            if "config" in m:
                seen.add(m["config"]["digest"])
            seen.update(x["digest"] for x in m.get("layers", []) if "digest" in x)  # layers are leaves
            todo.extend(x["digest"] for x in m.get("manifests", []))
        return seen

    def gc(self, *, grace_s: float = 300.0) -> tuple[int, int]:
        """Delete unreferenced blobs and stale temp files older than ``grace_s``; returns (count, bytes)."""
        if not (self.root / "blobs" / "sha256").is_dir():
            return 0, 0
        count = freed = 0
        now = time.time()
        with self._locked():
            keep = {digest_hex(d) for d in self.reachable()}
            for entry in os.scandir(self.root / "blobs" / "sha256"):
                if entry.name in keep:
                    continue
                st = entry.stat(follow_symlinks=False)
                if now - st.st_mtime < grace_s:
                    continue
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    count += 1
                    freed += st.st_size
            for entry in os.scandir(self.root):  # an index.json replacement cut short by a crash
                if entry.name.startswith(TMP_PREFIX) and now - entry.stat().st_mtime >= grace_s:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
        return count, freed

    def verify(self) -> "VerifyReport":
        """Re-hash every blob, check every reference resolves; never changes the store."""
        from mlpack.oci.validate import verify

        return verify(self)


def pick_platform(manifests: Sequence[Mapping[str, Any]], platform: tuple[str, str]) -> Mapping[str, Any] | None:
    """The entry of an index for ``(os, architecture)``; a lone entry without platform also fits."""
    want_os, want_arch = platform
    for m in manifests:
        p = m.get("platform") or {}
        if p.get("os") == want_os and p.get("architecture") == want_arch:
            return m
    bare = [m for m in manifests if not m.get("platform")]
    return bare[0] if len(bare) == 1 and len(manifests) == 1 else None


def _ref_of(entry: Mapping[str, Any]) -> str | None:
    return (entry.get("annotations") or {}).get(REF_NAME)


def _looks_like_digest(text: str) -> bool:
    hexpart = text.removeprefix("sha256:")
    return (text.startswith("sha256:") and len(hexpart) == 64) or (
        6 <= len(hexpart) <= 64 and all(c in "0123456789abcdef" for c in hexpart) and not text.startswith("sha256:")
        and any(c.isdigit() for c in hexpart))


def _empty_index() -> dict[str, Any]:
    return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}


def _index_bytes(index: Mapping[str, Any]) -> bytes:
    return json.dumps(index, indent=None, separators=(",", ":")).encode()
