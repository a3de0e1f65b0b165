"""kubectl renders what mlpack writes, and the rendered objects stay valid."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from mlpack.kube import ExportOptions, ImageInfo, export_k8s
from mlpack.types import Limits

from tests.conftest import require_tool
from tests.unit.kube.checks import cpu_cores, memory_bytes, validate_inference_service, validate_strict

DIGEST = "sha256:" + "c4" * 32
IMAGE = ImageInfo(
    reference="registry.example.com/ml/fraud-model:3", digest=DIGEST, user_uid=10001, start_seconds=6.5
)


def _kustomize(directory: Path) -> list[dict]:
    kubectl = require_tool("kubectl")
    proc = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


@pytest.mark.parametrize(
    "limits",
    [Limits(cpus=0.5, memory="512Mi"), Limits(cpus=2, memory="4Gi", pids=256, gpus=1), Limits(cpus=6, memory="24Gi", gpus=3)],
)
def test_kubectl_kustomize_renders_the_directory(tmp_path: Path, limits: Limits) -> None:
    result = export_k8s(IMAGE, limits, tmp_path, ExportOptions(namespace="fraud"))
    rendered = _kustomize(tmp_path)
    assert sorted(o["kind"] for o in rendered) == sorted(o["kind"] for o in result.objects)
    for obj in rendered:
        assert obj["metadata"]["namespace"] == "fraud"
        validate_strict(obj)
    dep = next(o for o in rendered if o["kind"] == "Deployment")
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"registry.example.com/ml/fraud-model@{DIGEST}"
    res = container["resources"]
    assert res["limits"] == res["requests"]
    assert cpu_cores(res["limits"]["cpu"]) == pytest.approx(limits.cpus)
    assert memory_bytes(res["limits"]["memory"]) == limits.memory
    assert int(res["limits"].get("nvidia.com/gpu", 0)) == (limits.gpu_count or 0)


def test_kubectl_kustomize_renders_kserve(tmp_path: Path) -> None:
    export_k8s(IMAGE, Limits(cpus=1, memory="2Gi", gpus=1), tmp_path, ExportOptions(kserve=True))
    rendered = _kustomize(tmp_path)
    assert sorted(o["kind"] for o in rendered) == ["InferenceService", "PodDisruptionBudget"]
    for obj in rendered:
        if obj["kind"] == "InferenceService":
            validate_inference_service(obj)
        else:
            validate_strict(obj)

