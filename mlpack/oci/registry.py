"""Pull and push images (OCI distribution spec) between a registry and the store.

``pull(ref, settings=...) -> Image`` and ``push(image, ref, settings=...) -> digest``
are what ``mlpack.api`` calls. Blobs are streamed straight into the store's
BlobWriter (digest and size checked before they get a name) or out of the
store's files; the manifest is pushed last, byte for byte as stored.

Push sends layers compressed: an image whose layers are plain tars (``mlpack
load`` of an uncompressed docker-archive) is pushed as its gzip twin, an image
with the same config (so the same diff_ids and image id) whose layers are
gzip blobs made once per diff_id (:mod:`mlpack.oci.blobmeta` remembers them).
The twin's manifest is stored and indexed under the target name before the
first blob goes up, so everything the registry's manifest references is in
the store too. A blob missing from the target repository is mounted from a
repository of the same registry known to hold it (remembered after every
push and pull), else from ``PushOptions.mount_from`` or another repository
of that registry the store has images from; only then is it uploaded.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlpack.errors import RegistryError, StoreError
from mlpack import reference as _reference
from mlpack.oci.auth import load_credentials
from mlpack.oci.blobmeta import BlobMeta
from mlpack.oci.image import Image
from mlpack.oci.layout import Store
from mlpack.oci.platforms import pick_platform
from mlpack.oci.media import (
    ACCEPT_MANIFESTS, DOCKER_LAYER_GZIP, INDEX_TYPES, MANIFEST_TYPES, MAX_MANIFEST_BYTES, OCI_LAYER_GZIP,
    OCI_LAYER_TAR, canonical_json, check_digest, oversized_config,
)
from mlpack.oci.pgzip import gzip_stream
from mlpack.reference import Reference
from mlpack.oci.transport import Transport
from mlpack.oci.trust import Trust
from mlpack.settings import Settings

__all__ = ["pull", "push", "PushOptions", "Progress", "Client"]

# progress(event, digest, done_bytes, total_bytes); event: "skip", "mount", "transfer", "done", and
# "compress" (a plain-tar layer was gzipped for the push: digest and size of the compressed blob)
Progress = Callable[[str, str, int, int], None]

_CHUNK = 1 << 20
_MAX_MANIFEST = MAX_MANIFEST_BYTES
_HUB_ENDPOINT = "registry-1.docker.io"
_GZIP_OF = {OCI_LAYER_TAR: OCI_LAYER_GZIP, "application/vnd.docker.image.rootfs.diff.tar": DOCKER_LAYER_GZIP}
_GZIP_LEVEL = 6


@dataclass(frozen=True)
class PushOptions:
    chunk_size: int = 32 << 20           # blobs above this go up in PATCH chunks of this size
    mount_from: tuple[str, ...] = ()     # repositories on the same registry to mount blobs from


class Client:
    """One repository on one registry."""

    def __init__(self, registry: str, repository: str, settings: Settings, *, endpoint: str | None = None,
                 plain_http: bool = False) -> None:
        self.registry = registry
        self.repository = repository
        host = endpoint or (_HUB_ENDPOINT if registry == _reference.DOCKER_HUB else registry)
        insecure = plain_http or host in settings.insecure_registries or registry in settings.insecure_registries
        # a mirror gets its own credentials, never Docker Hub's
        creds = load_credentials(endpoint if endpoint else registry, settings.docker_config)
        self.http = Transport(host, insecure=insecure, credentials=creds, plain_only=plain_http,
                              insecure_hosts=tuple(settings.insecure_registries), trust=Trust.from_settings(settings))

    def scope(self, actions: str = "pull") -> str:
        return f"repository:{self.repository}:{actions}"

    def url(self, kind: str, ref: str) -> str:
        return f"/v2/{self.repository}/{kind}/{ref}"

    def close(self) -> None:
        self.http.close()

    # -- pull --------------------------------------------------------------------------
    def get_manifest(self, ref: str) -> tuple[bytes, str, str]:
        """(bytes, media type, digest) of the manifest or index ``ref`` (tag or digest)."""
        resp = self.http.request("GET", self.url("manifests", ref), step="get manifest",
                                 headers={"Accept": ACCEPT_MANIFESTS}, scope=self.scope())
        try:
            data = resp.read(_MAX_MANIFEST + 1)
        except (OSError, http.client.HTTPException) as exc:
            raise RegistryError(f"manifest {ref} broke off: {exc}", hint="pull again", registry=self.registry,
                                step="get manifest") from None
        finally:
            resp.close()
        if len(data) > _MAX_MANIFEST:
            raise RegistryError("manifest is larger than 4 MiB", registry=self.registry, step="get manifest")
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if ref.startswith("sha256:") and digest != ref:
            raise RegistryError(f"manifest {ref} arrived with digest {digest}", hint="the registry or proxy altered it",
                                registry=self.registry, step="get manifest")
        header = resp.header("Docker-Content-Digest")
        if header and header.startswith("sha256:") and header != digest:
            raise RegistryError(f"manifest digest {digest} differs from Docker-Content-Digest {header}",
                                registry=self.registry, step="get manifest")
        media_type = (resp.header("Content-Type") or "").split(";")[0].strip()
        try:
            doc = json.loads(data)
        except ValueError:
            raise RegistryError("the manifest is not JSON", registry=self.registry, step="get manifest") from None
        media_type = doc.get("mediaType") or media_type
        if media_type not in MANIFEST_TYPES + INDEX_TYPES:
            media_type = _guess_type(doc)
        return data, media_type, digest

    def get_blob(self, store: Store, desc: dict[str, Any], progress: Progress | None) -> None:
        digest, size = check_digest(desc["digest"]), int(desc["size"])
        if store.has_blob(digest):
            if progress:
                progress("skip", digest, size, size)
            return
        resp = self.http.request("GET", self.url("blobs", digest), step="get blob", scope=self.scope())
        done = 0
        try:
            with store.blob_writer(digest, size) as w:
                while chunk := resp.read(_CHUNK):
                    w.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress("transfer", digest, done, size)
                w.commit()
        except StoreError as exc:
            raise RegistryError(f"blob {digest}: {exc.message}", hint=exc.hint, registry=self.registry,
                                step="get blob") from None
        except OSError as exc:
            raise RegistryError(f"blob {digest} broke off after {done} bytes: {exc}", hint="pull again",
                                registry=self.registry, step="get blob") from None
        finally:
            resp.close()
        if progress:
            progress("done", digest, size, size)

    # -- push --------------------------------------------------------------------------
    def has_blob(self, digest: str, *, repository: str | None = None) -> bool:
        """HEAD the blob in this repository (or another one of the same registry)."""
        repo = repository or self.repository
        scope = f"repository:{repo}:pull" if repository else self.scope("pull,push")
        resp = self.http.request("HEAD", f"/v2/{repo}/blobs/{digest}", step="check blob",
                                 scope=scope, allow=(404,))
        resp.read()
        resp.close()
        return resp.status == 200

    def mount(self, digest: str, source_repo: str) -> str | None:
        """Cross-repository mount; returns None when mounted, else the upload Location it opened."""
        query = urllib.parse.urlencode({"mount": digest, "from": source_repo})
        resp = self.http.request("POST", f"/v2/{self.repository}/blobs/uploads/?{query}", step="mount blob",
                                 scope=f"{self.scope('pull,push')} repository:{source_repo}:pull",
                                 ok=(201, 202))
        resp.read()
        resp.close()
        return None if resp.status == 201 else self._location(resp)

    def start_upload(self) -> str:
        resp = self.http.request("POST", f"/v2/{self.repository}/blobs/uploads/", step="start upload",
                                 scope=self.scope("pull,push"), ok=(202,))
        resp.read()
        resp.close()
        return self._location(resp)

    def _location(self, resp: Any) -> str:
        loc = resp.header("Location")
        if not loc:
            raise RegistryError("upload started without a Location", registry=self.registry, step="start upload")
        return urllib.parse.urljoin(resp.url, loc)

    def upload(self, store: Store, desc: dict[str, Any], location: str, chunk_size: int,
               progress: Progress | None) -> None:
        digest, size = desc["digest"], int(desc["size"])
        path = store.blob_path(digest)
        scope = self.scope("pull,push")
        if size <= chunk_size:
            resp = self.http.request(
                "PUT", _with_digest(location, digest), step="upload blob", scope=scope, ok=(201,),
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
                body=lambda: _Reporting(open(path, "rb"), digest, 0, size, progress))
            resp.read()
            resp.close()
        else:
            offset = 0
            while offset < size:
                n = min(chunk_size, size - offset)
                start = offset
                resp = self.http.request(
                    "PATCH", location, step="upload chunk", scope=scope, ok=(202,),
                    headers={"Content-Type": "application/octet-stream", "Content-Length": str(n),
                             "Content-Range": f"{start}-{start + n - 1}"},
                    body=lambda: _Reporting(_Window(path, start, n), digest, start, size, progress))
                resp.read()
                resp.close()
                location = self._location(resp)
                offset += n
            resp = self.http.request("PUT", _with_digest(location, digest), step="finish upload", scope=scope,
                                     ok=(201,))
            resp.read()
            resp.close()
        if progress:
            progress("done", digest, size, size)

    def put_manifest(self, data: bytes, media_type: str, ref: str) -> str:
        resp = self.http.request("PUT", self.url("manifests", ref), step="put manifest", body=data,
                                 headers={"Content-Type": media_type}, scope=self.scope("pull,push"), ok=(201, 200))
        resp.read()
        resp.close()
        return "sha256:" + hashlib.sha256(data).hexdigest()


def pull(ref: str, *, settings: Settings, progress: Progress | None = None, store: Store | None = None) -> Image:
    """Pull ``ref`` (linux/amd64 from an index) into the store; returns the stored Image."""
    parsed = _reference.parse(ref)
    store = store or Store(settings.store_dir)
    endpoints: list[str | None] = [None]
    if parsed.registry == _reference.DOCKER_HUB and settings.registry_mirrors:
        endpoints = [*settings.registry_mirrors, None]
    last: RegistryError | None = None
    for endpoint in endpoints:
        # a mirror written as http://... was explicitly allowed plain HTTP
        client = Client(parsed.registry, parsed.repository, settings,
                        endpoint=_mirror_host(endpoint) if endpoint else None,
                        plain_http=bool(endpoint and endpoint.startswith("http://")))
        try:
            image = _pull(client, parsed, store, progress)
            if endpoint is None:
                _meta(settings).add_repository(parsed.registry, parsed.repository,
                                               [d["digest"] for d in (*image.layers, image.config_descriptor)])
            return image
        except RegistryError as exc:
            last = exc
        finally:
            client.close()
    assert last is not None
    raise last


def _pull(client: Client, ref: Reference, store: Store, progress: Progress | None) -> Image:
    data, media_type, digest = client.get_manifest(ref.reference)
    if media_type in INDEX_TYPES:
        child = pick_platform(json.loads(data).get("manifests", []), ("linux", "amd64"))
        if child is None:
            raise RegistryError(f"{ref} has no linux/amd64 image", hint="pick an image built for linux/amd64",
                                registry=client.registry, step="get manifest")
        data, media_type, digest = client.get_manifest(child["digest"])
        if digest != child["digest"]:
            raise RegistryError("manifest digest differs from the index", registry=client.registry, step="get manifest")
    manifest = json.loads(data)
    too_big = oversized_config(manifest)
    if too_big:
        raise RegistryError(too_big, hint="the registry serves a hostile or broken image", registry=client.registry,
                            step="get manifest")
    for desc in [manifest["config"], *manifest.get("layers", [])]:
        client.get_blob(store, desc, progress)
    store.put_manifest(data, media_type, ref=str(ref))
    return store.resolve(str(ref) if ref.tag else digest)


def push(image: Image | str, ref: str, *, settings: Settings, progress: Progress | None = None,
         options: PushOptions | None = None, store: Store | None = None) -> str:
    """Push ``image`` (an Image or a name in the store) to ``ref``; returns the manifest digest."""
    store = store or Store(settings.store_dir)
    options = options or PushOptions()
    if isinstance(image, str):
        image = store.resolve(image)
    target = _reference.parse(ref)
    meta = _meta(settings)
    image = _compressed(store, image, target, meta, progress)
    client = Client(target.registry, target.repository, settings)
    mount_from = list(options.mount_from) or _mount_candidates(store, target)
    try:
        for desc in [*image.layers, image.config_descriptor]:
            _push_blob(client, store, desc, meta, mount_from, options, progress)
            meta.add_repository(target.registry, target.repository, [desc["digest"]])
        data = store.read_blob(image.digest)
        return client.put_manifest(data, image.media_type, target.tag or target.reference)
    finally:
        client.close()


def _push_blob(client: Client, store: Store, desc: dict[str, Any], meta: BlobMeta, mount_from: list[str],
               options: PushOptions, progress: Progress | None) -> None:
    """Make the blob ``desc`` exist in the client's repository: found there, mounted, or uploaded."""
    digest, size = desc["digest"], int(desc["size"])
    if client.has_blob(digest):
        if progress:
            progress("skip", digest, size, size)
        return
    known = [r for r in meta.repositories(client.registry, digest) if r != client.repository]
    if known:  # known to hold it: mount straight away (one POST), as Docker does
        location = client.mount(digest, known[0])
        if location is not None:  # not there any more: the POST opened an upload instead
            meta.forget_repository(client.registry, known[0], digest)
    else:
        source = next((r for r in mount_from if client.has_blob(digest, repository=r)), None)
        location = client.mount(digest, source) if source else client.start_upload()
    if location is None:
        if progress:
            progress("mount", digest, size, size)
        return
    client.upload(store, desc, location, options.chunk_size, progress)


def _compressed(store: Store, image: Image, target: Reference, meta: BlobMeta, progress: Progress | None) -> Image:
    """``image`` itself when no layer is a plain tar, else its gzip twin (stored and indexed under ``target``)."""
    if not any(desc.get("mediaType") in _GZIP_OF for desc in image.layers):
        return image
    if len(image.diff_ids) != len(image.layers):
        raise StoreError(f"image {image.digest} has {len(image.layers)} layers but {len(image.diff_ids)} diff_ids",
                         hint="the image is broken: run `mlpack system verify`")
    layers = []
    for desc, diff_id in zip(image.layers, image.diff_ids):
        gz_type = _GZIP_OF.get(desc.get("mediaType", ""))
        if gz_type is None:
            layers.append(desc)
            continue
        twin = meta.gzip_twin(diff_id)
        if twin is None or not store.has_blob(twin[0]):
            twin = _gzip_blob(store, desc["digest"], diff_id)
            meta.set_gzip_twin(diff_id, *twin)
            if progress:
                progress("compress", twin[0], twin[1], twin[1])
        layers.append({**{k: v for k, v in desc.items() if k not in ("digest", "size", "mediaType")},
                       "mediaType": gz_type, "digest": twin[0], "size": twin[1]})
    manifest = {**image.manifest, "layers": layers}
    platform = image.config.platform
    digest = store.put_manifest(canonical_json(manifest), image.media_type,
                                ref=str(target) if target.tag else None, platform=platform)
    return store.resolve(digest)


def _gzip_blob(store: Store, digest: str, diff_id: str) -> tuple[str, int]:
    """Gzip the plain-tar blob ``digest`` into the store (reproducibly, on several cores), checking its diff_id."""
    with store.open_blob(digest) as src, store.blob_writer() as out:
        plain = _Hashing(src)
        gzip_stream(plain, out, level=_GZIP_LEVEL)  # type: ignore[arg-type]
        if "sha256:" + plain.hash.hexdigest() != diff_id:
            raise StoreError(f"layer {digest} does not decompress to its diff_id {diff_id}",
                             hint="the store is damaged: run `mlpack system verify`", digest=digest)
        return out.commit(), out.size


class _Hashing:
    """Reads a stream and hashes what it read (sha256)."""

    def __init__(self, f: Any) -> None:
        self.f, self.hash = f, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.f.read(size)
        self.hash.update(data)
        return data


def _meta(settings: Settings) -> BlobMeta:
    return BlobMeta(settings.cache_dir / "registry" / "blobs.json")


def _mount_candidates(store: Store, target: Reference) -> list[str]:
    """Other repositories of the same registry the store knows images from (up to 3)."""
    out: list[str] = []
    for summary in store.list():
        if not summary.ref:
            continue
        try:
            ref = _reference.parse(summary.ref)
        except Exception:  # noqa: BLE001 - foreign names in the index
            continue
        if ref.registry == target.registry and ref.repository != target.repository and ref.repository not in out:
            out.append(ref.repository)
    return out[:3]


def _mirror_host(mirror: str) -> str:
    return urllib.parse.urlsplit(mirror if "://" in mirror else f"//{mirror}").netloc or mirror


def _with_digest(location: str, digest: str) -> str:
    return location + ("&" if "?" in location else "?") + "digest=" + urllib.parse.quote(digest)


def _guess_type(doc: dict[str, Any]) -> str:
    if "manifests" in doc:
        return INDEX_TYPES[0]
    return MANIFEST_TYPES[0]


class _Window:
    """A read-only view of ``n`` bytes of a file from ``start`` (one upload chunk)."""

    def __init__(self, path: Any, start: int, n: int) -> None:
        self.f = open(path, "rb")
        self.f.seek(start)
        self.left = n

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        size = self.left if size < 0 else min(size, self.left)
        data = self.f.read(size)
        self.left -= len(data)
        return data

    def close(self) -> None:
        self.f.close()


class _Reporting:
    """Wraps a body stream to report upload progress."""

    def __init__(self, f: Any, digest: str, start: int, total: int, progress: Progress | None) -> None:
        self.f, self.digest, self.done, self.total, self.progress = f, digest, start, total, progress

    def read(self, size: int = -1) -> bytes:
        data = self.f.read(size)
        self.done += len(data)
        if self.progress and data:
            self.progress("transfer", self.digest, self.done, self.total)
        return data

    def close(self) -> None:
        self.f.close()


