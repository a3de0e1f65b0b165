"""Finding 6: hostile images against unpack, load and the store, with the host checked afterwards.

* a 10 KiB layer holding a sparse file of 4 GiB apparent size, under a 1 MiB
  cap: refused before the file is written (tarfile reports the real size);
* a config of more than 8 MiB: refused at load and at pull, never stored;
* a layer that escapes its root: refused at `mlpack load` with the message
  `run` gives, and the image gets no name.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from mlpack.errors import ImageNotFound, RegistryError, StoreError, UnpackError
from mlpack.oci.archive import load
from mlpack.oci.layout import Store
from mlpack.oci.media import MAX_CONFIG_BYTES, OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, canonical_json
from mlpack.oci.unpack import UnpackOptions, apply_layer


def _sparse_layer(tmp: Path, apparent: int) -> bytes:
    src = tmp / "src"
    src.mkdir()
    with open(src / "holes", "wb") as f:
        f.truncate(apparent)
        f.seek(apparent // 2)
        f.write(b"x")  # one data block in the middle, the rest holes
    tar = tmp / "sparse.tar"
    subprocess.run(["tar", "--sparse", "--format=gnu", "-C", str(src), "-cf", str(tar), "holes"], check=True)
    return tar.read_bytes()


def test_sparse_file_counts_its_apparent_size_against_the_cap(tmp_path: Path) -> None:
    layer = _sparse_layer(tmp_path, 4 << 30)
    assert len(gzip.compress(layer)) < 10 * 1024  # 4 GiB in a ~10 KiB layer
    root = tmp_path / "root"
    with pytest.raises(UnpackError, match="larger than the cap.*sparse holes included"):
        apply_layer(root, io.BytesIO(layer), UnpackOptions(max_size=1 << 20))
    written = sum(os.stat(p).st_blocks * 512 for p in root.rglob("*"))
    assert not (root / "holes").exists() and written < 1 << 20
    # Within the cap the same kind of layer unpacks, holes and all.
    (tmp_path / "ok").mkdir()
    small = _sparse_layer(tmp_path / "ok", 512 << 10)
    apply_layer(tmp_path / "ok-root", io.BytesIO(small), UnpackOptions(max_size=1 << 20))
    assert (tmp_path / "ok-root" / "holes").stat().st_size == 512 << 10


def _oci_dir(path: Path, layer_tar: bytes, config: dict) -> Path:
    """An OCI layout directory with one image: ``layer_tar`` (gzipped) and ``config``."""
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return "sha256:" + digest

    gz = gzip.compress(layer_tar)
    config = {"architecture": "amd64", "os": "linux",
              "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer_tar).hexdigest()]},
              **config}
    cfg = canonical_json(config)
    manifest = canonical_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                               "config": {"mediaType": OCI_CONFIG, "digest": put(cfg), "size": len(cfg)},
                               "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": put(gz), "size": len(gz)}]})
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": put(manifest), "size": len(manifest),
         "annotations": {"org.opencontainers.image.ref.name": "localhost/hostile/img:1"}}]}))
    return path


def _escaping_layer(victim: Path) -> bytes:
    """A symlink to the victim's directory, then a file written through it."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        link = tarfile.TarInfo("etc")
        link.type, link.linkname = tarfile.SYMTYPE, str(victim)
        tar.addfile(link)
        data = b"planted\n"
        info = tarfile.TarInfo("etc/planted")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _what_run_says(src: Path, root: Path) -> str:
    """The error unpacking the archive's layer gives, with the options `run` unpacks with."""
    blob = next(p for p in (src / "blobs" / "sha256").iterdir() if p.read_bytes()[:2] == b"\x1f\x8b")
    with pytest.raises(UnpackError) as err:
        apply_layer(root, blob, UnpackOptions(whiteouts="overlay"))
    return err.value.message


def test_hostile_layer_is_refused_at_load_with_runs_message(tmp_path: Path) -> None:
    victim = tmp_path / "host-dir"
    victim.mkdir()
    src = _oci_dir(tmp_path / "archive", _escaping_layer(victim), {"config": {"Cmd": ["true"]}})
    store = Store(tmp_path / "store")
    store.init()
    layers = tmp_path / "layers"
    with pytest.raises(UnpackError) as at_load:
        load(store, src, layers_dir=layers)
    assert not (victim / "planted").exists()  # the host directory is untouched
    with pytest.raises(ImageNotFound):
        store.resolve("localhost/hostile/img:1")  # no name for an image that cannot run
    assert at_load.value.message == _what_run_says(src, tmp_path / "run-root")
    assert not list(layers.glob("sha256/*"))  # no half-unpacked layer is kept


def test_oversized_config_is_refused_at_load(tmp_path: Path) -> None:
    env = ["X=" + "a" * 1000] * (MAX_CONFIG_BYTES // 1000 + 10)
    src = _oci_dir(tmp_path / "archive", _escaping_layer(tmp_path / "unused"), {"config": {"Env": env}})
    store = Store(tmp_path / "store")
    store.init()
    with pytest.raises(StoreError, match="more than the cap"):
        load(store, src, layers_dir=tmp_path / "layers")
    stored = sum(p.stat().st_size for p in (tmp_path / "store").rglob("*") if p.is_file())
    assert stored < 1 << 20  # the config never reached the store


@pytest.mark.integration
@pytest.mark.registry
def test_oversized_config_is_refused_at_pull(tmp_path: Path, local_registry) -> None:  # type: ignore[no-untyped-def]
    from mlpack.oci.layer import write_dir
    from mlpack.oci.registry import pull, push
    from mlpack.settings import Settings

    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "f").write_text("x")
    env = ["X=" + "a" * 1000] * (MAX_CONFIG_BYTES // 1000 + 10)
    ref = local_registry.ref("hostile/bigconfig:1")
    pusher = Settings.from_env({"MLPACK_HOME": str(tmp_path / "attacker"),
                                "MLPACK_INSECURE_REGISTRIES": ref.split("/")[0]})
    store = Store(pusher.store_dir)
    store.init()
    store.put_image({"config": {"Env": env}}, [write_dir(store, tmp_path / "tree")], ref="localhost/hostile/big:1")
    push("localhost/hostile/big:1", ref, settings=pusher)  # a registry serves whatever it was given
    victim = Settings.from_env({"MLPACK_HOME": str(tmp_path / "victim"),
                                "MLPACK_INSECURE_REGISTRIES": ref.split("/")[0]})
    with pytest.raises(RegistryError, match="more than the cap"):
        pull(ref, settings=victim)
    assert sum(p.stat().st_size for p in (tmp_path / "victim").rglob("*") if p.is_file()) < 1 << 20


def test_mlpack_load_cli_refuses_the_hostile_archive(tmp_path: Path) -> None:
    victim = tmp_path / "host-dir"
    victim.mkdir()
    src = _oci_dir(tmp_path / "archive", _escaping_layer(victim), {"config": {"Cmd": ["true"]}})
    env = {**os.environ, "MLPACK_HOME": str(tmp_path / "home"), "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    loaded = subprocess.run([sys.executable, "-m", "mlpack", "load", "-i", str(src)], env=env, capture_output=True,
                            text=True, timeout=120)
    assert loaded.returncode != 0 and _what_run_says(src, tmp_path / "run-root") in loaded.stderr, loaded.stderr
    assert "Traceback" not in loaded.stderr
    listed = subprocess.run([sys.executable, "-m", "mlpack", "images"], env=env, capture_output=True, text=True,
                            timeout=120)
    assert "hostile" not in listed.stdout
    assert not (victim / "planted").exists()
