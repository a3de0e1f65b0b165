"""``export_k8s``: decide the plan, build the objects, write the directory."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from mlpack.errors import ExportError
from mlpack.kube import objects
from mlpack.kube.naming import (
    check_digest,
    check_dns_label,
    label_value,
    name_from_repository,
    parse_reference,
)
from mlpack.kube.resources import map_limits
from mlpack.kube.values import (
    DEFAULT_SHUTDOWN_GRACE,
    LABEL_SHUTDOWN_GRACE,
    LABEL_START_SECONDS,
    ExportOptions,
    ExportResult,
    ImageInfo,
)
from mlpack.kube.writer import dump, kustomization, write_files
from mlpack.reference import LOCAL_REGISTRY, Reference, names_registry
from mlpack.types import Limits

__all__ = ["export_k8s", "check_export", "image_line", "plan_for", "build_objects"]

# Seconds between the server's own drain deadline and the kubelet's SIGKILL:
# the process still has to flush logs and exit after it stops serving.
EXIT_MARGIN_SECONDS = 5


def _pull_repository(ref: Reference, registry: str | None) -> Reference:
    """Where the cluster pulls from: the image's own repository or ``registry``."""
    if not registry:
        return ref
    registry = registry.strip().rstrip("/")
    if "/" not in registry:
        # Only a host (``registry.example.com:5000``): keep the image's path.
        return Reference(registry, ref.path, ref.tag, ref.digest)
    if not names_registry(registry):
        raise ExportError(
            f"--registry {registry!r} names no registry host",
            hint="use host[:port]/path, e.g. registry.example.com/team/model",
        )
    target = parse_reference(registry)
    return Reference(target.registry, target.repository, target.tag or ref.tag, ref.digest)


def image_line(image: ImageInfo, options: ExportOptions, registry: str | None = None) -> tuple[str, str]:
    """(image, imagePullPolicy) for the pod: by digest, or by tag when allowed."""
    ref = _pull_repository(image.reference, registry)
    digest = image.digest or ref.digest
    if image.digest and ref.digest and image.digest != ref.digest:
        raise ExportError(
            f"reference {image.reference.familiar()!r} and digest {image.digest} disagree",
            hint="pass the reference without @sha256:..., or the digest it names",
        )
    if digest is not None:
        check_digest(digest)
    if ref.registry == LOCAL_REGISTRY:
        raise ExportError(
            f"{ref.familiar_name} names the local store, which no cluster can pull from",
            hint="push the image first (--push registry.example.com/team/model:tag) "
            "or name where it was pushed (--registry registry.example.com/team/model)",
        )
    if digest:
        return f"{ref.familiar_name}@{digest}", "IfNotPresent"
    if options.allow_tag:
        return f"{ref.familiar_name}:{ref.tag or 'latest'}", "Always"
    raise ExportError(
        f"image {image.reference.familiar()!r} has no digest, and a tag can change under a running Deployment",
        hint="push it first (--push REF) or export an image from the local store, so the "
        "manifests pin a digest; allow_tag=True (--allow-tag) accepts the tag anyway",
    )


def _number(value: float | None, image: ImageInfo, label: str) -> float | None:
    return value if value is not None else image.label_number(label)


def plan_for(image: ImageInfo, limits: Limits, options: ExportOptions) -> tuple[objects.Plan, list[str]]:
    """Every decision, checked, before anything is written; plus header notes."""
    image_str, pull_policy = image_line(image, options, options.registry)
    source = image.reference
    name = options.name or image.name or name_from_repository(source)
    check_dns_label(name, "name", letter_first=True)
    if options.namespace:
        check_dns_label(options.namespace, "namespace")
    uid = options.run_as_user if options.run_as_user is not None else image.user_uid
    if uid is None:
        raise ExportError(
            f"the user of image {image.reference.familiar()!r} is not a numeric uid, so "
            "Kubernetes cannot check runAsNonRoot",
            hint="build the image with a numeric USER (USER 1000) or pass --user UID",
        )
    if uid == 0:
        raise ExportError(
            f"image {image.reference.familiar()!r} runs as root, which runAsNonRoot refuses",
            hint="build it with a non-root USER (mlpack's Dockerfile does) or pass --user UID",
        )
    if not 1 <= image.port <= 65535:
        raise ExportError(f"port {image.port} of {image.reference.familiar()!r} is not a TCP port")
    resources = map_limits(limits)
    start = _number(image.start_seconds, image, LABEL_START_SECONDS)
    grace_f = _number(
        float(image.stop_grace_seconds) if image.stop_grace_seconds is not None else None,
        image,
        LABEL_SHUTDOWN_GRACE,
    )
    grace = int(round(grace_f)) if grace_f is not None else DEFAULT_SHUTDOWN_GRACE
    version = (
        label_value((image.labels or {}).get("org.opencontainers.image.version"))
        or label_value(source.tag)
        or (image_str.split("@sha256:", 1)[1][:12] if "@sha256:" in image_str else None)
    )
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": name}
    if version:
        labels["app.kubernetes.io/version"] = version
    labels["app.kubernetes.io/component"] = "inference-server"
    labels["app.kubernetes.io/managed-by"] = "mlpack"
    plan = objects.Plan(
        name=name,
        namespace=options.namespace,
        image=image_str,
        pull_policy=pull_policy,
        port=image.port,
        grpc_port=image.grpc_port if image.grpc_port and image.grpc_port != image.port else None,
        uid=uid,
        gid=image.user_gid if options.run_as_user is None else None,
        resources=resources,
        start_seconds=start,
        grace_seconds=grace + EXIT_MARGIN_SECONDS,
        labels=labels,
        options=options,
    )
    period, failures = objects.startup_budget(start, options)
    measured = f"measured start {start:.1f} s" if start is not None else "start time not measured"
    notes = [
        f"image: {image_str}"
        + ("" if "@sha256:" in image_str else "  (MUTABLE TAG: allow_tag was set)"),
        *resources.notes,
        f"startupProbe allows {period * failures} s ({measured}; x{options.startup_factor:g}, "
        f"at least {options.startup_min_seconds} s) before liveness takes over.",
        f"terminationGracePeriodSeconds {plan.grace_seconds} = the server's {grace} s "
        f"shutdown grace + {EXIT_MARGIN_SECONDS} s to exit.",
        f"Runs as uid {uid} with a read-only root filesystem; /tmp is an emptyDir.",
    ]
    if options.kserve and options.kserve_mode == "Serverless":
        notes.append(
            "Serverless (Knative) mode: enable Knative's podspec features for emptyDir "
            "volumes, securityContext"
            + (" and tolerations" if resources.gpus else "")
            + " (config-features), or use RawDeployment."
        )
    return plan, notes


def build_objects(plan: objects.Plan) -> dict[str, dict[str, Any]]:
    """``{file name: object}`` in the order kustomize lists them."""
    if plan.options.kserve:
        return {
            "inferenceservice.yaml": objects.inference_service(plan),
            "pdb.yaml": objects.disruption_budget(plan),
        }
    built = {
        "deployment.yaml": objects.deployment(plan),
        "service.yaml": objects.service(plan),
    }
    if plan.options.autoscaled:
        built["hpa.yaml"] = objects.autoscaler(plan)
    built["pdb.yaml"] = objects.disruption_budget(plan)
    return built


def check_export(image: ImageInfo, limits: Limits, options: ExportOptions) -> None:
    """Raise the ExportError export_k8s would, except for a missing digest.

    For a front door that is about to push: the push supplies the digest,
    and every other mistake should surface before a slow upload.
    """
    plan_for(image, limits, replace(options, allow_tag=True))


def export_k8s(
    image: ImageInfo,
    limits: Limits,
    out_dir: str | Path,
    options: ExportOptions | None = None,
) -> ExportResult:
    """Write a kustomize directory for ``image`` run with ``limits``.

    Deployment, Service, HorizontalPodAutoscaler (when max > min replicas),
    PodDisruptionBudget and kustomization.yaml; with ``options.kserve`` an
    InferenceService and the PodDisruptionBudget instead. Raises ExportError,
    before writing anything, for what Kubernetes cannot express.
    """
    if not isinstance(image, ImageInfo):
        raise ExportError(
            f"mlpack.kube.export_k8s wants an ImageInfo, got {type(image).__name__}",
            hint="call mlpack.export_k8s, which resolves references and store images",
        )
    options = options or ExportOptions()
    plan, notes = plan_for(image, limits, options)
    built = build_objects(plan)
    texts: dict[str, str] = {}
    for file_name, obj in built.items():
        kind = obj["kind"]
        header = [f"{kind} {plan.name}"]
        if kind in ("Deployment", "InferenceService"):
            header += [""] + notes
        texts[file_name] = dump(obj, header)
    texts["kustomization.yaml"] = dump(
        kustomization(built, plan.namespace),
        ["Apply with: kubectl apply -k <this directory>", f"image: {plan.image}"],
    )
    files = write_files(Path(out_dir), texts)
    return ExportResult(
        out_dir=Path(out_dir),
        files=files,
        objects=tuple(built.values()),
        image=plan.image,
        name=plan.name,
        notes=tuple(notes),
    )
