"""skopeo and umoci accept what mlpack writes, and mlpack accepts what they write."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from mlpack.oci.archive import load, save
from mlpack.oci.layer import Entry, write_entries
from mlpack.oci.image import Image
from mlpack.oci.layout import Store
from mlpack.oci.registry import pull, push
from mlpack.settings import Settings
from mlpack.oci.validate import verify
from tests.conftest import require_tool


def _run(*cmd: str) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stderr}"
    return proc.stdout


@pytest.fixture
def small(tmp_path: Path) -> tuple[Store, Image]:
    store = Store(tmp_path / "store")
    layers = [
        write_entries(store, [Entry("etc/greeting", data=b"hello"), Entry("bin/tool", data=os.urandom(200_000), mode=0o755),
                              Entry("lib/link", "symlink", linkname="../bin/tool")]),
        write_entries(store, [Entry("etc/greeting", "whiteout"), Entry("app/model.bin", data=os.urandom(100_000))]),
    ]
    digest = store.put_image({"config": {"Cmd": ["/bin/tool"], "Env": ["A=1"]}}, layers, ref="localhost/fmt/small:1")
    return store, store.resolve(digest)


def _same_content(a: Image, b: Image) -> None:
    assert a.diff_ids == b.diff_ids
    assert a.config.blob["config"] == b.config.blob["config"]


def test_oci_dir_to_skopeo_and_umoci(tmp_path: Path, small: tuple[Store, Image]) -> None:
    skopeo, umoci = require_tool("skopeo"), require_tool("umoci")
    store, image = small
    out = tmp_path / "layout"
    save(store, ["localhost/fmt/small:1"], out, format="oci-dir")
    info = json.loads(_run(skopeo, "inspect", f"oci:{out}:localhost/fmt/small:1"))
    assert info["Digest"] == image.digest and len(info["Layers"]) == 2
    # the store itself is an OCI layout skopeo reads directly
    assert json.loads(_run(skopeo, "inspect", f"oci:{store.root}:localhost/fmt/small:1"))["Digest"] == image.digest
    _run(umoci, "tag", "--image", f"{out}:localhost/fmt/small:1", "short")
    bundle = tmp_path / "bundle"
    _run(umoci, "unpack", "--image", f"{out}:short", str(bundle))
    rootfs = bundle / "rootfs"
    assert not (rootfs / "etc/greeting").exists()  # whited out by layer 2
    assert (rootfs / "app/model.bin").stat().st_size == 100_000
    assert os.readlink(rootfs / "lib/link") == "../bin/tool"
    # umoci writes a new layer; mlpack reads the result
    (rootfs / "added-by-umoci").write_text("umoci")
    _run(umoci, "repack", "--image", f"{out}:repacked", str(bundle))
    back = load(Store(tmp_path / "s2"), out)
    names = {i.ref for i in back}
    assert "docker.io/library/short:latest" in names
    repacked = next(i for i in back if i.ref and "repacked" in i.ref)
    assert repacked.diff_ids[:2] == image.diff_ids and len(repacked.diff_ids) == 3


def test_archives_both_ways_with_skopeo(tmp_path: Path, small: tuple[Store, Image]) -> None:
    skopeo = require_tool("skopeo")
    store, image = small
    docker_tar = tmp_path / "img.tar"
    save(store, ["localhost/fmt/small:1"], docker_tar, format="docker-archive")
    manifest = json.loads(subprocess.run(["tar", "-xOf", str(docker_tar), "manifest.json"], capture_output=True).stdout)
    assert manifest[0]["RepoTags"] == ["localhost/fmt/small:1"] and len(manifest[0]["Layers"]) == 2
    # skopeo reads our docker-archive and writes an OCI layout, a docker-archive and an oci-archive
    _run(skopeo, "copy", f"docker-archive:{docker_tar}", f"oci:{tmp_path / 'from-skopeo'}:copied")
    _run(skopeo, "copy", f"docker-archive:{docker_tar}", f"docker-archive:{tmp_path / 'skopeo.tar'}:x/y:z")
    oci_tar = tmp_path / "img-oci.tar"
    save(store, ["localhost/fmt/small:1"], oci_tar, format="oci-archive")
    _run(skopeo, "copy", f"oci-archive:{oci_tar}", f"oci-archive:{tmp_path / 'skopeo-oci.tar'}:again")
    target = Store(tmp_path / "loaded")
    [a] = load(target, tmp_path / "from-skopeo")
    [b] = load(target, tmp_path / "skopeo.tar")
    [c] = load(target, tmp_path / "skopeo-oci.tar", ref="localhost/fmt/again:1")
    [d] = load(target, docker_tar)
    for img in (a, b, c, d):
        _same_content(img, image)
    assert c.digest == image.digest  # skopeo kept the manifest bytes as they were
    assert b.ref == "docker.io/x/y:z" and d.ref == "localhost/fmt/small:1"
    assert verify(target).ok


def test_registry_with_skopeo_both_ways(tmp_path: Path, small: tuple[Store, Image], local_registry) -> None:  # type: ignore[no-untyped-def]
    skopeo = require_tool("skopeo")
    store, image = small
    settings = Settings.from_env({"MLPACK_HOME": str(tmp_path / "home")})
    # mlpack push -> skopeo pulls it into every format -> mlpack reads them
    digest = push(image, local_registry.ref("fmt/pushed:1"), settings=settings, store=store)
    src = f"docker://{local_registry.ref('fmt/pushed:1')}"
    _run(skopeo, "copy", "--src-tls-verify=false", src, f"oci:{tmp_path / 'oci'}:p")
    _run(skopeo, "copy", "--src-tls-verify=false", src, f"docker-archive:{tmp_path / 'd.tar'}:fmt/p:1")
    target = Store(tmp_path / "t")
    [a] = load(target, tmp_path / "oci")
    [b] = load(target, tmp_path / "d.tar")
    assert a.digest == digest
    _same_content(b, image)
    # skopeo pushes from mlpack's store -> mlpack pulls by digest
    _run(skopeo, "copy", "--dest-tls-verify=false", f"oci:{store.root}:localhost/fmt/small:1",
         f"docker://{local_registry.ref('fmt/by-skopeo:1')}")
    pulled = pull(local_registry.ref("fmt/by-skopeo:1"), settings=settings)
    _same_content(pulled, image)
    assert pulled.digest == image.digest


def test_docker_hub_style_index_is_resolved(tmp_path: Path, small: tuple[Store, Image], local_registry) -> None:  # type: ignore[no-untyped-def]
    """A multi-arch index pushed by skopeo: pull picks linux/amd64."""
    skopeo = require_tool("skopeo")
    store, image = small
    layout = tmp_path / "multi"
    save(store, ["localhost/fmt/small:1"], layout, format="oci-dir")
    idx = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"mediaType": image.media_type, "digest": image.digest, "size": Store(layout).blob_size(image.digest),
         "platform": {"architecture": "amd64", "os": "linux"}}]}
    idx_digest = Store(layout).put_blob(json.dumps(idx).encode())
    index = json.loads((layout / "index.json").read_text())
    index["manifests"] = [{"mediaType": idx["mediaType"], "digest": idx_digest, "size": len(json.dumps(idx)),
                           "annotations": {"org.opencontainers.image.ref.name": "multi"}}]
    (layout / "index.json").write_text(json.dumps(index))
    _run(skopeo, "copy", "--all", "--dest-tls-verify=false", f"oci:{layout}:multi",
         f"docker://{local_registry.ref('fmt/multi:1')}")
    settings = Settings.from_env({"MLPACK_HOME": str(tmp_path / "home")})
    assert pull(local_registry.ref("fmt/multi:1"), settings=settings).digest == image.digest
