"""zstd layers: recompress keeps the image (config, diff_ids), is reproducible, round-trips through
save/load and unpack, refuses Docker formats, and never names a layer that does not match its diff_id."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from mlpack.errors import StoreError, UnpackError
from mlpack.oci.archive import load, save
from mlpack.oci.compression import compression_of, recompress
from mlpack.oci.layer import Entry, write_entries
from mlpack.oci.layout import Store
from mlpack.oci.media import DOCKER_MANIFEST, OCI_LAYER_GZIP, OCI_LAYER_ZSTD, canonical_json
from mlpack.oci.unpack import UnpackOptions, apply_layer

REF = "localhost/zstd/img:1"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "s")
    rng = os.urandom(1 << 16)
    layers = [write_entries(s, [Entry("etc/app.conf", data=b"threads = 2\n" * 2000),
                                Entry("usr/bin/tool", data=rng, mode=0o755)]),
              write_entries(s, [Entry("opt/model/weights.bin", data=bytes(range(256)) * 4096),
                                Entry("opt/model/link", type="symlink", linkname="weights.bin")])]
    s.put_image({"config": {"Cmd": ["tool"]}}, layers, ref=REF)
    return s


def _tree(root: Path) -> dict[str, bytes | str]:
    out: dict[str, bytes | str] = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = os.readlink(p) if p.is_symlink() else p.read_bytes()
    return out


def test_zstd_keeps_the_image_and_unpacks_to_the_same_tree(store: Store, tmp_path: Path) -> None:
    gz = store.resolve(REF)
    zs = recompress(store, gz, "zstd", ref="localhost/zstd/img:z")
    assert zs.ref == "localhost/zstd/img:z" and zs.digest != gz.digest
    assert [l["mediaType"] for l in zs.layers] == [OCI_LAYER_ZSTD] * 2
    assert zs.diff_ids == gz.diff_ids and zs.config == gz.config
    assert zs.manifest["config"] == gz.manifest["config"]
    for layer in zs.layers:
        assert store.read_blob(layer["digest"])[:4] == ZSTD_MAGIC
        assert store.blob_size(layer["digest"]) == layer["size"]
    trees = []
    for image, name in ((gz, "gz"), (zs, "zs")):
        root = tmp_path / name
        for layer, diff_id in zip(image.layers, image.diff_ids):
            apply_layer(root, store.blob_path(layer["digest"]), expected_diff_id=diff_id)
        trees.append(_tree(root))
    assert trees[0] == trees[1] and trees[0]["opt/model/link"] == "weights.bin"
    # the original stays as it was, tagged
    assert store.resolve(REF).digest == gz.digest


def test_recompress_is_reproducible_and_reversible(store: Store) -> None:
    gz = store.resolve(REF)
    a = recompress(store, gz, "zstd")
    b = recompress(store, gz, "zstd")
    assert a.digest == b.digest and a.ref == REF  # the untagged variant keeps the name it was asked by
    back = recompress(store, a, "gzip")
    assert [compression_of(l["mediaType"]) for l in back.layers] == ["gzip", "gzip"]
    assert back.layers[0]["mediaType"] == OCI_LAYER_GZIP and back.diff_ids == gz.diff_ids
    assert recompress(store, gz, "gzip") is gz  # nothing to do


def test_bad_requests_are_refused(store: Store) -> None:
    image = store.resolve(REF)
    with pytest.raises(StoreError, match="unknown layer compression 'lz4'") as err:
        recompress(store, image, "lz4")
    assert "gzip, zstd" in (err.value.hint or "")
    docker = dict(image.manifest, mediaType=DOCKER_MANIFEST)
    digest = store.put_manifest(canonical_json(docker), DOCKER_MANIFEST, ref="localhost/zstd/docker:1")
    with pytest.raises(StoreError, match="Docker manifest"):
        recompress(store, store.resolve(digest), "zstd")
    with pytest.raises(StoreError, match="docker-archive has no zstd"):
        save(store, [REF], store.root.parent / "x.tar", format="docker-archive", compression="zstd")


def test_a_layer_that_does_not_match_its_diff_id_is_not_named(store: Store) -> None:
    image = store.resolve(REF)
    config = dict(image.config.blob, rootfs={"type": "layers", "diff_ids": ["sha256:" + "0" * 64, image.diff_ids[1]]})
    forged = store.put_image(config, image.layers, ref="localhost/zstd/forged:1")
    before = set(os.listdir(store.root / "blobs" / "sha256"))
    with pytest.raises(StoreError, match="does not uncompress to its diff_id"):
        recompress(store, store.resolve(forged), "zstd")
    # the half-made blob went away with its writer; no manifest names zstd layers
    assert set(os.listdir(store.root / "blobs" / "sha256")) == before


@pytest.mark.parametrize("fmt", ["oci-archive", "oci-dir"])
def test_save_zstd_and_load_it_back(store: Store, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"out-{fmt}"
    [saved] = save(store, [REF], out, format=fmt, compression="zstd")
    [loaded] = load(Store(tmp_path / "t"), out)
    assert loaded.ref == REF and loaded.digest == saved.digest
    assert [l["mediaType"] for l in loaded.layers] == [OCI_LAYER_ZSTD] * 2
    assert loaded.diff_ids == store.resolve(REF).diff_ids


def test_a_zstd_bomb_stops_at_the_unpack_cap(tmp_path: Path) -> None:
    import tarfile

    import zstandard

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("zeros")
        info.size = 8 << 20
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    blob = zstandard.ZstdCompressor(level=19).compress(raw.getvalue())
    assert len(blob) < 4096
    with pytest.raises(UnpackError, match="larger than the cap"):
        apply_layer(tmp_path / "root", io.BytesIO(blob), UnpackOptions(max_size=1 << 20))
