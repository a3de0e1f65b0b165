"""Checks shared by the kube tests: schema validation and quantity parsing.

Kept apart from the tests so the integration tests (kubectl, registry) judge
manifests by exactly the same rules as the unit tests.
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import kubernetes_validate

# The oldest Kubernetes the manifests promise to work on, and the newest the
# installed kubernetes-validate knows.
OLDEST = "1.30"
NEWEST = kubernetes_validate.utils.latest_version()

_CPU = re.compile(r"^(\d+)(m?)$")
_MEM = re.compile(r"^(\d+)(Ki|Mi|Gi|Ti)?$")
_MEM_UNITS = {None: 1, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4}


def validate_strict(obj: dict[str, Any]) -> None:
    """Validate ``obj`` in strict mode (unknown fields are errors) for every
    supported Kubernetes version from 1.30 to the newest schema installed."""
    for version in (OLDEST, "1.31", "1.32", NEWEST):
        kubernetes_validate.validate(obj, version, strict=True)


def cpu_cores(quantity: str) -> float:
    match = _CPU.match(quantity)
    assert match, f"not a CPU quantity mlpack writes: {quantity!r}"
    value = int(match.group(1))
    return value / 1000 if match.group(2) else float(value)


def memory_bytes(quantity: str) -> int:
    match = _MEM.match(quantity)
    assert match, f"not a memory quantity mlpack writes: {quantity!r}"
    return int(match.group(1)) * _MEM_UNITS[match.group(2)]


# KServe's InferenceService is a CRD (no OpenAPI schema in kubernetes-validate):
# this schema states the structure mlpack promises. The pod fields inlined in
# the predictor are validated separately as a real Pod spec.
_NAME = {"type": "string", "pattern": r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"}
_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
INFERENCE_SERVICE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "serving.kserve.io/v1beta1"},
        "kind": {"const": "InferenceService"},
        "metadata": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name", "annotations"],
            "properties": {
                "name": _NAME,
                "namespace": _NAME,
                "labels": _STR_MAP,
                "annotations": {
                    **_STR_MAP,
                    "required": ["serving.kserve.io/deploymentMode"],
                    "properties": {
                        "serving.kserve.io/deploymentMode": {
                            "enum": ["RawDeployment", "Serverless"]
                        },
                    },
                },
            },
        },
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["predictor"],
            "properties": {
                "predictor": {
                    "type": "object",
                    "required": ["containers", "minReplicas", "maxReplicas"],
                    "properties": {
                        "minReplicas": {"type": "integer", "minimum": 0},
                        "maxReplicas": {"type": "integer", "minimum": 1},
                        "scaleMetric": {"enum": ["cpu", "memory", "concurrency", "rps"]},
                        "scaleTarget": {"type": "integer", "minimum": 1},
                        "labels": _STR_MAP,
                        "annotations": _STR_MAP,
                        "containers": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": 1,
                            "items": {
                                "type": "object",
                                "required": ["name", "image", "env", "resources"],
                                "properties": {
                                    "name": {"const": "kserve-container"},
                                    "image": {"type": "string", "pattern": r"@sha256:[a-f0-9]{64}$"},
                                    "env": {
                                        "type": "array",
                                        "contains": {
                                            "type": "object",
                                            "properties": {
                                                "name": {"const": "PROTOCOL"},
                                                "value": {"const": "v2"},
                                            },
                                            "required": ["name", "value"],
                                        },
                                    },
                                },
                            },
                        },
                    },
                }
            },
        },
    },
}

# ComponentExtensionSpec fields KServe adds next to the inlined PodSpec.
COMPONENT_FIELDS = {
    "minReplicas", "maxReplicas", "scaleMetric", "scaleTarget", "labels", "annotations",
    "containerConcurrency", "timeout", "canaryTrafficPercent", "logger", "batcher",
}


def validate_inference_service(obj: dict[str, Any]) -> None:
    """The CRD's structure by our schema, and its pod part as a real Pod spec."""
    jsonschema.validate(obj, INFERENCE_SERVICE_SCHEMA)
    predictor = obj["spec"]["predictor"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": obj["metadata"]["name"]},
        "spec": {k: v for k, v in predictor.items() if k not in COMPONENT_FIELDS},
    }
    validate_strict(pod)
