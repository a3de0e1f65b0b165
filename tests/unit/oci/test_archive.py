"""Archives in and out without external tools (skopeo/umoci round trips are integration tests)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from mlpack.errors import StoreError
from mlpack.oci.archive import load, save
from mlpack.oci.layer import Entry, write_entries
from mlpack.oci.layout import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "s")
    layer = write_entries(s, [Entry("a", data=b"a")])
    s.put_image({"config": {"Cmd": ["a"]}}, [layer], ref="localhost/arc/img:1")
    return s


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive", "oci-dir"])
def test_round_trip(tmp_path: Path, store: Store, fmt: str) -> None:
    out = tmp_path / f"out-{fmt}"
    save(store, ["localhost/arc/img:1"], out, format=fmt)
    [image] = load(Store(tmp_path / "t"), out)
    original = store.resolve("localhost/arc/img:1")
    assert image.ref == "localhost/arc/img:1" and image.diff_ids == original.diff_ids
    if fmt != "docker-archive":
        assert image.digest == original.digest


def _tar(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_hostile_archives_are_refused(tmp_path: Path) -> None:
    target = Store(tmp_path / "t")
    bad_path = _tar(tmp_path / "a.tar", {"manifest.json": json.dumps(
        [{"Config": "../../etc/passwd", "RepoTags": [], "Layers": []}]).encode()})
    with pytest.raises(StoreError, match="has no file"):
        load(target, bad_path)
    layout = tmp_path / "layout"
    layout.mkdir()
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (layout / "index.json").write_text(json.dumps({"manifests": [{"digest": "sha256:../../../etc/passwd"}]}))
    with pytest.raises(StoreError, match="malformed digest"):
        load(target, layout)
    (layout / "manifest.json").write_text(json.dumps([{"Config": "/etc/passwd", "Layers": []}]))
    with pytest.raises(StoreError, match="outside"):
        load(target, layout)
    cfg = json.dumps({"rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]}}).encode()
    wrong_layer = _tar(tmp_path / "b.tar", {"c.json": cfg, "l.tar": b"\0" * 1024, "manifest.json": json.dumps(
        [{"Config": "c.json", "RepoTags": ["x:1"], "Layers": ["l.tar"]}]).encode()})
    with pytest.raises(StoreError, match="does not match its diff_id"):
        load(target, wrong_layer)
    assert target.index()["manifests"] == []
