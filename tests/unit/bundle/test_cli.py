"""`mlpack inspect` and `mlpack capture` from the command line."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from mlpack.bundle import Bundle
from mlpack.cli import main


def test_inspect_bundle_text(sklearn_bundle: Bundle, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(sklearn_bundle.path)]) == 0
    out = capsys.readouterr().out
    assert "bundle     iris" in out and "input: float32 [batch, 4]" in out and "parity     passed" in out


def test_inspect_bundle_json(sklearn_bundle: Bundle, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "--format", "json", str(sklearn_bundle.path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["name"] == "iris" and data["flavor"] == "onnx" and data["inputs"][0]["shape"] == [None, 4]


def test_inspect_tampered_bundle_is_an_error(sklearn_bundle: Bundle, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy = tmp_path / "b"
    shutil.copytree(sklearn_bundle.path, copy)
    (copy / "model.onnx").write_bytes(b"x")
    assert main(["inspect", str(copy)]) == 1
    assert "model.onnx was modified" in capsys.readouterr().err


def test_inspect_unknown_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "no-such-thing-anywhere"]) == 1
    assert "no bundle, image or container" in capsys.readouterr().err


def test_capture_from_files(sklearn_bundle: Bundle, sklearn_classifier, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "sample.npy", sklearn_classifier.X[:10])
    # a ready ONNX file
    assert main(["capture", str(sklearn_bundle.model_path), "--sample", str(tmp_path / "sample.npy"),
                 "-n", "from-onnx", "-o", str(tmp_path / "b1")]) == 0
    assert Bundle.load(tmp_path / "b1").framework == "onnx"
    # a pickled estimator, with hooks
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(sklearn_classifier.model))
    (tmp_path / "hooks.py").write_text("def postprocess(outputs):\n    return outputs\n")
    assert main(["capture", str(tmp_path / "model.pkl"), "--sample", str(tmp_path / "sample.npy"),
                 "-n", "from-pickle", "-o", str(tmp_path / "b2"), "--hooks", str(tmp_path / "hooks.py")]) == 0
    bundle = Bundle.load(tmp_path / "b2")
    assert bundle.framework == "sklearn" and bundle.hooks_path == bundle.path / "hooks.py"
    assert "bundle     from-pickle" in capsys.readouterr().out


def test_capture_bad_name_from_cli(sklearn_bundle: Bundle, sklearn_classifier, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "s.npy", sklearn_classifier.X[:3])
    assert main(["capture", str(sklearn_bundle.model_path), "--sample", str(tmp_path / "s.npy"), "-n", "Bad Name"]) == 1
    assert "not a valid image name component" in capsys.readouterr().err
