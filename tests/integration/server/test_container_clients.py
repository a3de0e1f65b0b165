"""The serving image in a real container: Triton's gRPC and HTTP clients, kserve's REST and gRPC
clients and MLServer's codecs, over the ports `run` publishes (one container for the module)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mlpack.endpoint import wait_ready
from mlpack.server.tensors import V2_OF_NUMPY
from mlpack.settings import Settings
from tests.integration.server.serving import external_python

pytestmark = [pytest.mark.integration, pytest.mark.build, pytest.mark.runtime, pytest.mark.slow]
EXTERNAL = Path(__file__).parent / "external"


@pytest.fixture(scope="module")
def published(serving_image, run_settings: Settings) -> Iterator[dict[int, int]]:  # type: ignore[no-untyped-def]
    """The serving container's published ports: {container port: host port}."""
    from mlpack.runtime import run

    container = run(serving_image.ref, settings=run_settings, name=f"oip-clients-{os.getpid()}")  # -P: every EXPOSEd port
    try:
        ports = {p["container_port"]: p["host_port"] for p in container.ports}
        assert set(ports) >= {8080, 8081}, container.ports
        wait_ready(container, timeout=90)
        yield ports
    finally:
        container.remove(force=True)


def _sample(bundle) -> tuple[str, np.ndarray, dict[str, np.ndarray]]:  # type: ignore[no-untyped-def]
    spec = bundle.inputs[0]
    x = np.asarray(bundle.sample()[spec.name], dtype=spec.dtype)
    return spec.name, x, bundle.load_predictor(threads=1).run({spec.name: x})


def test_triton_grpc_and_http_clients_against_the_container(published: dict[int, int], sklearn_bundle) -> None:  # type: ignore[no-untyped-def]
    import tritonclient.grpc as tg
    import tritonclient.http as th

    name, x, want = _sample(sklearn_bundle)
    datatype = V2_OF_NUMPY[str(x.dtype)]
    model = sklearn_bundle.name
    grpc_client = tg.InferenceServerClient(f"127.0.0.1:{published[8081]}")
    try:
        assert grpc_client.is_server_ready() and grpc_client.is_model_ready(model)
        tensor = tg.InferInput(name, list(x.shape), datatype)
        tensor.set_data_from_numpy(x)
        result = grpc_client.infer(model, [tensor])
        for out, value in want.items():
            np.testing.assert_array_equal(result.as_numpy(out), value)
    finally:
        grpc_client.close()
    http_client = th.InferenceServerClient(f"127.0.0.1:{published[8080]}")
    try:
        tensor = th.InferInput(name, list(x.shape), datatype)
        tensor.set_data_from_numpy(x, binary_data=True)
        result = http_client.infer(model, [tensor])
        for out, value in want.items():
            np.testing.assert_array_equal(result.as_numpy(out), value)
    finally:
        http_client.close()


def _run_external(python: str, argv: list[str]) -> str:
    done = subprocess.run([python, *argv], capture_output=True, text=True, timeout=120,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_kserve_rest_and_grpc_clients_against_the_container(published: dict[int, int], sklearn_bundle,  # type: ignore[no-untyped-def]
                                                            tmp_path: Path) -> None:
    python = external_python("MLPACK_KSERVE_PYTHON", "kserve")
    name, x, want = _sample(sklearn_bundle)
    assert x.dtype == np.float32  # the script sends FP32
    doc = {"model": sklearn_bundle.name, "input": name, "x": x.tolist(), "outputs": {k: v.tolist() for k, v in want.items()}}
    (tmp_path / "want.json").write_text(json.dumps(doc))
    out = _run_external(python, [str(EXTERNAL / "kserve_clients.py"), str(published[8080]), str(published[8081]),
                                 str(tmp_path / "want.json")])
    assert out.count(": OK") == 4, out


def test_mlserver_codec_against_the_container(published: dict[int, int], sklearn_bundle, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    python = external_python("MLPACK_MLSERVER_PYTHON", "mlserver")
    _, x, want = _sample(sklearn_bundle)
    cases = [{"url": f"http://127.0.0.1:{published[8080]}", "model": sklearn_bundle.name, "codec": "numpy",
              "x": x.tolist(), "outputs": {k: v.tolist() for k, v in want.items()}}]
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    out = _run_external(python, [str(EXTERNAL / "mlserver_codecs.py"), str(tmp_path / "cases.json")])
    assert out.count(": OK") == 1, out
