"""A small bundle stand-in for render tests: render() needs only the Bundle
attributes of the contract (docs/interfaces.md §1) and the directory."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

LOCK = [
    "numpy==2.4.6",
    "onnxruntime==1.32.0",
    "PyYAML==6.0.4",
    "fastapi==0.165.0",
    "uvicorn==0.54.0",
]


@dataclass
class StubBundle:
    path: Path
    name: str = "iris-lr"
    flavor: str = "onnx"
    framework: str = "sklearn"
    python_version: str = "3.11.7"
    requirements: list[str] = field(default_factory=lambda: list(LOCK))
    parity: dict[str, Any] = field(default_factory=lambda: {"checked": True, "passed": True, "rows": 5})
    manifest: dict[str, Any] = field(default_factory=dict)
    hooks_path: Path | None = None

    @property
    def model_path(self) -> Path:
        return self.path / "model.onnx"

    @property
    def model_sha256(self) -> str:
        return hashlib.sha256(self.model_path.read_bytes()).hexdigest()


@pytest.fixture
def stub_bundle(tmp_path: Path) -> StubBundle:
    root = tmp_path / "bundle"
    root.mkdir()
    (root / "model.onnx").write_bytes(b"not really onnx, render never opens it")
    (root / "mlpack.yaml").write_text("format_version: 1\nname: iris-lr\n")
    (root / "requirements.lock").write_text("\n".join(LOCK) + "\n")
    (root / "model.onnx").chmod(0o600)  # render must still make it readable in the image
    return StubBundle(path=root)
