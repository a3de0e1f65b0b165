"""The gRPC port (MLPACK_GRPC_PORT in the image) in the Deployment, Service and InferenceService."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from mlpack.pipeline.export import image_info_from_config
from mlpack.kube import ExportOptions, ImageInfo, export_k8s
from mlpack.oci.config import ImageConfig
from mlpack.types import Limits

from tests.unit.kube.checks import validate_inference_service, validate_strict


def _export(image: ImageInfo, tmp_path: Path, **options: object) -> dict[str, dict]:
    export_k8s(image, Limits(cpus=1, memory="1Gi"), tmp_path, ExportOptions(**options))
    return {p.name: yaml.safe_load(p.read_text()) for p in tmp_path.glob("*.yaml")}


def test_image_config_env_names_the_grpc_port() -> None:
    config = {"config": {"Env": ["MLPACK_PORT=8080", "MLPACK_GRPC_PORT=8081"], "ExposedPorts": {"8080/tcp": {}, "8081/tcp": {}}}}
    info = image_info_from_config("r.example.com/m:1", None, ImageConfig.from_blob(config))
    assert (info.port, info.grpc_port) == (8080, 8081)
    assert image_info_from_config("r.example.com/m:1", None, ImageConfig.from_config({"Env": ["MLPACK_GRPC_PORT=0"]})).grpc_port is None


def test_deployment_and_service_carry_the_grpc_port_as_h2c(image: ImageInfo, tmp_path: Path) -> None:
    files = _export(replace(image, grpc_port=8081), tmp_path)
    deployment, service = files["deployment.yaml"], files["service.yaml"]
    validate_strict(deployment)
    validate_strict(service)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"][1] == {"name": "grpc", "containerPort": 8081, "protocol": "TCP"}
    assert container["readinessProbe"]["httpGet"]["port"] == "http"  # health stays on HTTP
    assert service["spec"]["ports"][1] == {
        "name": "grpc", "port": 8081, "targetPort": "grpc", "protocol": "TCP", "appProtocol": "kubernetes.io/h2c",
    }  # fmt: skip
    # an image without gRPC: one port, as before
    files = _export(image, tmp_path / "plain")
    assert [p["name"] for p in files["service.yaml"]["spec"]["ports"]] == ["http"]


@pytest.mark.parametrize(("mode", "names"), [("RawDeployment", ["http1", "h2c"]), ("Serverless", ["http1"])])
def test_inference_service_names_the_grpc_port_h2c_where_kserve_allows_it(
    image: ImageInfo, tmp_path: Path, mode: str, names: list[str]
) -> None:
    files = _export(replace(image, grpc_port=8081), tmp_path, kserve=True, kserve_mode=mode)
    isvc = files["inferenceservice.yaml"]
    validate_inference_service(isvc)
    ports = isvc["spec"]["predictor"]["containers"][0]["ports"]
    assert [p["name"] for p in ports] == names
    assert ports[-1]["containerPort"] == (8081 if mode == "RawDeployment" else 8080)
