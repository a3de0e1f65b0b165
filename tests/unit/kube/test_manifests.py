"""The kustomize directory: every object valid for Kubernetes >= 1.30 in strict mode."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from mlpack.errors import ExportError
from mlpack.kube import ExportOptions, ImageInfo, LABEL_SHUTDOWN_GRACE, LABEL_START_SECONDS, export_k8s
from mlpack.kube.writer import MARKER
from mlpack.types import Limits

from tests.unit.kube.checks import cpu_cores, memory_bytes, validate_strict
from tests.unit.kube.conftest import DIGEST

LIMITS = Limits(cpus=1.5, memory="768Mi", pids=100, gpus=1)


def _load(out: Path) -> dict[str, dict[str, Any]]:
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted(out.glob("*.yaml"))}


def _pod(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return objects["deployment.yaml"]["spec"]["template"]["spec"]


def test_writes_a_kustomize_directory(image: ImageInfo, tmp_path: Path) -> None:
    result = export_k8s(image, LIMITS, tmp_path / "k8s", ExportOptions(namespace="ml"))
    files = _load(tmp_path / "k8s")
    assert set(files) == {"deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml", "kustomization.yaml"}
    kust = files["kustomization.yaml"]
    assert kust["kind"] == "Kustomization" and kust["namespace"] == "ml"
    assert kust["resources"] == ["deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml"]
    kinds = {obj["kind"]: obj["apiVersion"] for obj in result.objects}
    assert kinds == {
        "Deployment": "apps/v1",
        "Service": "v1",
        "HorizontalPodAutoscaler": "autoscaling/v2",
        "PodDisruptionBudget": "policy/v1",
    }
    for path in result.files:
        assert path.read_text().startswith(MARKER + "\n")


def test_every_object_validates_strictly(image: ImageInfo, tmp_path: Path) -> None:
    export_k8s(image, LIMITS, tmp_path, ExportOptions(namespace="ml"))
    objects = _load(tmp_path)
    del objects["kustomization.yaml"]  # not a Kubernetes API object
    assert len(objects) == 4
    for obj in objects.values():  # validated as read back from disk
        validate_strict(obj)


def test_strict_validation_really_rejects_unknown_fields(image: ImageInfo, tmp_path: Path) -> None:
    result = export_k8s(image, LIMITS, tmp_path)
    bad = copy.deepcopy(result.objects[0])
    bad["spec"]["template"]["spec"]["containers"][0]["cpuLimit"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_strict(bad)


@pytest.mark.parametrize(
    "limits",
    [
        Limits(cpus=0.25, memory="256Mi"),
        Limits(cpus=1, memory="1g", pids=64),
        Limits(cpus=2.5, memory="6Gi", gpus=1),
        Limits(cpus=8, memory="30Gi", gpus=4),
        Limits(cpus=0.75, memory=700 * 1024**2 + 512, gpus="0,1"),
    ],
)
def test_manifest_limits_equal_local_limits(image: ImageInfo, tmp_path: Path, limits: Limits) -> None:
    export_k8s(image, limits, tmp_path)
    objects = _load(tmp_path)
    validate_strict(objects["deployment.yaml"])
    resources = _pod(objects)["containers"][0]["resources"]
    assert resources["requests"] == resources["limits"]
    assert cpu_cores(resources["limits"]["cpu"]) == pytest.approx(limits.cpus)
    assert memory_bytes(resources["limits"]["memory"]) == limits.memory
    gpus = resources["limits"].get("nvidia.com/gpu")
    assert (int(gpus) if gpus else None) == limits.gpu_count
    tolerations = _pod(objects).get("tolerations", [])
    assert bool(tolerations) == bool(limits.gpu_count)


def test_pod_is_hardened(image: ImageInfo, tmp_path: Path) -> None:
    export_k8s(image, LIMITS, tmp_path)
    pod = _pod(_load(tmp_path))
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    sc = pod["containers"][0]["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["runAsUser"] == 10001 and sc["runAsNonRoot"] is True
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_image_is_pinned_by_digest(image: ImageInfo, tmp_path: Path) -> None:
    result = export_k8s(image, LIMITS, tmp_path)
    container = _pod(_load(tmp_path))["containers"][0]
    assert container["image"] == f"registry.example.com/team/iris-classifier@{DIGEST}"
    assert result.image == container["image"]
    assert container["imagePullPolicy"] == "IfNotPresent"


def test_probes_labels_and_scraping(image: ImageInfo, tmp_path: Path) -> None:
    export_k8s(image, LIMITS, tmp_path)
    objects = _load(tmp_path)
    dep = objects["deployment.yaml"]
    container = _pod(objects)["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    labels = dep["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "iris-classifier"
    assert labels["app.kubernetes.io/version"] == "1.2.0"
    assert labels["app.kubernetes.io/managed-by"] == "mlpack"
    selector = dep["spec"]["selector"]["matchLabels"]
    assert "app.kubernetes.io/version" not in selector  # selectors are immutable
    assert objects["service.yaml"]["spec"]["selector"] == selector
    assert objects["pdb.yaml"]["spec"]["selector"]["matchLabels"] == selector
    for key, value in selector.items():
        assert dep["spec"]["template"]["metadata"]["labels"][key] == value
    notes = dep["spec"]["template"]["metadata"]["annotations"]
    assert notes == {"prometheus.io/scrape": "true", "prometheus.io/path": "/metrics", "prometheus.io/port": "8080"}
    # The server drains for 20 s; the kubelet waits 5 s more before SIGKILL.
    assert _pod(objects)["terminationGracePeriodSeconds"] == 25


@pytest.mark.parametrize(("start", "budget"), [(None, 30), (4.0, 30), (25.0, 76), (100.0, 300)])
def test_startup_probe_is_sized_from_the_measured_start(
    image: ImageInfo, tmp_path: Path, start: float | None, budget: int
) -> None:
    export_k8s(replace(image, start_seconds=start), LIMITS, tmp_path)
    probe = _pod(_load(tmp_path))["containers"][0]["startupProbe"]
    assert probe["httpGet"]["path"] == "/v2/health/live"
    allowed = probe["periodSeconds"] * probe["failureThreshold"]
    assert budget <= allowed < budget + probe["periodSeconds"]
    assert allowed >= 3 * (start or 0)


def test_image_labels_fill_start_and_grace(image: ImageInfo, tmp_path: Path) -> None:
    labelled = replace(
        image, start_seconds=None, stop_grace_seconds=None,
        labels={LABEL_START_SECONDS: "40", LABEL_SHUTDOWN_GRACE: "60"},
    )
    export_k8s(labelled, LIMITS, tmp_path)
    pod = _pod(_load(tmp_path))
    assert pod["terminationGracePeriodSeconds"] == 65
    probe = pod["containers"][0]["startupProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] >= 120


def test_replicas_without_autoscaler(image: ImageInfo, tmp_path: Path) -> None:
    result = export_k8s(image, LIMITS, tmp_path, ExportOptions(replicas=3, max_replicas=3))
    objects = _load(tmp_path)
    assert "hpa.yaml" not in objects
    assert objects["deployment.yaml"]["spec"]["replicas"] == 3
    assert "hpa.yaml" not in objects["kustomization.yaml"]["resources"]
    assert [o["kind"] for o in result.objects] == ["Deployment", "Service", "PodDisruptionBudget"]


def test_autoscaler_owns_the_replica_count(image: ImageInfo, tmp_path: Path) -> None:
    export_k8s(image, LIMITS, tmp_path, ExportOptions(min_replicas=2, max_replicas=10, target_cpu=60))
    objects = _load(tmp_path)
    assert "replicas" not in objects["deployment.yaml"]["spec"]
    hpa = objects["hpa.yaml"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 10)
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "iris-classifier"}
    assert hpa["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 60}


def test_output_is_deterministic(image: ImageInfo, tmp_path: Path) -> None:
    export_k8s(image, LIMITS, tmp_path / "a")
    export_k8s(image, LIMITS, tmp_path / "b")
    for path in (tmp_path / "a").iterdir():
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes()


def test_header_documents_qos_and_pids(image: ImageInfo, tmp_path: Path) -> None:
    export_k8s(image, LIMITS, tmp_path)
    text = (tmp_path / "deployment.yaml").read_text()
    header = text.split("apiVersion:")[0]
    assert "Guaranteed" in header and "podPidsLimit" in header and "100" in header


def test_reexport_removes_only_its_own_stale_files(image: ImageInfo, tmp_path: Path) -> None:
    export_k8s(image, LIMITS, tmp_path)
    (tmp_path / "mine.yaml").write_text("kind: ConfigMap\n")
    export_k8s(image, LIMITS, tmp_path, ExportOptions(kserve=True))
    names = {p.name for p in tmp_path.glob("*.yaml")}
    assert names == {"inferenceservice.yaml", "pdb.yaml", "kustomization.yaml", "mine.yaml"}


def test_never_overwrites_a_foreign_file(image: ImageInfo, tmp_path: Path) -> None:
    (tmp_path / "service.yaml").write_text("kind: Service\n")
    with pytest.raises(ExportError):
        export_k8s(image, LIMITS, tmp_path)
    assert (tmp_path / "service.yaml").read_text() == "kind: Service\n"


# -- errors -------------------------------------------------------------------------


def _error(image: ImageInfo, tmp_path: Path, limits: Limits = LIMITS, **options: Any) -> ExportError:
    with pytest.raises(ExportError) as info:
        export_k8s(image, limits, tmp_path / "out", ExportOptions(**options))
    assert not (tmp_path / "out").exists(), "an error must come before any file is written"
    assert info.value.hint, "every export error says what to do"
    return info.value


def test_no_digest_is_an_error_unless_tags_are_allowed(image: ImageInfo, tmp_path: Path) -> None:
    untagged = replace(image, digest=None)
    assert "digest" in str(_error(untagged, tmp_path))
    result = export_k8s(untagged, LIMITS, tmp_path / "ok", ExportOptions(allow_tag=True))
    container = result.objects[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/team/iris-classifier:1.2.0"
    assert container["imagePullPolicy"] == "Always"
    assert "MUTABLE TAG" in (tmp_path / "ok" / "deployment.yaml").read_text()


def test_local_store_names_cannot_be_pulled(image: ImageInfo, tmp_path: Path) -> None:
    local = replace(image, reference="localhost/mlpack/iris:latest")
    assert "--push" in (_error(local, tmp_path).hint or "")
    result = export_k8s(local, LIMITS, tmp_path / "ok", ExportOptions(registry="127.0.0.1:5000"))
    assert result.image == f"127.0.0.1:5000/mlpack/iris@{DIGEST}"
    result = export_k8s(local, LIMITS, tmp_path / "ok2", ExportOptions(registry="reg.example/ml/iris"))
    assert result.image == f"reg.example/ml/iris@{DIGEST}"


@pytest.mark.parametrize("name", ["Iris", "iris_v2", "2iris", "x" * 64])
def test_bad_name(image: ImageInfo, tmp_path: Path, name: str) -> None:
    assert "DNS-1123" in str(_error(image, tmp_path, name=name))


def test_bad_derived_name_asks_for_name(image: ImageInfo, tmp_path: Path) -> None:
    err = _error(replace(image, reference="reg.example/9lives"), tmp_path)
    assert "--name" in (err.hint or "")


def test_bad_namespace(image: ImageInfo, tmp_path: Path) -> None:
    _error(image, tmp_path, namespace="ML_team")


def test_root_and_named_users_are_refused(image: ImageInfo, tmp_path: Path) -> None:
    assert "root" in str(_error(replace(image, user_uid=0), tmp_path))
    assert "--user" in (_error(replace(image, user_uid=None), tmp_path).hint or "")
    result = export_k8s(replace(image, user_uid=None), LIMITS, tmp_path / "ok", ExportOptions(run_as_user=4242))
    assert result.objects[0]["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 4242


def test_limits_kubernetes_cannot_express(image: ImageInfo, tmp_path: Path) -> None:
    _error(image, tmp_path, limits=Limits(cpus=1, memory="1Gi", gpus="all"))
    _error(image, tmp_path, limits=Limits(cpus=0.0125, memory="1Gi"))
    _error(image, tmp_path, limits=Limits(memory="1Gi"))


def test_bad_options() -> None:
    for bad in ({"replicas": 0}, {"min_replicas": 3, "max_replicas": 2}, {"target_cpu": 0}, {"kserve_mode": "x"}):
        with pytest.raises(ExportError):
            ExportOptions(**bad)


def test_digest_conflict(image: ImageInfo, tmp_path: Path) -> None:
    other = "sha256:" + "0" * 64
    _error(replace(image, reference=f"reg.example/a@{other}"), tmp_path)
