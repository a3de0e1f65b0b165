"""mlpack.yaml: digest, YAML round trip, verification of listed files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from mlpack.bundle.manifest import FORMAT_VERSION, read_manifest, verify_files, write_manifest
from mlpack.errors import BundleError


def _manifest(tmp_path: Path, **extra: object) -> dict:
    (tmp_path / "model.onnx").write_bytes(b"model")
    return {
        "format_version": FORMAT_VERSION, "name": "m", "flavor": "onnx", "framework": "onnx",
        "model": {"file": "model.onnx"}, "inputs": [], "outputs": [],
        "files": {"model.onnx": hashlib.sha256(b"model").hexdigest()}, **extra,
    }


def test_round_trip_with_awkward_floats(tmp_path: Path) -> None:
    written = write_manifest(tmp_path, _manifest(tmp_path, parity={"a": float("inf"), "b": float("nan"), "c": 1e-300, "d": 0.1}))
    read = read_manifest(tmp_path)
    assert read["digest"] == written["digest"] and read["digest"].startswith("sha256:")
    assert read["parity"]["a"] == float("inf") and read["parity"]["d"] == 0.1
    verify_files(tmp_path, read["files"])


def test_any_edit_changes_the_digest(tmp_path: Path) -> None:
    write_manifest(tmp_path, _manifest(tmp_path))
    text = (tmp_path / "mlpack.yaml").read_text()
    (tmp_path / "mlpack.yaml").write_text(text.replace("name: m", "name: n"))
    with pytest.raises(BundleError, match="modified after capture"):
        read_manifest(tmp_path)


def test_missing_keys_and_old_versions(tmp_path: Path) -> None:
    (tmp_path / "mlpack.yaml").write_text("format_version: 0\n")
    with pytest.raises(BundleError, match="unknown format_version 0"):
        read_manifest(tmp_path)
    (tmp_path / "mlpack.yaml").write_text("format_version: one\n")
    with pytest.raises(BundleError, match="not an integer"):
        read_manifest(tmp_path)
    (tmp_path / "mlpack.yaml").write_text("format_version: 1\nname: x\n")
    with pytest.raises(BundleError, match="lacks flavor"):
        read_manifest(tmp_path)


def test_symlinked_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "real").write_bytes(b"model")
    (tmp_path / "model.onnx").symlink_to(tmp_path / "real")
    with pytest.raises(BundleError, match="missing"):
        verify_files(tmp_path, {"model.onnx": hashlib.sha256(b"model").hexdigest()})
    with pytest.raises(BundleError, match="lists no files"):
        verify_files(tmp_path, {})
