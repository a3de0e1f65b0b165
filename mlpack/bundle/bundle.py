"""``Bundle``: a captured model on disk, loaded and verified."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlpack.bundle.manifest import MANIFEST_NAME, read_manifest, verify_files
from mlpack.bundle.predictor import OnnxPredictor, Predictor, PythonPredictor
from mlpack.bundle.spec import NPZ_MISSING, TableSchema, TensorSpec
from mlpack.errors import BundleError

__all__ = ["Bundle"]


@dataclass(frozen=True)
class Bundle:
    """A verified bundle directory. Make one with ``mlpack.capture`` or ``Bundle.load``."""

    path: Path
    manifest: dict[str, Any] = field(repr=False)

    @classmethod
    def load(cls, path: str | Path) -> "Bundle":
        """Loads ``path``, checking the manifest version, its digest and every file's sha256."""
        directory = Path(path).expanduser().resolve()
        manifest = read_manifest(directory)
        verify_files(directory, manifest["files"])
        model = manifest["model"]
        if not isinstance(model, dict) or model.get("file") not in manifest["files"]:
            raise BundleError(f"{directory}: the manifest names no model file", hint="capture the model again")
        if manifest["flavor"] not in ("onnx", "python"):
            raise BundleError(
                f"{directory}: unknown flavor {manifest['flavor']!r}", hint="upgrade mlpack or capture the model again"
            )
        try:
            bundle = cls(directory, manifest)
            bundle.inputs, bundle.outputs, bundle.table  # noqa: B018 - parse the schema now, not at first use
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{directory}: malformed schema in {MANIFEST_NAME} ({exc})", hint="capture the model again") from None
        return bundle

    def __repr__(self) -> str:
        return f"<Bundle {self.name} {self.flavor}/{self.framework} at {self.path}>"

    # -- manifest fields ---------------------------------------------------

    @property
    def name(self) -> str:
        return str(self.manifest["name"])

    @property
    def flavor(self) -> str:
        """``onnx`` or ``python``."""
        return str(self.manifest["flavor"])

    @property
    def framework(self) -> str:
        """Where the model came from: sklearn, torch, xgboost, lightgbm, onnx, python."""
        return str(self.manifest["framework"])

    @property
    def model_path(self) -> Path:
        return self.path / self.manifest["model"]["file"]

    @property
    def model_sha256(self) -> str:
        return str(self.manifest["files"][self.manifest["model"]["file"]])

    @property
    def inputs(self) -> list[TensorSpec]:
        return [TensorSpec.from_dict(d) for d in self.manifest["inputs"]]

    @property
    def outputs(self) -> list[TensorSpec]:
        return [TensorSpec.from_dict(d) for d in self.manifest["outputs"]]

    @property
    def table(self) -> TableSchema | None:
        """The table's (or text's) column schema; None for a tensor model."""
        return TableSchema.from_dict(self.manifest.get("table"))

    @property
    def requirements(self) -> list[str]:
        """The pinned lines of ``requirements.lock`` (``name==version``; the file's comments,
        which say why each package is there, left out)."""
        lock = self.path / "requirements.lock"
        lines = lock.read_text(encoding="utf-8").splitlines() if lock.is_file() else []
        return [pin for ln in lines if (pin := ln.split("#", 1)[0].strip())]

    @property
    def python_version(self) -> str:
        return str(self.manifest.get("environment", {}).get("python", ""))

    @property
    def parity(self) -> dict[str, Any]:
        return dict(self.manifest.get("parity") or {})

    @property
    def hooks_path(self) -> Path | None:
        hooks = self.manifest.get("hooks")
        return self.path / hooks if hooks else None

    def sample(self) -> dict[str, np.ndarray]:
        """The stored sample rows, one array per input name."""
        return self._npz(self.manifest.get("sample", "sample.npz"))

    def expected(self, *, preprocessed: bool = False) -> dict[str, np.ndarray]:
        """The original model's outputs on ``sample()`` (for checks of a built image);
        ``preprocessed``: on ``preprocess(sample())`` instead (KeyError when the bundle
        has no preprocess hook or predates it)."""
        if preprocessed:
            return self._npz(self.manifest["expected_preprocessed"])
        return self._npz(self.manifest.get("expected", "expected.npz"))

    def _npz(self, rel: str) -> dict[str, np.ndarray]:
        # allow_pickle stays False: string tensors are stored as unicode arrays.
        with np.load(self.path / rel, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        for key in [k for k in arrays if k.startswith(NPZ_MISSING)]:
            mask, name = arrays.pop(key), key[len(NPZ_MISSING):]
            if name in arrays and arrays[name].shape == mask.shape:
                values = arrays[name].astype(object)
                values[mask] = None
                arrays[name] = values
        return arrays

    # -- running -----------------------------------------------------------

    def load_predictor(self, threads: int | None = None, providers: list[str] | None = None) -> Predictor:
        """The model ready to run: onnxruntime for ONNX, the unpickled model for python."""
        data = self.model_path.read_bytes()
        # Hash the very bytes that are run: the file may change after load().
        if hashlib.sha256(data).hexdigest() != self.model_sha256.removeprefix("sha256:"):
            raise BundleError(
                f"{self.model_path} changed after the bundle was loaded", hint="capture the model again", path=str(self.path)
            )
        if self.flavor == "onnx":
            return OnnxPredictor(data, self.inputs, self.outputs, threads=threads, providers=providers)
        _check_distributions(self)
        return PythonPredictor(data, self.inputs, self.outputs, self.manifest["model"].get("entry", {}), threads=threads, table=self.table)

    def summary(self) -> str:
        """A few human-readable lines (what ``mlpack inspect`` prints)."""
        from mlpack.bundle.summary import summarize

        return summarize(self)


def _check_distributions(bundle: Bundle) -> None:
    """A pickle runs only beside the versions it was captured with (local labels aside)."""
    from importlib import metadata

    wanted = bundle.manifest["model"].get("distributions") or {}
    problems = []
    for dist, version in wanted.items():
        try:
            have = metadata.version(dist)
        except metadata.PackageNotFoundError:
            problems.append(f"{dist} is not installed (captured with {version})")
            continue
        # "2.13.0+cpu" and "2.13.0" are the same release built differently.
        if have.split("+")[0] != str(version).split("+")[0]:
            problems.append(f"{dist} {have} is installed, the model was captured with {version}")
    if problems:
        raise BundleError(
            f"{bundle.path}: the python-flavour model needs other packages: " + "; ".join(problems),
            hint="install the bundle's requirements.lock (pip install -r requirements.lock)",
            path=str(bundle.path),
        )
