"""Bundle.load verifies the manifest version, its digest and every file's hash."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from mlpack.bundle import FORMAT_VERSION, Bundle, TensorSpec
from mlpack.bundle.manifest import manifest_digest
from mlpack.errors import BundleError, CaptureError


@pytest.fixture
def copy(sklearn_bundle: Bundle, tmp_path: Path) -> Path:
    target = tmp_path / "b"
    shutil.copytree(sklearn_bundle.path, target)
    return target


def _rewrite(path: Path, change: Any, *, redigest: bool) -> None:
    manifest = yaml.safe_load((path / "mlpack.yaml").read_text())
    change(manifest)
    if redigest:
        manifest["digest"] = manifest_digest(manifest)
    (path / "mlpack.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))


def test_attributes_follow_the_contract(copy: Path) -> None:
    bundle = Bundle.load(copy)
    assert bundle.path == copy.resolve() and bundle.name == "iris"
    assert bundle.flavor == "onnx" and bundle.framework == "sklearn"
    assert bundle.model_path == copy.resolve() / "model.onnx" and len(bundle.model_sha256) == 64
    assert bundle.inputs == [TensorSpec("input", "float32", (None, 4))]
    assert [(o.name, o.dtype, o.shape) for o in bundle.outputs] == [
        ("label", "int64", (None,)),
        ("probabilities", "float32", (None, 3)),
    ]
    assert bundle.manifest["format_version"] == FORMAT_VERSION
    assert bundle.python_version.count(".") == 2
    assert bundle.parity["passed"] is True and bundle.hooks_path is None
    assert all("==" in line for line in bundle.requirements)
    sample = bundle.sample()
    # The whole capture sample is stored (up to SAMPLE_ROWS rows): the image is checked on all of it.
    assert list(sample) == ["input"] and sample["input"].shape == (bundle.parity["rows"], 4)
    assert sample["input"].dtype == np.float32
    assert set(bundle.expected()) == {"label", "probabilities"}
    assert "iris" in bundle.summary() and "parity     passed" in bundle.summary()


def test_modified_model_file_fails(copy: Path) -> None:
    with open(copy / "model.onnx", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(BundleError, match="model.onnx was modified") as info:
        Bundle.load(copy)
    assert "capture the model again" in info.value.hint


def test_modified_sample_fails(copy: Path) -> None:
    np.savez(copy / "sample.npz", input=np.zeros((5, 4), np.float32))
    with pytest.raises(BundleError, match="sample.npz was modified"):
        Bundle.load(copy)


def test_missing_file_is_incomplete(copy: Path) -> None:
    (copy / "requirements.lock").unlink()
    with pytest.raises(BundleError, match="incomplete"):
        Bundle.load(copy)


def test_hand_edited_manifest_fails(copy: Path) -> None:
    text = (copy / "mlpack.yaml").read_text().replace("passed: true", "passed: false", 1)
    (copy / "mlpack.yaml").write_text(text)
    with pytest.raises(BundleError, match="modified after capture"):
        Bundle.load(copy)


def test_newer_format_version_asks_for_an_upgrade(copy: Path) -> None:
    _rewrite(copy, lambda m: m.update(format_version=FORMAT_VERSION + 1), redigest=True)
    with pytest.raises(BundleError, match="newer") as info:
        Bundle.load(copy)
    assert "upgrade mlpack" in info.value.hint


def test_manifest_cannot_point_outside_the_bundle(copy: Path, tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("x")
    _rewrite(copy, lambda m: m["files"].update({"../secret": "0" * 64}), redigest=True)
    with pytest.raises(BundleError, match="invalid file name"):
        Bundle.load(copy)


@pytest.mark.parametrize("content", ["", "- a\n- b\n", "{{{{", "format_version: 1\n"])
def test_garbage_manifests_fail(copy: Path, content: str) -> None:
    (copy / "mlpack.yaml").write_text(content)
    with pytest.raises(BundleError):
        Bundle.load(copy)


def test_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="no such directory"):
        Bundle.load(tmp_path / "nope")
    with pytest.raises(BundleError, match="mlpack.yaml is missing"):
        Bundle.load(tmp_path)
    assert issubclass(BundleError, CaptureError)


def test_model_changed_after_load_is_refused(copy: Path) -> None:
    bundle = Bundle.load(copy)
    (copy / "model.onnx").write_bytes(b"not a model")
    with pytest.raises(BundleError, match="changed after the bundle was loaded"):
        bundle.load_predictor()


def test_mlpack_exports_bundle(copy: Path) -> None:
    import mlpack

    assert mlpack.Bundle is Bundle
    assert mlpack.Bundle.load(copy).name == "iris"


def test_python_bundle_refuses_other_package_versions(sklearn_python_bundle: Bundle, tmp_path: Path) -> None:
    target = tmp_path / "py"
    shutil.copytree(sklearn_python_bundle.path, target)
    Bundle.load(target).load_predictor()  # the versions it was captured with: fine

    def downgrade(manifest: dict) -> None:
        manifest["model"]["distributions"]["scikit-learn"] = "0.20.0"
        manifest["model"]["distributions"]["not-a-real-dist-xyz"] = "1.0"

    _rewrite(target, downgrade, redigest=True)
    with pytest.raises(BundleError, match="scikit-learn .* captured with 0.20.0; not-a-real-dist-xyz is not installed") as info:
        Bundle.load(target).load_predictor()
    assert "requirements.lock" in info.value.hint
