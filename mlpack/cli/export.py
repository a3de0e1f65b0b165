"""``mlpack export k8s``: flags onto ExportOptions and Limits; :mod:`mlpack.pipeline.export` does the work."""

from __future__ import annotations

import argparse

from mlpack.errors import ExportError
from mlpack.settings import Settings
from mlpack.types import Limits

__all__ = ["register"]

def register(sub: argparse._SubParsersAction) -> None:
    """Adds ``mlpack export k8s``."""
    export = sub.add_parser("export", help="export an image for a platform (Kubernetes)")
    targets = export.add_subparsers(dest="target", metavar="TARGET")
    p = targets.add_parser(
        "k8s",
        help="write a kustomize directory (Deployment, Service, HPA, PDB or a KServe InferenceService)",
    )
    p.add_argument("image", metavar="IMAGE", help="image in the store, or a reference with @sha256 digest")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="directory to write")
    p.add_argument("--name", help="object name (DNS-1123 label; default: from the repository)")
    p.add_argument("-n", "--namespace", help="namespace for every object")
    p.add_argument("--replicas", type=int, default=2, help="replicas (the autoscaler's floor)")
    p.add_argument("--min-replicas", type=int, help="autoscaler minimum (default: --replicas)")
    p.add_argument("--max-replicas", type=int, help="autoscaler maximum (default: 4x the minimum)")
    p.add_argument("--target-cpu", type=int, default=70, help="autoscale at this %% of the CPU request")
    p.add_argument("--cpus", type=float, help="CPU limit = request, as tested locally (e.g. 1.5)")
    p.add_argument("-m", "--memory", help="memory limit = request (e.g. 512Mi, 1g)")
    p.add_argument("--gpus", help="whole GPUs (count); 'all' cannot be expressed in a pod")
    p.add_argument("--pids-limit", type=int, help="recorded as a note: pods get the node's podPidsLimit")
    p.add_argument("--kserve", action="store_true", help="write a KServe InferenceService instead")
    p.add_argument("--kserve-mode", default="RawDeployment", choices=("RawDeployment", "Serverless"))
    p.add_argument("--registry", metavar="REF", help="where the cluster pulls from (host or host/repo)")
    p.add_argument("--push", metavar="REF", help="push the image to REF first and pin its digest")
    p.add_argument("--allow-tag", action="store_true", help="accept an image known only by tag")
    p.add_argument("--user", type=int, help="uid to run as (when the image's USER is a name)")
    p.add_argument("--start-seconds", type=float, help="measured start time, sizes the startup probe")
    p.set_defaults(handler=_export_k8s)
    export.set_defaults(handler=lambda args, settings: (export.print_help() or 2))


def _check_gpus(value: str | None) -> None:
    """Refuse a fractional GPU with the Kubernetes reason (Limits would say less)."""
    try:
        count = float(value) if value is not None else None
    except ValueError:
        return  # "all" and device ids: Limits and mlpack.kube judge those
    if count is not None and not count.is_integer():
        raise ExportError(
            f"--gpus {value}: Kubernetes allocates whole GPUs (nvidia.com/gpu is an integer)",
            hint="ask for a whole number of GPUs, e.g. --gpus 1",
        )


def _export_k8s(args: argparse.Namespace, settings: Settings) -> int:
    _check_gpus(args.gpus)
    from mlpack.kube import ExportOptions

    limits = Limits(cpus=args.cpus, memory=args.memory, pids=args.pids_limit, gpus=args.gpus)
    options = ExportOptions(
        name=args.name,
        namespace=args.namespace,
        replicas=args.replicas,
        min_replicas=args.min_replicas,
        max_replicas=args.max_replicas,
        target_cpu=args.target_cpu,
        kserve=args.kserve,
        kserve_mode=args.kserve_mode,
        allow_tag=args.allow_tag,
        registry=args.registry,
        run_as_user=args.user,
    )
    from mlpack.pipeline.export import export

    result = export(
        args.image, options, out_dir=args.output, limits=limits,
        settings=settings, push=args.push, start_seconds=args.start_seconds,
    )
    print(f"image: {result.image}")
    for path in result.files:
        print(f"wrote {path}")
    print(f"apply with: kubectl apply -k {result.out_dir}")
    return 0
