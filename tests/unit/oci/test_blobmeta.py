"""The push metadata cache: gzip twins and the repositories that hold a blob; bounded, torn-file safe."""

from __future__ import annotations

import json
from pathlib import Path

from mlpack.oci import blobmeta
from mlpack.oci.blobmeta import BlobMeta

A, B, C = ("sha256:" + c * 64 for c in "abc")


def test_twins_and_repositories_round_trip(tmp_path: Path) -> None:
    meta = BlobMeta(tmp_path / "cache" / "blobs.json")
    assert meta.gzip_twin(A) is None and meta.repositories("r:5000", A) == []
    meta.set_gzip_twin(A, B, 123)
    meta.add_repository("r:5000", "team/one", [A, B])
    meta.add_repository("r:5000", "team/two", [A])
    meta.add_repository("r:5000", "team/one", [A])  # again: moves to the front, no duplicate
    assert meta.gzip_twin(A) == (B, 123)
    assert BlobMeta(meta.path).repositories("r:5000", A) == ["team/one", "team/two"]
    meta.forget_repository("r:5000", "team/one", A)
    assert meta.repositories("r:5000", A) == ["team/two"] and meta.repositories("other", A) == []
    assert not list(meta.path.parent.glob(".blobs-*"))  # no temp file left behind


def test_a_damaged_or_hostile_file_reads_as_what_is_valid_in_it(tmp_path: Path) -> None:
    path = tmp_path / "blobs.json"
    meta = BlobMeta(path)
    path.write_text('{"gzip": {')  # torn
    assert meta.gzip_twin(A) is None
    path.write_text(json.dumps({
        "gzip": {A: [B, 5], "../../etc/passwd": [B, 1], C: ["../x", 1], B: [A, -1]},
        "repos": {"r": {A: ["ok", 7, None], "nope": ["x"]}, "s": "not a dict"},
    }))
    assert meta.gzip_twin(A) == (B, 5)
    assert meta.gzip_twin(C) is None and meta.gzip_twin(B) is None
    assert meta.repositories("r", A) == ["ok"] and meta.repositories("s", A) == []
    meta.add_repository("r", "new", [C])  # rewriting keeps only the valid part
    assert set(json.loads(path.read_text())["repos"]["r"]) == {A, C}


def test_sizes_are_bounded(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(blobmeta, "MAX_REPOS", 2)
    monkeypatch.setattr(blobmeta, "MAX_BLOBS", 2)
    monkeypatch.setattr(blobmeta, "MAX_TWINS", 2)
    meta = BlobMeta(tmp_path / "blobs.json")
    for repo in ("a", "b", "c"):
        meta.add_repository("r", repo, [A])
    assert meta.repositories("r", A) == ["c", "b"]
    meta.add_repository("r", "a", [B, C])
    assert meta.repositories("r", A) == [] and meta.repositories("r", C) == ["a"]  # the oldest blob went
    for digest in (A, B, C):
        meta.set_gzip_twin(digest, A, 1)
    assert meta.gzip_twin(A) is None and meta.gzip_twin(C) == (A, 1)


def test_the_file_stays_under_its_read_limit(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(blobmeta, "_MAX_FILE", 4096)
    meta = BlobMeta(tmp_path / "blobs.json")
    digests = [f"sha256:{i:064x}" for i in range(40)]
    for digest in digests:
        meta.add_repository("r", "some/rather/long/repository/name", [digest])
    assert len(meta.path.read_bytes()) <= 2048
    assert meta.repositories("r", digests[-1]) == ["some/rather/long/repository/name"]  # the newest stay
    assert meta.repositories("r", digests[0]) == []
