"""mlpack.serve from a plain script: the README's main job (examples/main.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlpack.errors import ContainerNotFound

pytestmark = [pytest.mark.runtime, pytest.mark.build, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[3]


def test_main_job_runs_end_to_end(e2e_settings) -> None:
    env = dict(os.environ, MLPACK_HOME=str(e2e_settings.home))
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "main.py"), "--name", "main-e2e"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    for stage in ("capture", "render", "base", "build", "run", "ready", "parity"):
        assert f"[{stage}] done" in out, out[-4000:]
    assert "prediction        [0, 1, 2]" in out
    assert "container parity  ok" in out
    assert "stopped and removed" in out
    from mlpack.runtime import get_container

    with pytest.raises(ContainerNotFound):
        get_container(e2e_settings, "main-e2e")


def test_serve_as_a_context_manager(e2e_settings) -> None:
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeRegressor

    import mlpack

    x, y = load_iris(return_X_y=True)
    model = DecisionTreeRegressor(max_depth=4, random_state=0).fit(x[:, :3], x[:, 3])
    with mlpack.serve(model, x[:20, :3], name="serve-ctx", cpus=0.5, memory="256Mi",
                      settings=e2e_settings) as svc:
        assert svc.parity.passed
        got = svc.predict(x[:7, :3])
        assert got.shape[0] == 7
        assert abs(got.reshape(-1) - model.predict(x[:7, :3])).max() < 1e-4
        # the gRPC service of the same container, published on a free port
        import tritonclient.grpc as tg

        assert svc.grpc_url and svc.grpc_url.startswith("127.0.0.1:")
        client = tg.InferenceServerClient(svc.grpc_url)
        try:
            tensor = tg.InferInput("input", [7, 3], "FP32")
            tensor.set_data_from_numpy(x[:7, :3].astype("float32"))
            result = client.infer("serve-ctx", [tensor])
            assert abs(result.as_numpy(client.get_model_metadata("serve-ctx").outputs[0].name).reshape(-1) - got.reshape(-1)).max() < 1e-6
        finally:
            client.close()
        stats = svc.stats()
        assert stats["memory_limit"] == 256 * 1024**2 and stats["memory_usage"] > 0
        assert "Uvicorn" in svc.logs() or svc.logs() != ""
    assert svc.container is None
    with pytest.raises(ContainerNotFound):
        from mlpack.runtime import get_container

        get_container(e2e_settings, "serve-ctx")
