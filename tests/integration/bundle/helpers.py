"""Checks shared by the capture integration tests."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import numpy as np

from mlpack.bundle import Bundle


def check_round_trip(bundle: Bundle, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Loads the bundle again from disk, runs it on ``feeds`` (a batch size not
    seen at capture) and on the stored sample, which must give expected.npz."""
    again = Bundle.load(bundle.path)
    assert again.manifest == bundle.manifest
    assert again.parity["checked"] and again.parity["passed"], again.parity
    outputs = again.load_predictor(threads=1).run(feeds)
    assert list(outputs) == [o.name for o in again.outputs]
    batch = next(iter(feeds.values())).shape[0]
    for spec in again.outputs:
        assert outputs[spec.name].ndim == len(spec.shape)
        assert outputs[spec.name].shape[0] == batch
    sample_out = again.load_predictor().run(again.sample())
    for name, value in again.expected().items():
        got = np.asarray(sample_out[name]).reshape(value.shape)
        if value.dtype.kind == "f":
            np.testing.assert_allclose(got, value, rtol=1e-3, atol=1e-4)
        else:
            np.testing.assert_array_equal(got.astype(value.dtype), value)
    return outputs


def post_json(url: str, body: Any, timeout: float = 60) -> tuple[int, Any]:
    """POST ``body`` as JSON (NaN refused: a client sends null) -> (status, decoded answer)."""
    req = urllib.request.Request(url, data=json.dumps(body, allow_nan=False).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def json_records(frame: Any) -> list[dict[str, Any]]:
    """A DataFrame's rows as JSON records, a missing value as null (what a client sends)."""
    import pandas as pd

    return [{k: (None if pd.isna(v) else v.item() if hasattr(v, "item") else v) for k, v in row.items()}
            for row in frame.to_dict("records")]


def v2_output(answer: dict[str, Any], name: str) -> dict[str, Any]:
    """The output called ``name`` of a V2 inference answer."""
    return next(o for o in answer["outputs"] if o["name"] == name)


def report_service(tag: str, service: Any) -> None:
    """Prints how the model is served, the build time and the image size (seen with ``-s``)."""
    size = sum(int(layer["size"]) for layer in service.image.manifest["layers"])
    reason = service.bundle.manifest["model"].get("conversion_error")
    print(f"\n[{tag}] {service.name}: {service.bundle.flavor}{f' ({reason})' if reason else ''}, "
          f"build {service.timings.get('build', 0.0):.1f} s, image {size / 1e6:.1f} MB compressed")


def serve_and_report(tag: str, model: Any, sample: Any, name: str, settings: Any, **options: Any) -> Any:
    """``mlpack.serve`` with 1 CPU (and 512 MiB unless given), then :func:`report_service`."""
    import mlpack

    options = {"cpus": 1.0, "memory": "512Mi", **options}
    service = mlpack.serve(model, sample, name=name, settings=settings, **options)
    report_service(tag, service)
    return service
