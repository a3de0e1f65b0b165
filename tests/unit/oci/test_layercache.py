"""Layers unpacked once per diff_id, in overlay form, base first."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlpack.errors import UnpackError
from mlpack.oci.layer import Entry, write_entries
from mlpack.oci.layercache import flatten, layer_dirs, prune
from mlpack.oci.layout import Store
from mlpack.settings import Settings


@pytest.fixture
def two_layer_image(settings: Settings):  # type: ignore[no-untyped-def]
    store = Store(settings.store_dir)
    base = write_entries(store, [Entry("etc/os", data=b"base"), Entry("tmp/junk", data=b"j"),
                                 Entry("var/cache/a", data=b"a")])
    top = write_entries(store, [Entry("app/main.py", data=b"print(1)"), Entry("tmp/junk", "whiteout"),
                                Entry("var/cache", "dir"), Entry("var/cache", "opaque")])
    digest = store.put_image({}, [base, top], ref="localhost/t/two:1")
    return store, store.resolve(digest)


def test_layer_dirs_unpack_once(settings: Settings, two_layer_image) -> None:  # type: ignore[no-untyped-def]
    if os.geteuid() != 0:
        pytest.skip("overlay whiteouts (char 0/0, trusted.* xattrs) need root")
    store, image = two_layer_image
    dirs = layer_dirs(store, image, settings)
    assert [d.name for d in dirs] == [d[7:] for d in image.diff_ids]
    assert (dirs[0] / "etc/os").read_bytes() == b"base"
    assert os.lstat(dirs[1] / "tmp/junk").st_rdev == 0
    assert os.getxattr(dirs[1] / "var/cache", "trusted.overlay.opaque") == b"y"
    inode = os.stat(dirs[0] / "etc/os").st_ino
    again = layer_dirs(store, image, settings)
    assert again == dirs and os.stat(again[0] / "etc/os").st_ino == inode  # not unpacked twice
    assert not [p for p in (settings.layers_dir / "sha256").iterdir() if p.name.startswith(".tmp-")]
    assert prune(settings.layers_dir, image.diff_ids[:1], grace_s=0) == 1
    assert not dirs[1].exists() and dirs[0].exists()


def test_corrupt_layer_leaves_no_cache_entry(settings: Settings, two_layer_image) -> None:  # type: ignore[no-untyped-def]
    store, image = two_layer_image
    bad = type(image)(image.digest, image.manifest, image.config, image.layers,
                      ["sha256:" + "1" * 64, image.diff_ids[1]], image.ref)
    with pytest.raises(UnpackError, match="hashes to"):
        layer_dirs(store, bad, settings)
    assert list((settings.layers_dir / "sha256").iterdir()) == []


def test_flatten(tmp_path: Path, two_layer_image) -> None:  # type: ignore[no-untyped-def]
    store, image = two_layer_image
    root = flatten(store, image, tmp_path / "rootfs")
    assert (root / "etc/os").read_bytes() == b"base"
    assert (root / "app/main.py").exists()
    assert not (root / "tmp/junk").exists()
    assert os.listdir(root / "var/cache") == []
