"""Checks shared by the capture integration tests."""

from __future__ import annotations

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
