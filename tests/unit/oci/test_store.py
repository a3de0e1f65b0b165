"""The OCI layout store: atomic blobs, index, tags, resolve, gc, verify."""

from __future__ import annotations

import ast
import json
import os
import time
from pathlib import Path

import pytest

import mlpack.oci
from mlpack.errors import ImageNotFound, StoreError
from mlpack.oci.layer import Entry, write_entries
from mlpack.oci.layout import Store
from mlpack.oci.media import OCI_MANIFEST, REF_NAME, sha256_digest
from mlpack.oci.validate import verify


def _image(store: Store, text: bytes = b"hello", ref: str | None = "localhost/test/app:1") -> str:
    layer = write_entries(store, [Entry("app/hello.txt", data=text, mtime=1)])
    return store.put_image({"config": {"Cmd": ["cat", "/app/hello.txt"]}}, [layer], ref=ref)


def test_layout_files_and_resolve(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    digest = _image(store)
    assert json.loads((tmp_path / "s/oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((tmp_path / "s/index.json").read_text())
    assert index["manifests"][0]["annotations"][REF_NAME] == "localhost/test/app:1"
    for name in os.listdir(tmp_path / "s/blobs/sha256"):
        assert sha256_digest((tmp_path / "s/blobs/sha256" / name).read_bytes()) == "sha256:" + name
    img = store.resolve("localhost/test/app:1")
    assert img.digest == digest and img.media_type == OCI_MANIFEST
    assert img.config.blob["config"]["Cmd"] == ["cat", "/app/hello.txt"]
    assert img.config.platform == {"architecture": "amd64", "os": "linux"}
    assert len(img.diff_ids) == len(img.layers) == 1
    assert store.resolve(digest).digest == digest
    assert store.resolve(digest[7:19]).digest == digest   # short manifest digest
    assert store.resolve(img.id[7:19]).digest == digest   # docker-style image id
    assert store.resolve("test/app:1").digest == digest   # unqualified names fall back to localhost/


def test_sha256_digest_is_sha256_on_both_sides_of_the_small_blob_cut() -> None:
    """Small blobs are hashed by CPython's own sha256, larger ones by OpenSSL's: the same digests."""
    import hashlib

    from mlpack.oci import media

    for size in (0, 1, 4096, media._SMALL_BLOB, media._SMALL_BLOB + 1, 3 << 20):
        data = os.urandom(size)
        assert sha256_digest(data) == "sha256:" + hashlib.sha256(data).hexdigest(), size


def test_same_content_same_digests(tmp_path: Path) -> None:
    a = _image(Store(tmp_path / "a"))
    b = _image(Store(tmp_path / "b"))
    assert a == b


def test_tag_delete_and_gc(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    digest = _image(store)
    store.tag("localhost/test/app:1", "example.com/team/app:v2")
    assert store.resolve("example.com/team/app:v2").digest == digest
    assert {s.ref for s in store.list()} == {"localhost/test/app:1", "example.com/team/app:v2"}
    assert all(s.size > 0 for s in store.list())
    store.delete("localhost/test/app:1")
    assert store.resolve("example.com/team/app:v2").digest == digest
    with pytest.raises(ImageNotFound):
        store.resolve("localhost/test/app:1")
    assert store.gc(grace_s=0) == (0, 0)  # still referenced by the other tag
    store.delete("example.com/team/app:v2")
    count, freed = store.gc(grace_s=0)
    assert count == 3 and freed > 0      # manifest, config, layer
    assert os.listdir(tmp_path / "s/blobs/sha256") == []
    assert verify(store).ok


def test_retag_moves_the_name(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    first = _image(store, b"one")
    second = _image(store, b"two")
    assert first != second
    assert store.resolve("localhost/test/app:1").digest == second
    assert len(store.index()["manifests"]) == 1


def test_gc_spares_young_blobs(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    store.put_blob(b"orphan")
    assert store.gc(grace_s=3600) == (0, 0)
    assert store.gc(grace_s=0)[0] == 1


def test_blob_writer_verifies(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    with pytest.raises(StoreError, match="does not match"):
        store.put_blob(b"data", sha256_digest(b"other"))
    with pytest.raises(StoreError, match="larger than expected"):
        with store.blob_writer(sha256_digest(b"abc"), 3) as w:
            w.write(b"abcd")
    with pytest.raises(StoreError, match="does not match"):
        store.put_blob_stream([b"ab", b"d"], sha256_digest(b"abc"), 3)
    leftovers = [n for n in os.listdir(tmp_path / "s/blobs/sha256")]
    assert leftovers == []  # failed writes leave nothing behind


def test_verify_finds_corruption_and_missing(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    img = store.resolve(_image(store))
    layer = store.blob_path(img.layers[0]["digest"])
    layer.write_bytes(b"tampered")
    report = verify(store)
    assert not report.ok and any("hashes to" in p for p in report.problems)
    layer.unlink()
    report = verify(store)
    assert any("missing blob" in p for p in report.problems)
    with pytest.raises(StoreError):
        store.read_blob(img.layers[0]["digest"])


def test_verify_reports_temp_files_as_garbage_not_corruption(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    _image(store)
    tmp = tmp_path / "s/blobs/sha256/.tmp-123-abc"
    tmp.write_bytes(b"half a blob")
    old = time.time() - 3600
    os.utime(tmp, (old, old))
    report = verify(store)
    assert report.ok and str(tmp) in report.garbage
    store.gc(grace_s=60)
    assert not tmp.exists()


def test_manifest_needs_its_blobs(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "x", "digest": sha256_digest(b"nope"), "size": 4}, "layers": []}
    with pytest.raises(StoreError, match="not in the store"):
        store.put_manifest(json.dumps(manifest).encode())
    assert store.index()["manifests"] == []


def test_missing_store_is_empty(tmp_path: Path) -> None:
    store = Store(tmp_path / "none")
    assert store.list() == []
    assert verify(store).ok
    with pytest.raises(ImageNotFound):
        store.resolve("python:3.11")


def test_concurrent_writers_keep_every_tag(tmp_path: Path) -> None:
    """Processes tagging at once must not lose each other's index updates (flock)."""
    store = Store(tmp_path / "s")
    _image(store, ref=None)
    digest = store.index()["manifests"][0]["digest"]
    pids = []
    for i in range(4):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                for j in range(10):
                    Store(tmp_path / "s").tag(digest, f"localhost/t/p{i}:{j}")
            finally:
                os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
    names = {s.ref for s in store.list()}
    assert {f"localhost/t/p{i}:{j}" for i in range(4) for j in range(10)} <= names



STORE_PIECES = ("layout", "cas", "blobs", "refs", "platforms", "gc", "image", "validate")


def _oci_imports(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_store_pieces_are_small_and_validate_is_never_imported_back() -> None:
    root = Path(mlpack.oci.__file__).parent
    for name in STORE_PIECES:
        source = (root / f"{name}.py").read_text()
        assert len(source.splitlines()) < 200, f"mlpack/oci/{name}.py has grown past 200 lines: split it"
    importers = [p.name for p in sorted(root.rglob("*.py"))
                 if "mlpack.oci.validate" in _oci_imports(ast.parse(p.read_text()))]
    assert importers == [], f"the store's modules must not import validate: {importers}"
