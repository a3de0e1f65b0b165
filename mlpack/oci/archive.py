"""Images in and out of files: OCI layout dirs and tars, docker-archive tars.

* ``oci-dir``: an OCI image layout directory (what ``skopeo copy oci:DIR:NAME`` reads)
* ``oci-archive``: the same layout as a tar (``skopeo copy oci-archive:FILE``)
* ``docker-archive``: ``docker save`` format, ``manifest.json`` =
  ``[{Config, RepoTags, Layers}]`` with uncompressed layer tars, what ``docker load`` reads

Loading never extracts an archive to disk by its member names: members are
read by name from the tar and every blob is verified against its digest (and
each docker-archive layer against its diff_id) before it gets a name in the store.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from mlpack.errors import StoreError
from mlpack import reference as _reference
from mlpack.oci.config import ImageConfig
from mlpack.oci.image import Image
from mlpack.oci.layout import Store
from mlpack.oci.platforms import pick_platform
from mlpack.oci.layercache import ensure_layer
from mlpack.oci.media import (
    INDEX_TYPES, MANIFEST_TYPES, MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES, OCI_CONFIG, OCI_INDEX, OCI_LAYER_GZIP,
    OCI_LAYER_TAR, OCI_MANIFEST, REF_NAME, canonical_json, digest_hex, oversized_config,
)
from mlpack.oci.unpack import open_layer_stream

__all__ = ["save", "load", "FORMATS"]

FORMATS = ("docker-archive", "oci-archive", "oci-dir")
_CHUNK = 1 << 20
_MAX_JSON = 16 << 20


# -- save --------------------------------------------------------------------------------
def save(store: Store, names: Sequence[str], dest: str | os.PathLike[str], *, format: str = "docker-archive",
         compression: str | None = None) -> list[Image]:
    """Write the images ``names`` (refs or digests) from ``store`` to ``dest``; returns them.
    ``compression`` (gzip or zstd) re-encodes the layers first (mlpack.oci.compression)."""
    if format not in FORMATS:
        raise StoreError(f"unknown archive format {format!r}", hint=f"use one of {', '.join(FORMATS)}")
    if compression == "zstd" and format == "docker-archive":
        raise StoreError("a docker-archive has no zstd layers (Docker's media types are gzip only)",
                         hint="save with --format oci-archive or oci-dir, or --compression gzip")
    images = [store.resolve(n) for n in names]
    if compression:
        from mlpack.oci.compression import recompress

        images = [recompress(store, image, compression) for image in images]
    dest = Path(dest)
    if format == "oci-dir":
        target = Store(dest)
        for name, image in zip(names, images):
            _copy_image(store, target, image, _ref_name(name, image))
        return images
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f, tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar:
            if format == "oci-archive":
                _write_oci_tar(store, tar, list(zip(names, images)))
            else:
                _write_docker_tar(store, tar, list(zip(names, images)))
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return images


def _ref_name(name: str, image: Image) -> str | None:
    if image.ref:
        return image.ref
    try:
        ref = _reference.parse(name)
    except Exception:  # noqa: BLE001 - a digest: saved untagged
        return None
    return None if ref.digest and not ref.tag else str(ref)


def _copy_image(src: Store, dst: Store, image: Image, ref: str | None) -> None:
    for desc in [image.config_descriptor, *image.layers]:
        if not dst.has_blob(desc["digest"]):
            with src.open_blob(desc["digest"]) as f:
                dst.put_blob_stream(iter(lambda: f.read(_CHUNK), b""), desc["digest"], desc["size"])
    dst.put_manifest(src.read_blob(image.digest), image.media_type, ref=ref,
                     platform=image.config.platform)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tar.addfile(info, io.BytesIO(data))


def _add_file(tar: tarfile.TarFile, name: str, path: Path) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = path.stat().st_size, 0o644, 0
    with open(path, "rb") as f:
        tar.addfile(info, f)


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
    tar.addfile(info)


def _write_oci_tar(store: Store, tar: tarfile.TarFile, images: list[tuple[str, Image]]) -> None:
    _add_bytes(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    for d in ("blobs", "blobs/sha256"):
        _add_dir(tar, d)
    written: set[str] = set()
    entries = []
    for name, image in images:
        for desc in [{"digest": image.digest}, image.config_descriptor, *image.layers]:
            if desc["digest"] not in written:
                written.add(desc["digest"])
                _add_file(tar, f"blobs/sha256/{digest_hex(desc['digest'])}", store.blob_path(desc["digest"]))
        entry: dict[str, Any] = {"mediaType": image.media_type, "digest": image.digest,
                                 "size": store.blob_size(image.digest)}
        ref = _ref_name(name, image)
        if ref:
            entry["annotations"] = {REF_NAME: ref}
        entries.append(entry)
    _add_bytes(tar, "index.json", json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode())


def _write_docker_tar(store: Store, tar: tarfile.TarFile, images: list[tuple[str, Image]]) -> None:
    manifest = []
    written: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="save-") as tmp:
        for name, image in images:
            cfg_name = f"{digest_hex(image.id)}.json"
            if cfg_name not in written:
                written.add(cfg_name)
                _add_bytes(tar, cfg_name, store.read_blob(image.id))
            layers = []
            for desc, diff_id in zip(image.layers, image.diff_ids):
                lname = f"{digest_hex(diff_id)}/layer.tar"
                layers.append(lname)
                if lname in written:
                    continue
                written.add(lname)
                plain = Path(tmp) / "layer.tar"
                with store.open_blob(desc["digest"]) as f, open(plain, "wb") as out:
                    stream, h = open_layer_stream(f), hashlib.sha256()
                    while chunk := stream.read(_CHUNK):
                        h.update(chunk)
                        out.write(chunk)
                if "sha256:" + h.hexdigest() != diff_id:
                    raise StoreError(f"layer {desc['digest']} does not decompress to its diff_id {diff_id}",
                                     hint="the stored image is corrupt; run `mlpack system verify`")
                _add_dir(tar, digest_hex(diff_id))
                _add_file(tar, lname, plain)
                plain.unlink()
            ref = _ref_name(name, image)
            tags = [_reference.parse(ref).familiar()] if ref else []
            manifest.append({"Config": cfg_name, "RepoTags": tags, "Layers": layers})
        _add_bytes(tar, "manifest.json", json.dumps(manifest).encode())


# -- load --------------------------------------------------------------------------------
class _Source:
    """Files of an OCI layout, from a directory or a tar, read by name."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tar: tarfile.TarFile | None = None
        if not path.is_dir():
            try:
                self.tar = tarfile.open(path, "r:*")
            except (tarfile.TarError, OSError) as exc:
                raise StoreError(f"{path} is neither an OCI layout directory nor a tar archive: {exc}",
                                 hint="give a docker-archive or OCI archive tar, or an OCI layout directory") from None
            self.names = {m.name.removeprefix("./"): m for m in self.tar.getmembers()}

    def exists(self, name: str) -> bool:
        if self.tar is None:
            return (self.path / name).is_file()
        return name in self.names

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        if self.tar is None:
            parts = [p for p in name.split("/") if p]
            if ".." in parts or name.startswith("/"):
                raise StoreError(f"archive refers to {name!r}, outside it", hint="the archive is hostile or broken")
            with open(self.path / name, "rb") as f:
                yield f
            return
        member = self.names.get(name.removeprefix("./"))
        f = self.tar.extractfile(member) if member is not None else None
        if f is None:
            raise StoreError(f"{self.path} has no file {name!r}", hint="the archive is incomplete")
        with f:
            yield f

    def read(self, name: str, limit: int = _MAX_JSON) -> bytes:
        with self.open(name) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise StoreError(f"{name} in {self.path} is larger than {limit} bytes", hint="the archive is hostile or broken")
        return data

    def close(self) -> None:
        if self.tar is not None:
            self.tar.close()


def load(store: Store, path: str | os.PathLike[str], *, ref: str | None = None,
         progress: Callable[[str], None] | None = None, layers_dir: str | os.PathLike[str] | None = None,
         ) -> list[Image]:
    """Load every image of a docker-archive, OCI archive or OCI layout dir into ``store``.

    ``ref`` names the (single) image instead of the names the archive carries.
    ``layers_dir`` (Settings.layers_dir): unpack every layer there before the
    image is named, exactly as `run` would, so that a hostile layer is refused
    at load, with run's message, and no image that cannot run gets a name.
    """
    src = _Source(Path(path))
    check = _layer_check(store, Path(layers_dir)) if layers_dir is not None else None
    try:
        if src.exists("manifest.json"):
            return _load_docker(store, src, ref, progress, check)
        if src.exists("index.json") and src.exists("oci-layout"):
            return _load_oci(store, src, ref, progress, check)
        raise StoreError(f"{path} has neither manifest.json (docker-archive) nor index.json + oci-layout (OCI)",
                         hint="save it with `docker save`, `skopeo copy ... oci-archive:` or `mlpack save`")
    finally:
        src.close()


def _layer_check(store: Store, layers_dir: Path) -> Callable[[list[dict[str, Any]], list[str]], None]:
    def check(layers: list[dict[str, Any]], diff_ids: list[str]) -> None:
        if len(layers) != len(diff_ids):
            raise StoreError(f"the image has {len(layers)} layers but {len(diff_ids)} diff_ids",
                             hint="the archive is hostile or broken")
        for desc, diff_id in zip(layers, diff_ids):
            ensure_layer(store, desc["digest"], diff_id, layers_dir)
    return check


def _blob_name(digest: object) -> str:
    try:
        return f"blobs/sha256/{digest_hex(str(digest))}"
    except ValueError:
        raise StoreError(f"the archive names a malformed digest {digest!r}",
                         hint="the archive is hostile or broken") from None


def _blob(store: Store, src: _Source, desc: dict[str, Any], progress: Callable[[str], None] | None) -> None:
    digest = desc["digest"]
    name = _blob_name(digest)
    if store.has_blob(digest):
        return
    if progress:
        progress(f"loading {digest[:19]} ({int(desc.get('size', 0)) / 1e6:.1f} MB)")
    with src.open(name) as f:
        store.put_blob_stream(iter(lambda: f.read(_CHUNK), b""), digest, int(desc["size"]))


def _load_oci(store: Store, src: _Source, ref: str | None, progress: Callable[[str], None] | None,
              check: Callable[[list[dict[str, Any]], list[str]], None] | None) -> list[Image]:
    index = json.loads(src.read("index.json"))
    out = []
    for entry in index.get("manifests", []):
        desc = entry
        raw = src.read(_blob_name(desc.get("digest")), MAX_MANIFEST_BYTES)
        manifest = json.loads(raw)
        media_type = manifest.get("mediaType") or desc.get("mediaType") or OCI_MANIFEST
        if media_type in INDEX_TYPES or "manifests" in manifest:
            child = pick_platform(manifest.get("manifests", []), ("linux", "amd64"))
            if child is None:
                raise StoreError("the archive's image index has no linux/amd64 image",
                                 hint="save the image for linux/amd64")
            desc = child
            raw = src.read(_blob_name(desc.get("digest")), MAX_MANIFEST_BYTES)
            manifest = json.loads(raw)
            media_type = manifest.get("mediaType") or desc.get("mediaType") or OCI_MANIFEST
        if media_type not in MANIFEST_TYPES:
            raise StoreError(f"unsupported manifest media type {media_type!r}")
        if "sha256:" + hashlib.sha256(raw).hexdigest() != desc["digest"]:
            raise StoreError(f"manifest {desc['digest']} in the archive does not match its digest",
                             hint="the archive is corrupt")
        too_big = oversized_config(manifest)
        if too_big:
            raise StoreError(too_big, hint="the archive is hostile or broken")
        for blob in [manifest["config"], *manifest.get("layers", [])]:
            _blob(store, src, blob, progress)
        if check is not None:
            config = ImageConfig.from_blob(json.loads(store.read_blob(manifest["config"]["digest"])))
            check(list(manifest.get("layers", [])), list(config.diff_ids))
        name = ref or (entry.get("annotations") or {}).get(REF_NAME)
        tag = None
        if name:
            with contextlib.suppress(Exception):
                tag = str(_reference.parse(name))
        digest = store.put_manifest(raw, media_type, ref=tag)
        out.append(store.resolve(tag or digest))
    return out


def _load_docker(store: Store, src: _Source, ref: str | None, progress: Callable[[str], None] | None,
                 check: Callable[[list[dict[str, Any]], list[str]], None] | None) -> list[Image]:
    entries = json.loads(src.read("manifest.json"))
    if not isinstance(entries, list):
        raise StoreError("manifest.json of the docker-archive is not a list", hint="the archive is broken")
    out = []
    for entry in entries:
        cfg_bytes = src.read(entry["Config"], MAX_CONFIG_BYTES)
        cfg_digest = store.put_blob(cfg_bytes)
        config = ImageConfig.from_blob(json.loads(cfg_bytes))
        diff_ids = config.diff_ids
        if len(diff_ids) != len(entry["Layers"]):
            raise StoreError("docker-archive config and manifest.json list different numbers of layers")
        layers = []
        for name, diff_id in zip(entry["Layers"], diff_ids):
            if progress:
                progress(f"loading layer {diff_id[:19]}")
            layers.append(_docker_layer(store, src, name, diff_id))
        if check is not None:
            check(layers, list(diff_ids))
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": OCI_CONFIG, "digest": cfg_digest, "size": len(cfg_bytes)},
                    "layers": layers}
        tags = [ref] if ref else list(entry.get("RepoTags") or [])
        first = str(_reference.parse(tags[0])) if tags else None
        digest = store.put_manifest(canonical_json(manifest), OCI_MANIFEST, ref=first,
                                    platform=config.platform)
        for extra in tags[1:]:
            store.tag(digest, extra)
        out.append(store.resolve(first or digest))
    return out


def _docker_layer(store: Store, src: _Source, name: str, diff_id: str) -> dict[str, Any]:
    """Store one docker-archive layer as is (tar or gzip), checking it decompresses to ``diff_id``."""
    with src.open(name) as f:
        head = f.read(2)
        gz = head == b"\x1f\x8b"
        with store.blob_writer() as w:
            plain = hashlib.sha256()
            feeder = _Tee(head, f, w)
            if gz:
                with gzip.GzipFile(fileobj=feeder, mode="rb") as g:  # type: ignore[arg-type]
                    while chunk := g.read(_CHUNK):
                        plain.update(chunk)
                while feeder.read(_CHUNK):
                    pass
            else:
                while chunk := feeder.read(_CHUNK):
                    plain.update(chunk)
            if "sha256:" + plain.hexdigest() != diff_id:
                raise StoreError(f"layer {name} does not match its diff_id {diff_id}",
                                 hint="the archive is corrupt or was changed")
            digest = w.commit()
            return {"mediaType": OCI_LAYER_GZIP if gz else OCI_LAYER_TAR, "digest": digest, "size": w.size}


class _Tee:
    """Reads ``head`` then ``f``, writing everything read into ``w`` (the stored blob)."""

    def __init__(self, head: bytes, f: IO[bytes], w: Any) -> None:
        self.head, self.f, self.w = head, f, w

    def read(self, n: int = -1) -> bytes:
        if self.head:
            data, self.head = self.head, b""
            more = self.f.read(max(n - len(data), 0)) if n and n > 0 else self.f.read()
            data += more
        else:
            data = self.f.read(n)
        if data:
            self.w.write(data)
        return data


