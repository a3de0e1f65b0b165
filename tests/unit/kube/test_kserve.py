"""--kserve: an InferenceService with the image as a V2 custom predictor."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import pytest
import yaml

from mlpack.kube import ExportOptions, ImageInfo, export_k8s
from mlpack.types import Limits

from tests.unit.kube.checks import cpu_cores, memory_bytes, validate_inference_service, validate_strict


@pytest.mark.parametrize("mode", ["RawDeployment", "Serverless"])
@pytest.mark.parametrize("limits", [Limits(cpus=1, memory="1Gi"), Limits(cpus=3.5, memory="12Gi", gpus=2)])
def test_inference_service(image: ImageInfo, tmp_path: Path, mode: str, limits: Limits) -> None:
    options = ExportOptions(kserve=True, kserve_mode=mode, namespace="models", min_replicas=1, max_replicas=5)
    export_k8s(image, limits, tmp_path, options)
    files = {p.name: yaml.safe_load(p.read_text()) for p in tmp_path.glob("*.yaml")}
    assert set(files) == {"inferenceservice.yaml", "pdb.yaml", "kustomization.yaml"}
    isvc = files["inferenceservice.yaml"]
    validate_inference_service(isvc)
    validate_strict(files["pdb.yaml"])
    assert files["pdb.yaml"]["spec"]["selector"]["matchLabels"] == {
        "serving.kserve.io/inferenceservice": "iris-classifier"
    }
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == mode
    predictor = isvc["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (1, 5)
    container = predictor["containers"][0]
    assert {"name": "PROTOCOL", "value": "v2"} in container["env"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8080, "scheme": "HTTP"}
    assert container["ports"] == [{"name": "http1", "containerPort": 8080, "protocol": "TCP"}]
    res = container["resources"]
    assert res["requests"] == res["limits"]
    assert cpu_cores(res["limits"]["cpu"]) == pytest.approx(limits.cpus)
    assert memory_bytes(res["limits"]["memory"]) == limits.memory
    assert int(res["limits"].get("nvidia.com/gpu", 0)) == (limits.gpu_count or 0)
    assert files["kustomization.yaml"]["resources"] == ["inferenceservice.yaml", "pdb.yaml"]


def test_own_schema_rejects_what_kserve_would(image: ImageInfo, tmp_path: Path) -> None:
    result = export_k8s(image, Limits(cpus=1, memory="1Gi"), tmp_path, ExportOptions(kserve=True))
    isvc = result.objects[0]
    validate_inference_service(isvc)
    no_protocol = copy.deepcopy(isvc)
    no_protocol["spec"]["predictor"]["containers"][0]["env"] = []
    with pytest.raises(jsonschema.ValidationError):
        validate_inference_service(no_protocol)
    misplaced = copy.deepcopy(isvc)
    misplaced["spec"]["containers"] = misplaced["spec"]["predictor"].pop("containers")
    with pytest.raises(jsonschema.ValidationError):
        validate_inference_service(misplaced)
    bad_pod = copy.deepcopy(isvc)
    bad_pod["spec"]["predictor"]["containers"][0]["securityContext"]["dropAll"] = True
    with pytest.raises(jsonschema.ValidationError):
        validate_inference_service(bad_pod)
