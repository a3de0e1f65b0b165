"""``mlpack capture`` and ``mlpack inspect`` (bundles first, then images and containers).

``inspect TARGET`` shows a bundle when TARGET is a bundle directory;
otherwise it asks ``mlpack.cli.images`` and then ``mlpack.cli.containers``:
each may define ``inspect_target(args, settings) -> int | None`` that
returns an exit status when it knows TARGET and None (or raises a
LookupError such as ImageNotFound) when it does not.
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path
from typing import Any

from mlpack.errors import CaptureError, MlpackError
from mlpack.settings import Settings

_INSPECTORS = ("mlpack.cli.images", "mlpack.cli.containers")


def register(sub: argparse._SubParsersAction) -> None:
    """Adds ``capture`` and ``inspect``."""
    p = sub.add_parser(
        "capture",
        help="capture a saved model (.onnx, .pkl/.joblib, .pt) with a sample as a bundle",
        description="Capture a model saved to a file as a bundle directory, with the parity check. "
        "Pickled files (.pkl, .joblib, .pt) run code when loaded: only capture files you trust.",
    )
    p.add_argument("model", help="model file: .onnx, .pkl, .pickle, .joblib, or .pt (a whole torch module)")
    p.add_argument("--sample", required=True, help="sample input: .npy (one input), .npz (one array per input name), .csv or .parquet (a table)")
    p.add_argument("-n", "--name", help="bundle name (an image name component); default from the model class")
    p.add_argument("-o", "--output", help="bundle directory (default ./bundles/NAME)")
    p.add_argument("--flavor", choices=("auto", "onnx", "python"), default="auto")
    p.add_argument("--hooks", help="python file defining preprocess(inputs) and/or postprocess(outputs)")
    p.add_argument("--allow-parity-failure", action="store_true", help="capture even if the parity check fails (recorded)")
    p.add_argument("--dynamic-axes", help="torch: NAME:AXIS[,NAME:AXIS], axes besides the batch whose length varies in use")
    p.add_argument("--pip", action="append", default=[], metavar="SPEC",
                   help="add a package to the image: name==version, or name at the installed version (repeatable)")
    p.add_argument("--requirements", metavar="FILE", help="add the packages of a requirements file (pinned lines)")
    p.set_defaults(handler=_capture)

    p = sub.add_parser("inspect", help="show a bundle, an image or a container")
    p.add_argument("target", help="a bundle directory, an image reference or a container name/id")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(handler=_inspect)


def _load_model(path: Path) -> Any:
    if not path.is_file():
        raise CaptureError(f"model file {path} does not exist", hint="pass the path of a saved model")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return path
    if suffix in (".pkl", ".pickle"):
        import pickle

        with open(path, "rb") as fh:
            return pickle.load(fh)
    if suffix == ".joblib":
        import joblib

        return joblib.load(path)
    if suffix in (".pt", ".pth"):
        import torch

        return torch.load(path, weights_only=False)  # a whole module, not a state dict
    raise CaptureError(f"unknown model file type {suffix!r}", hint="use .onnx, .pkl, .pickle, .joblib or .pt")


def _load_sample(path: Path) -> Any:
    import numpy as np

    if not path.is_file():
        raise CaptureError(f"sample file {path} does not exist", hint="save a few rows with np.save('sample.npy', X[:20])")
    if path.suffix in (".csv", ".parquet"):  # a table: the columns' names and dtypes
        try:
            import pandas as pd
        except ImportError:
            raise CaptureError(f"reading {path.name} needs pandas", hint="pip install pandas, or save the sample as .npy") from None
        try:
            return pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
        except (ImportError, ValueError, OSError) as exc:
            raise CaptureError(f"cannot read the sample table {path}: {exc}", hint="save it with df.to_csv(path, index=False)") from None
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        return arrays if len(arrays) != 1 else next(iter(arrays.values()))
    return np.load(path, allow_pickle=False)


def _capture(args: argparse.Namespace, settings: Settings) -> int:
    from mlpack.bundle import capture
    from mlpack.bundle.environment import requirement_specs

    hooks = Path(args.hooks).read_text(encoding="utf-8") if args.hooks else None
    bundle = capture(
        _load_model(Path(args.model)),
        _load_sample(Path(args.sample)),
        name=args.name,
        path=args.output,
        flavor=args.flavor,
        hooks_source=hooks,
        allow_parity_failure=args.allow_parity_failure,
        dynamic_axes=args.dynamic_axes,
        requirements=requirement_specs(args.pip, args.requirements),
    )
    print(bundle.summary())
    return 0


def _inspect(args: argparse.Namespace, settings: Settings) -> int:
    target = Path(args.target)
    if (target / "mlpack.yaml").is_file():
        from mlpack.bundle import Bundle
        from mlpack.bundle.summary import summary_dict

        bundle = Bundle.load(target)
        if args.format == "json":
            print(json.dumps(summary_dict(bundle), indent=2, default=str))
        else:
            print(bundle.summary())
        return 0
    for name in _INSPECTORS:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        inspect_target = getattr(module, "inspect_target", None)
        if inspect_target is None:
            continue
        try:
            status = inspect_target(args, settings)
        except LookupError:
            continue
        if status is not None:
            return int(status)
    if target.exists():
        raise MlpackError(f"{target} is not an mlpack bundle (no mlpack.yaml)", hint="pass a directory written by mlpack capture")
    raise MlpackError(
        f"no bundle, image or container named {args.target!r}",
        hint="list images with `mlpack images` and containers with `mlpack ps`",
    )
