"""What push sends: compressed layers for an image loaded uncompressed, and mounts instead of uploads.

The registry is a real docker-registry on 127.0.0.1 with its access log on:
the test counts the requests it saw (upload POSTs, mounts, PUTs and PATCHes
of blob data) rather than trusting the client's own account.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlpack.oci import archive
from mlpack.oci.layer import Entry, LayerOptions, entries_from_dir, write_entries
from mlpack.oci.layout import Store
from mlpack.oci.media import OCI_LAYER_GZIP, OCI_LAYER_TAR
from mlpack.oci.registry import pull, push
from mlpack.settings import Settings
from mlpack.oci.validate import verify
from tests.plugins.oci import LocalRegistry, start_registry

pytestmark = pytest.mark.registry


@pytest.fixture
def logged_registry(tmp_path: Path) -> Iterator[LocalRegistry]:
    binary = shutil.which("docker-registry") or "/usr/bin/docker-registry"
    if not Path(binary).exists():
        pytest.skip("docker-registry is not installed")
    with start_registry(tmp_path / "registry", binary, access_log=True) as registry:
        yield registry


def _uncompressed_image(tmp_path: Path) -> tuple[Settings, str]:
    """An image with real files (the stdlib's json and email packages: text that compresses, and random
    bytes that do not), saved as a docker-archive (plain-tar layers, as `docker save` writes) and loaded."""
    build = Store(tmp_path / "build")
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    text = [write_entries(build, entries_from_dir(stdlib / pkg, LayerOptions(prefix=f"usr/lib/py/{pkg}"))) for pkg in ("json", "email")]
    noise = write_entries(build, [Entry("data/noise.bin", data=os.urandom(256 << 10))])
    build.put_image({"config": {"Cmd": ["ls"]}}, [*text, noise], ref="localhost/plain/img:1")
    archive.save(build, ["localhost/plain/img:1"], tmp_path / "img.tar", format="docker-archive")
    settings = Settings.from_env({"MLPACK_HOME": str(tmp_path / "home")})
    [loaded] = archive.load(Store(settings.store_dir), tmp_path / "img.tar")
    assert {d["mediaType"] for d in loaded.layers} == {OCI_LAYER_TAR}
    return settings, loaded.ref or "localhost/plain/img:1"


def _blob_puts(registry: LocalRegistry, repo: str) -> list[tuple[str, str, int]]:
    return [r for r in registry.requests() if r[0] in ("PUT", "PATCH") and r[1].startswith(f"/v2/{repo}/blobs/")]


def test_uncompressed_image_is_pushed_with_gzip_layers(tmp_path: Path, logged_registry: LocalRegistry) -> None:
    settings, name = _uncompressed_image(tmp_path)
    store = Store(settings.store_dir)
    local = store.resolve(name)
    tar_bytes = sum(int(d["size"]) for d in local.layers)
    events: list[tuple[str, str, int, int]] = []
    pushed = push(name, logged_registry.ref("plain/img:1"), settings=settings, progress=lambda *e: events.append(e))

    twins = {e[1]: e[3] for e in events if e[0] == "compress"}
    assert len(twins) == len(local.layers)
    sent = {e[1]: e[3] for e in events if e[0] == "done"}
    layer_bytes_sent = sum(size for digest, size in sent.items() if digest in twins)
    assert layer_bytes_sent == sum(twins.values()) < tar_bytes * 0.6  # what went up is the gzip, not the tar
    assert set(sent) == {*twins, local.id}

    # the store holds what the registry's manifest references, the config (diff_ids, image id) is the same
    remote = store.resolve(pushed)
    assert remote.id == local.id and remote.diff_ids == local.diff_ids
    assert [d["mediaType"] for d in remote.layers] == [OCI_LAYER_GZIP] * len(local.layers)
    assert store.resolve(logged_registry.ref("plain/img:1")).digest == pushed
    for desc, diff_id in zip(remote.layers, remote.diff_ids):
        with store.open_blob(desc["digest"]) as f:
            assert "sha256:" + hashlib.sha256(gzip.decompress(f.read())).hexdigest() == diff_id
    store.gc(grace_s=0)
    assert verify(store).ok and store.resolve(name).digest == local.digest

    # a fresh pull gets the gzip layers, which unpack to the same diff_ids
    fresh = Settings.from_env({"MLPACK_HOME": str(tmp_path / "fresh")})
    got = pull(logged_registry.ref("plain/img:1"), settings=fresh)
    assert got.digest == pushed and got.diff_ids == local.diff_ids and verify(Store(fresh.store_dir)).ok

    # compressed once: a second push reuses the twins and finds every blob there
    again: list[tuple[str, str, int, int]] = []
    assert push(name, logged_registry.ref("plain/img:1"), settings=settings, progress=lambda *e: again.append(e)) == pushed
    assert {e[0] for e in again} == {"skip"}


def test_second_repository_mounts_every_blob(tmp_path: Path, logged_registry: LocalRegistry) -> None:
    settings, name = _uncompressed_image(tmp_path)
    first = push(name, logged_registry.ref("team/first:1"), settings=settings)
    assert _blob_puts(logged_registry, "team/first")  # uploaded there
    store = Store(settings.store_dir)
    image = store.resolve(first)
    blobs = {d["digest"] for d in (*image.layers, image.config_descriptor)}
    # the store keeps no image of that registry: only what was remembered from the push finds the blobs
    store.delete(logged_registry.ref("team/first:1"))
    before = len(logged_registry.requests())

    assert push(name, logged_registry.ref("other/second:1"), settings=settings) == first
    seen = logged_registry.requests()[before:]
    assert not any(p.startswith("/v2/team/first/") for _, p, _ in seen)  # mounted straight away, no HEAD there
    posts = [p for m, p, _ in logged_registry.requests() if m == "POST" and p.startswith("/v2/other/second/blobs/uploads/")]
    mounts = [r for r in logged_registry.requests() if r[0] == "POST" and "mount=" in r[1]
              and r[1].startswith("/v2/other/second/")]
    assert len(posts) == len(mounts) == len(blobs) and all(status == 201 for _, _, status in mounts)
    assert all("from=team%2Ffirst" in p for _, p, _ in mounts)
    assert _blob_puts(logged_registry, "other/second") == []  # not one byte of blob data went up again

    # and after a pull, too: the pulled repository is remembered
    fresh = Settings.from_env({"MLPACK_HOME": str(tmp_path / "fresh")})
    fresh_store = Store(fresh.store_dir)
    pulled = pull(logged_registry.ref("other/second:1"), settings=fresh)
    fresh_store.tag(pulled.digest, "localhost/copy:1")
    fresh_store.delete(logged_registry.ref("other/second:1"))
    assert push("localhost/copy:1", logged_registry.ref("third/copy:1"), settings=fresh) == first
    assert len([r for r in logged_registry.requests() if "mount=" in r[1] and r[1].startswith("/v2/third/copy/")
                and r[2] == 201]) == len(blobs)
    assert _blob_puts(logged_registry, "third/copy") == []
    meta = json.loads((fresh.cache_dir / "registry" / "blobs.json").read_text())
    assert set(meta["repos"][logged_registry.host]) == blobs
