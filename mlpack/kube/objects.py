"""The Kubernetes objects, as plain dicts in the order kubectl prints them.

Every builder takes the one :class:`Plan` (the decisions already made from
the image, the limits and the options) so all objects agree on names,
labels, selector, port and image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from mlpack.kube.resources import GPU_RESOURCE, Resources
from mlpack.kube.values import ExportOptions

__all__ = [
    "Plan",
    "deployment",
    "service",
    "autoscaler",
    "disruption_budget",
    "inference_service",
    "startup_budget",
    "LIVE_PATH",
    "READY_PATH",
    "METRICS_PATH",
]

LIVE_PATH = "/v2/health/live"
READY_PATH = "/v2/health/ready"
METRICS_PATH = "/metrics"
_PORT_NAME = "http"
_GRPC_PORT_NAME = "grpc"
# gRPC without TLS is HTTP/2 over cleartext: gateways and meshes read this.
_H2C = "kubernetes.io/h2c"
_CONTAINER = "server"
# KServe finds the predictor's protocol on the container with this name.
_KSERVE_CONTAINER = "kserve-container"


@dataclass(frozen=True)
class Plan:
    """Everything decided before the first object is built."""

    name: str
    namespace: str | None
    image: str
    pull_policy: str
    port: int
    uid: int
    gid: int | None
    resources: Resources
    start_seconds: float | None
    grace_seconds: int
    labels: dict[str, str]
    options: ExportOptions
    grpc_port: int | None = None

    @property
    def selector(self) -> dict[str, str]:
        # The selector of a Deployment is immutable: keep the version out of it.
        return {
            "app.kubernetes.io/name": self.labels["app.kubernetes.io/name"],
            "app.kubernetes.io/instance": self.labels["app.kubernetes.io/instance"],
        }

    def metadata(self, **extra: Any) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": self.name}
        if self.namespace:
            meta["namespace"] = self.namespace
        meta["labels"] = dict(self.labels)
        meta.update(extra)
        return meta


def startup_budget(start_seconds: float | None, options: ExportOptions) -> tuple[int, int]:
    """(periodSeconds, failureThreshold) for the startup probe.

    A node may be slower than the machine the start was measured on, and the
    first start after a pull also warms the page cache, so the budget is the
    measured start times ``startup_factor``, never below ``startup_min_seconds``.
    """
    measured = start_seconds if start_seconds is not None else 0.0
    budget = max(float(options.startup_min_seconds), measured * options.startup_factor)
    period = 2 if budget <= 120 else 5
    return period, max(1, math.ceil(budget / period))


def _probe(path: str, port: str | int, period: int, failures: int, timeout: int = 2) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port, "scheme": "HTTP"},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "successThreshold": 1,
        "failureThreshold": failures,
    }


def _container(plan: Plan, name: str, *, kserve: bool = False) -> dict[str, Any]:
    period, failures = startup_budget(plan.start_seconds, plan.options)
    security: dict[str, Any] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": plan.uid,
    }
    if plan.gid is not None:
        security["runAsGroup"] = plan.gid
    security["seccompProfile"] = {"type": "RuntimeDefault"}
    env = [{"name": "TMPDIR", "value": "/tmp"}]
    port_name, probe_port = _PORT_NAME, _PORT_NAME
    grpc_name = _GRPC_PORT_NAME
    if kserve:
        grpc_name = "h2c"  # KServe's name for the predictor's gRPC port
        env.insert(0, {"name": "PROTOCOL", "value": "v2"})
        # Knative accepts only "http1"/"h2c" as a port name and probes on the
        # container port by number; RawDeployment is happy with both.
        port_name, probe_port = "http1", plan.port
    return {
        "name": name,
        "image": plan.image,
        "imagePullPolicy": plan.pull_policy,
        "ports": [{"name": port_name, "containerPort": plan.port, "protocol": "TCP"}]
        + _grpc_ports(plan, grpc_name, kserve=kserve),
        "env": env,
        "resources": plan.resources.as_dict(),
        "startupProbe": _probe(LIVE_PATH, probe_port, period, failures),
        "livenessProbe": _probe(LIVE_PATH, probe_port, 10, 3),
        "readinessProbe": _probe(READY_PATH, probe_port, 5, 3),
        "securityContext": security,
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }


def _grpc_ports(plan: Plan, name: str, *, kserve: bool) -> list[dict[str, Any]]:
    # Knative (KServe's Serverless mode) allows one container port: there the
    # predictor keeps HTTP, which its probes need; RawDeployment gets both.
    if not plan.grpc_port or (kserve and plan.options.kserve_mode != "RawDeployment"):
        return []
    return [{"name": name, "containerPort": plan.grpc_port, "protocol": "TCP"}]


def _pod_security(plan: Plan) -> dict[str, Any]:
    pod: dict[str, Any] = {"runAsNonRoot": True, "runAsUser": plan.uid}
    if plan.gid is not None:
        pod["runAsGroup"] = plan.gid
        pod["fsGroup"] = plan.gid
    pod["seccompProfile"] = {"type": "RuntimeDefault"}
    return pod


def _pod_spec_fields(plan: Plan, container: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": plan.grace_seconds,
        "securityContext": _pod_security(plan),
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": plan.options.tmp_size}}],
    }
    if plan.resources.gpus:
        # GPU nodes are usually tainted so that only GPU pods land there.
        spec["tolerations"] = [
            {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
        ]
    return spec


def _scrape_annotations(plan: Plan) -> dict[str, str]:
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/path": METRICS_PATH,
        "prometheus.io/port": str(plan.port),
    }


def deployment(plan: Plan) -> dict[str, Any]:
    """apps/v1 Deployment; ``replicas`` only when no autoscaler owns the count."""
    pod_spec = _pod_spec_fields(plan, _container(plan, _CONTAINER))
    pod_spec["topologySpreadConstraints"] = [
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": plan.selector},
        }
    ]
    spec: dict[str, Any] = {}
    if not plan.options.autoscaled:
        spec["replicas"] = plan.options.floor
    spec.update(
        {
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": plan.selector},
            # Surge before removing a pod, so a rollout never drops capacity.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {
                    "labels": dict(plan.labels),
                    "annotations": _scrape_annotations(plan),
                },
                "spec": pod_spec,
            },
        }
    )
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": plan.metadata(), "spec": spec}


def service(plan: Plan) -> dict[str, Any]:
    """v1 Service on the server's port, selecting the Deployment's pods."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": plan.metadata(),
        "spec": {
            "type": plan.options.service_type,
            "selector": dict(plan.selector),
            "ports": [
                {
                    "name": _PORT_NAME,
                    "port": plan.port,
                    "targetPort": _PORT_NAME,
                    "protocol": "TCP",
                }
            ]
            + [
                {"name": _GRPC_PORT_NAME, "port": p, "targetPort": _GRPC_PORT_NAME, "protocol": "TCP", "appProtocol": _H2C}
                for p in ([plan.grpc_port] if plan.grpc_port else [])
            ],
        },
    }


def autoscaler(plan: Plan) -> dict[str, Any]:
    """autoscaling/v2 HorizontalPodAutoscaler on CPU utilisation of the request."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": plan.metadata(),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": plan.name},
            "minReplicas": plan.options.floor,
            "maxReplicas": plan.options.ceiling,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": plan.options.target_cpu,
                        },
                    },
                }
            ],
            # Model servers are slow to start: scale down one pod a minute.
            "behavior": {
                "scaleDown": {
                    "stabilizationWindowSeconds": 300,
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
                }
            },
        },
    }


def disruption_budget(plan: Plan) -> dict[str, Any]:
    """policy/v1 PodDisruptionBudget: drains take at most one pod at a time."""
    # KServe labels every pod it makes with the InferenceService's name;
    # our own labels reach its pods only through the component's labels.
    selector = (
        {"serving.kserve.io/inferenceservice": plan.name}
        if plan.options.kserve
        else dict(plan.selector)
    )
    # maxUnavailable (not minAvailable) so a single replica never blocks a drain.
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": plan.metadata(),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector}},
    }


def inference_service(plan: Plan) -> dict[str, Any]:
    """serving.kserve.io/v1beta1 InferenceService with the image as a V2 custom predictor."""
    predictor: dict[str, Any] = {
        "minReplicas": plan.options.floor,
        "maxReplicas": plan.options.ceiling,
        "scaleMetric": "cpu",
        "scaleTarget": plan.options.target_cpu,
        "labels": dict(plan.labels),
    }
    predictor.update(_pod_spec_fields(plan, _container(plan, _KSERVE_CONTAINER, kserve=True)))
    annotations = {"serving.kserve.io/deploymentMode": plan.options.kserve_mode}
    # Scale on CPU in both modes, as the plain Deployment's HPA does: Knative's
    # default autoscaler (KPA) knows only concurrency and rps.
    if plan.options.kserve_mode == "RawDeployment":
        annotations["serving.kserve.io/autoscalerClass"] = "hpa"
    else:
        annotations["autoscaling.knative.dev/class"] = "hpa.autoscaling.knative.dev"
    annotations["serving.kserve.io/enable-prometheus-scraping"] = "true"
    # Pod annotations belong on the component: KServe copies them to its pods.
    predictor["annotations"] = _scrape_annotations(plan)
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": plan.metadata(annotations=annotations),
        "spec": {"predictor": predictor},
    }
