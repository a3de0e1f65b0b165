"""``capture``: a model in the kernel → a verified bundle directory.

Steps: pick the framework adapter, check the name, the target path and the
sample, convert (ONNX where it can, else the python flavour), write the
files into a staging directory next to the target, load that staging
bundle the way the server will and run the parity check through it, record
the result, then move the bundle into place.
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from mlpack.bundle import environment as env
from mlpack.bundle.bundle import Bundle
from mlpack.bundle.frameworks import CaptureOptions, ConversionFailed, Prepared, select_adapter
from mlpack.bundle.hooks import HookFailed, load_source
from mlpack.bundle.manifest import FORMAT_VERSION, MANIFEST_NAME, sha256_file, write_manifest
from mlpack.bundle.parity import compare, worst_line
from mlpack.bundle.predictor import ort_specs
from mlpack.bundle.spec import NPZ_MISSING, TensorSpec, default_name, dtype_name, parse_dynamic_axes, validate_name
from mlpack.errors import BundleError, CaptureError

__all__ = ["capture", "SAMPLE_ROWS", "PARITY_MAX_ROWS"]

FLAVORS = ("auto", "onnx", "python")
# Provenance recorded for ONNX bundles: the training library and its converter.
CONVERTED_WITH = {
    "sklearn": ("scikit-learn", "skl2onnx", "onnx"),
    "torch": ("torch", "onnx"),
    "xgboost": ("xgboost", "onnxmltools", "onnx"),
    "lightgbm": ("lightgbm", "onnxmltools", "onnx"),
    "onnx": ("onnx",),
}
SAMPLE_ROWS = 256  # rows kept in sample.npz (documentation, OpenAPI example, the image's parity check)
PARITY_MAX_ROWS = 10_000  # the parity check runs on at most this many sample rows


def capture(
    model: Any,
    sample: Any,
    *,
    name: str | None = None,
    path: str | Path | None = None,
    flavor: str = "auto",
    hooks_source: str | None = None,
    allow_parity_failure: bool = False,
    input_names: list[str] | tuple[str, ...] | None = None,
    output_names: list[str] | tuple[str, ...] | None = None,
    dynamic_axes: Any = None,
    requirements: Any = None,
) -> Bundle:
    """Captures ``model`` with ``sample`` (a few rows of real input) as a Bundle.

    ``flavor``: "auto" (ONNX, falling back to a pickle when conversion fails),
    "onnx" or "python". ``path`` defaults to ``./bundles/<name>``. A parity
    failure raises CaptureError unless ``allow_parity_failure`` (then it is
    recorded). ``dynamic_axes`` (torch): ``{"input": [1]}`` marks axes besides
    the batch whose length varies in use (a sequence length), so the served
    model accepts other lengths than the sample's. ``hooks_source`` is python source defining
    ``preprocess(inputs)`` and/or ``postprocess(outputs)``, stored as hooks.py.
    ``requirements``: packages to add to the image (``["name==version", "name"]`` or a
    requirements file's path); the lock says why each package is there.
    """
    started = time.perf_counter()
    if flavor not in FLAVORS:
        raise CaptureError(f"unknown flavor {flavor!r}", hint="use 'auto', 'onnx' or 'python'")
    adapter = select_adapter(model)
    name = validate_name(name if name is not None else _default_model_name(model))
    target = Path(path).expanduser() if path is not None else Path("bundles") / name
    target = target.absolute()
    hooks = _check_hooks(hooks_source)
    # Checked before any work: a package the hooks import or the user asks for.
    extra = [("imported by the hooks", env.hook_distributions(hooks)), ("requested", env.requested(requirements))]
    options = CaptureOptions(
        input_names=tuple(input_names) if input_names is not None else None,
        output_names=tuple(output_names) if output_names is not None else None,
        dynamic_axes=parse_dynamic_axes(dynamic_axes),
    )
    if options.dynamic_axes and adapter.name != "torch":
        raise CaptureError(
            f"dynamic_axes applies to torch models; a {adapter.name} model's inputs have one fixed width",
            hint="leave dynamic_axes out (the batch axis is always dynamic)",
        )
    staging = _staging_dir(target)
    try:
        prepared = adapter.prepare(model, sample, options)
        if flavor == "python" and not prepared.python_ok:
            raise CaptureError("an ONNX model is captured as ONNX", hint="use flavor='auto' or 'onnx' for ONNX models")
        model_info: dict[str, Any] = {"class": prepared.model_class}
        onnx_bytes: bytes | None = None
        if flavor != "python":
            try:
                onnx_bytes = adapter.to_onnx(model, prepared, options)
            except ConversionFailed as exc:
                if flavor == "onnx" or not prepared.python_ok:
                    raise CaptureError(
                        f"the model does not convert to ONNX: {exc}",
                        hint="use flavor='python' to capture it as a pickle with pinned package versions",
                    ) from None
                model_info["conversion_error"] = str(exc)
        try:
            manifest = _write_files(staging, name, model, prepared, onnx_bytes, model_info, hooks, extra)
            _check_parity(staging, manifest, prepared, allow_parity_failure, started)
        except CaptureError as exc:
            # A table or text model whose ONNX form answers differently (a
            # tokenizer's regex, say) is no conversion: auto serves the original.
            if onnx_bytes is None or flavor != "auto" or prepared.table is None or "parity" not in exc.context:
                raise
            _clear(staging)
            model_info = {"class": prepared.model_class, "conversion_error": f"the ONNX model answers differently: {exc.message}"}
            try:
                manifest = _write_files(staging, name, model, prepared, None, model_info, hooks, extra)
                _check_parity(staging, manifest, prepared, allow_parity_failure, started)
            except CaptureError:
                raise exc from None
        _move_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Bundle.load(target)


def _clear(directory: Path) -> None:
    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _default_model_name(model: Any) -> str:
    """``logisticregression`` for a LogisticRegression, ``resnet`` for ``resnet.onnx``."""
    text = Path(model).stem if isinstance(model, (str, Path)) else type(model).__name__
    return default_name(text) or "model"


def _check_hooks(source: str | None) -> str | None:
    """The hooks contract's own check (mlpack.bundle.hooks), the one every caller uses."""
    from mlpack.bundle.hooks import check_source

    return None if source is None else check_source(source, CaptureError)


def _staging_dir(target: Path) -> Path:
    """A fresh directory beside ``target`` (same filesystem, so the final rename is atomic)."""
    if target.exists() and not target.is_dir():
        raise CaptureError(f"{target} exists and is not a directory", hint="pass another path= for the bundle")
    if target.is_dir() and any(target.iterdir()) and not (target / MANIFEST_NAME).is_file():
        raise CaptureError(
            f"{target} exists and is not an mlpack bundle; it is not overwritten",
            hint="pass an empty or new directory as path=",
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".capture", dir=target.parent))
    except OSError as exc:
        raise CaptureError(
            f"cannot write the bundle to {target}: {exc.strerror or exc}",
            hint="pass a path= in a writable directory",
            path=str(target),
        ) from None


def _rows(arrays: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """``n`` rows spread evenly over the sample (first and last included), not its head:
    samples are often sorted by class, and these rows are what the image is checked on."""
    length = len(next(iter(arrays.values())))
    index = np.unique(np.linspace(0, length - 1, num=min(n, length)).round().astype(int))
    return {k: v[index] for k, v in arrays.items()}


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    # Strings as unicode arrays so that loading never needs allow_pickle; None
    # (a missing string) as a mask beside them (Bundle._npz puts it back).
    clean: dict[str, np.ndarray] = {}
    for k, v in arrays.items():
        v = np.asarray(v)
        if v.dtype.kind == "O":
            missing = np.frompyfunc(lambda x: x is None, 1, 1)(v).astype(bool)
            if missing.any():
                clean[NPZ_MISSING + k] = missing
                v = np.where(missing, "", v)
        clean[k] = v.astype(str) if v.dtype.kind in "OSU" else v
    with open(path, "wb") as fh:
        np.savez(fh, **clean)


def _write_files(
    staging: Path,
    name: str,
    model: Any,
    prepared: Prepared,
    onnx_bytes: bytes | None,
    model_info: dict[str, Any],
    hooks: str | None,
    extra: list[tuple[str, dict[str, str]]],
) -> dict[str, Any]:
    if onnx_bytes is not None:
        flavor, model_file = "onnx", "model.onnx"
        (staging / model_file).write_bytes(onnx_bytes)
        inputs, outputs = _onnx_schema(onnx_bytes, prepared)
        pins, why = env.lock_for([("serving", env.serving_lock()), *extra])
        model_info["opset"] = _opsets(onnx_bytes)
        model_info["converted_with"] = env.installed_versions(CONVERTED_WITH.get(prepared.framework, ("onnx",)))
    else:
        from mlpack.bundle.python_flavor import pickle_model

        flavor, model_file = "python", "model.pkl"
        data, modules = pickle_model(model)
        if prepared.table is not None and prepared.table.kind == "table":
            modules = {*modules, "pandas"}  # the server rebuilds the DataFrame before calling the model
        dists, orphans = env.distributions_for_modules(modules)
        env.check_orphans(orphans)
        (staging / model_file).write_bytes(data)
        inputs = prepared.input_specs()
        reference = prepared.reference_fn(_rows(prepared.feeds, SAMPLE_ROWS))
        outputs = [TensorSpec(k, dtype_name(v.dtype), (None, *v.shape[1:])) for k, v in reference.items()]
        if prepared.entry.get("kind") == "methods":
            model_info["entry"] = prepared.entry
        else:
            model_info["entry"] = {"kind": prepared.entry.get("kind", "torch")}
        model_info["distributions"] = dict(sorted(dists.items()))
        # The model's distributions, pinned exactly, then the serving stack without onnxruntime.
        pins, why = env.lock_for([("provides the model's classes", dists),
                                  ("serving", env.serving_lock(with_onnxruntime=False)), *extra])
    classes = _classes(model)
    if classes is not None:
        model_info["classes"] = classes  # the order of the probabilities' columns
    model_info = {"file": model_file, **model_info}
    env.build_local_wheels(pins, staging)  # packages no index has ship inside the bundle
    (staging / "requirements.lock").write_text(
        "# pinned by mlpack capture for the serving image\n" + "\n".join(env.lock_lines(pins, why)) + "\n", encoding="utf-8"
    )
    sample_rows = _rows(prepared.feeds, SAMPLE_ROWS)
    _save_npz(staging / "sample.npz", sample_rows)
    _save_npz(staging / "expected.npz", prepared.reference_fn(sample_rows))
    preprocessed = _expected_preprocessed(hooks, prepared, sample_rows)
    if preprocessed is not None:
        _save_npz(staging / "expected_preprocessed.npz", preprocessed)
    if hooks is not None:
        (staging / "hooks.py").write_text(hooks, encoding="utf-8")
    files = sorted(p.name for p in staging.iterdir() if p.is_file())
    manifest = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "flavor": flavor,
        "framework": prepared.framework,
        "model": model_info,
        "inputs": [s.to_dict() for s in inputs],
        "outputs": [s.to_dict() for s in outputs],
        "environment": env.environment(),
        "requirements": "requirements.lock",
        "sample": "sample.npz",
        "expected": "expected.npz",
        "hooks": "hooks.py" if hooks is not None else None,
        **({"expected_preprocessed": "expected_preprocessed.npz"} if preprocessed is not None else {}),
        **({"table": prepared.table.to_dict()} if prepared.table is not None else {}),
        "parity": {"checked": False},
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "files": {f: sha256_file(staging / f) for f in files},
    }
    return write_manifest(staging, manifest)


def _expected_preprocessed(hooks: str | None, prepared: Prepared,
                           sample_rows: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
    """The model's answer on ``preprocess(sample_rows)``, what the container's model part
    answers for the stored sample; None without a preprocess hook. Stored so that
    container parity never prepares or runs the model a second time."""
    loaded = load_source(hooks, CaptureError)
    if loaded.preprocess is None:
        return None
    try:
        return prepared.reference_fn(loaded.before_arrays(sample_rows))
    except HookFailed as exc:
        raise CaptureError(f"preprocess failed on the sample: {exc}",
                           hint="preprocess gets the sample's inputs by name and must return the "
                                "model's inputs by name", traceback=exc.traceback) from exc


def _classes(model: Any) -> list[Any] | None:
    """A classifier's ``classes_`` as plain values (str, int, float, bool)."""
    try:
        classes = getattr(model, "classes_", None)
    except Exception:  # noqa: BLE001 - a property that raises means no classes
        return None
    if classes is None:
        return None
    try:
        values = [c.item() if isinstance(c, np.generic) else c for c in np.asarray(classes).ravel().tolist()]
    except (TypeError, ValueError):
        return None
    return values if all(isinstance(v, (str, int, float, bool)) for v in values) else None


def _onnx_schema(onnx_bytes: bytes, prepared: Prepared) -> tuple[list[TensorSpec], list[TensorSpec]]:
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise CaptureError(f"onnxruntime cannot load the converted model: {exc}", hint="try flavor='python'") from None
    try:
        inputs, outputs = ort_specs(session.get_inputs()), ort_specs(session.get_outputs())
    except BundleError as exc:
        raise CaptureError(f"the converted model has a non-tensor input or output: {exc.message}", hint="try flavor='python'") from None
    if [s.name for s in inputs] != list(prepared.feeds):
        raise CaptureError(
            f"the converted model's inputs {[s.name for s in inputs]} differ from the sample's {list(prepared.feeds)}",
            hint="report this as an mlpack bug, or use flavor='python'",
        )
    return inputs, outputs


def _opsets(onnx_bytes: bytes) -> dict[str, int]:
    import onnx

    proto = onnx.load_from_string(onnx_bytes)
    return {(o.domain or "ai.onnx"): int(o.version) for o in proto.opset_import}


def _check_parity(staging: Path, manifest: dict[str, Any], prepared: Prepared, allow: bool, started: float) -> None:
    """Runs the staged bundle through its Predictor and compares with the original."""
    feeds = _rows(prepared.feeds, PARITY_MAX_ROWS)
    reference = prepared.reference_fn(feeds)
    predictor = Bundle.load(staging).load_predictor()
    served = predictor.run(feeds)
    rows = next(iter(feeds.values())).shape[0]
    parity = compare(reference, served, rows)
    if not parity["passed"]:
        if not allow:
            raise CaptureError(
                f"parity check failed: the captured model answers differently from the original on the sample: "
                f"{worst_line(parity)}",
                hint="check the sample and the model; flavor='python' serves the original code; "
                "allow_parity_failure=True captures anyway and records the failure",
                parity=parity,
            )
        parity["override"] = True
    manifest = dict(manifest)
    manifest["parity"] = parity
    manifest["capture_seconds"] = round(time.perf_counter() - started, 3)
    write_manifest(staging, manifest)


def _move_into_place(staging: Path, target: Path) -> None:
    """Replaces ``target`` (absent, empty, or an older bundle) with the staged bundle."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.{os.getpid()}.old")
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
    staging.rename(target)
    os.chmod(target, 0o755)  # mkdtemp made it 0700; images copy it as is
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
