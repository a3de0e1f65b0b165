"""The serving image in a real container: Triton's gRPC and HTTP clients over the ports `run` publishes."""

from __future__ import annotations

import os

import numpy as np
import pytest

from mlpack.endpoint import wait_ready
from mlpack.server.tensors import V2_OF_NUMPY
from mlpack.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.build, pytest.mark.runtime, pytest.mark.slow]


def test_grpc_and_http_clients_against_the_container(serving_image, sklearn_bundle, run_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    import tritonclient.grpc as tg
    import tritonclient.http as th

    from mlpack.runtime import run

    container = run(serving_image.ref, settings=run_settings, name=f"oip-clients-{os.getpid()}")  # -P: every EXPOSEd port
    try:
        published = {p["container_port"]: p["host_port"] for p in container.ports}
        assert set(published) >= {8080, 8081}, container.ports
        wait_ready(container, timeout=90)
        spec = sklearn_bundle.inputs[0]
        x = np.asarray(sklearn_bundle.sample()[spec.name], dtype=spec.dtype)
        datatype = V2_OF_NUMPY[str(x.dtype)]
        want = sklearn_bundle.load_predictor(threads=1).run({spec.name: x})
        name = sklearn_bundle.name
        grpc_client = tg.InferenceServerClient(f"127.0.0.1:{published[8081]}")
        try:
            assert grpc_client.is_server_ready() and grpc_client.is_model_ready(name)
            tensor = tg.InferInput(spec.name, list(x.shape), datatype)
            tensor.set_data_from_numpy(x)
            result = grpc_client.infer(name, [tensor])
            for out, value in want.items():
                np.testing.assert_array_equal(result.as_numpy(out), value)
        finally:
            grpc_client.close()
        http_client = th.InferenceServerClient(f"127.0.0.1:{published[8080]}")
        try:
            tensor = th.InferInput(spec.name, list(x.shape), datatype)
            tensor.set_data_from_numpy(x, binary_data=True)
            result = http_client.infer(name, [tensor])
            for out, value in want.items():
                np.testing.assert_array_equal(result.as_numpy(out), value)
        finally:
            http_client.close()
    finally:
        container.remove(force=True)
