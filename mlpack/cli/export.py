"""``mlpack export k8s``: Kubernetes manifests for an image, and the front-door
conversion of whatever names an image into the plain ImageInfo mlpack.kube takes.

mlpack.kube never imports the store or the registry client (DESIGN.md): this
module resolves a reference in the store, pushes when asked, and hands over
plain values.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

from mlpack.errors import ExportError, ImageNotFound
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # mlpack.kube and PyYAML load only when an export runs: `mlpack run` starts faster
    from mlpack.kube import ExportOptions, ExportResult, ImageInfo
from mlpack.settings import Settings
from mlpack.types import Limits

__all__ = ["register", "export", "image_info", "image_info_from_config", "resolve_image"]

# Server settings the image may carry as ENV (mlpack.server.config reads
# MLPACK_<FIELD>): the port it listens on and how long it drains.
_ENV_PORT = "MLPACK_PORT"
_ENV_GRPC_PORT = "MLPACK_GRPC_PORT"
_ENV_GRACE = "MLPACK_GRACEFUL_TIMEOUT_S"


def _parse_user(user: str | None) -> tuple[int | None, int | None]:
    """(uid, gid) from a config ``User``: "" is root, a name is unknown (None)."""
    text = (user or "").strip()
    if not text:
        return 0, None
    uid_s, _, gid_s = text.partition(":")
    uid = int(uid_s) if uid_s.isdigit() else None
    gid = int(gid_s) if gid_s.isdigit() else None
    return uid, gid


def _parse_port(exposed: dict[str, Any] | None, env: dict[str, str]) -> int | None:
    if env.get(_ENV_PORT, "").isdigit():
        return int(env[_ENV_PORT])
    ports = []
    for key in exposed or {}:
        number, _, proto = str(key).partition("/")
        if number.isdigit() and proto in ("", "tcp"):  # "8080" means tcp too
            ports.append(int(number))
    ports.sort()
    if not ports:
        return None
    return 8080 if 8080 in ports else ports[0]


def _grpc_port(env: dict[str, str]) -> int | None:
    raw = env.get(_ENV_GRPC_PORT, "")
    return int(raw) if raw.isdigit() and 0 < int(raw) < 65536 else None


def image_info_from_config(reference: str, digest: str | None, config: dict[str, Any]) -> ImageInfo:
    """ImageInfo from an OCI image config (the whole config blob or its ``config`` part)."""
    from mlpack.kube import ImageInfo

    inner = config.get("config") if isinstance(config.get("config"), dict) else config
    env = dict(
        item.split("=", 1) for item in (inner.get("Env") or []) if isinstance(item, str) and "=" in item
    )
    uid, gid = _parse_user(inner.get("User"))
    port = _parse_port(inner.get("ExposedPorts"), env)
    grace: int | None = None
    try:
        grace = int(round(float(env[_ENV_GRACE]))) if _ENV_GRACE in env else None
    except ValueError:
        grace = None
    info = ImageInfo(
        reference=reference,
        digest=digest,
        user_uid=uid,
        user_gid=gid,
        labels={str(k): str(v) for k, v in (inner.get("Labels") or {}).items()},
        stop_grace_seconds=grace,
        grpc_port=_grpc_port(env),
    )
    return replace(info, port=port) if port else info


def image_info(image: Any, *, reference: str | None = None, digest: str | None = None) -> ImageInfo:
    """ImageInfo from an ImageInfo, a reference string or a store Image (``.ref``,
    ``.digest``, ``.config``) without looking anything up.

    ``reference``/``digest`` override where the cluster pulls from, e.g. after
    a push: ``image_info(image, reference=pushed_ref, digest=pushed_digest)``.
    """
    info = _image_info(image)
    if reference is not None:
        info = replace(info, reference=reference)
    if digest is not None:
        info = replace(info, digest=digest)
    return info


def _image_info(image: Any) -> ImageInfo:
    from mlpack.kube import ImageInfo

    if isinstance(image, ImageInfo):
        return image
    if isinstance(image, str):
        from mlpack.kube.naming import parse_reference

        return ImageInfo(reference=image.strip(), digest=parse_reference(image).digest)
    if hasattr(image, "digest") and hasattr(image, "config"):
        reference = getattr(image, "ref", None) or image.digest
        return image_info_from_config(str(reference), image.digest, dict(image.config or {}))
    raise ExportError(
        f"cannot export {type(image).__name__!r} as an image",
        hint="pass a reference such as 'registry.example.com/team/model:tag', a store Image, "
        "or an mlpack.kube.ImageInfo",
    )


def _from_store(ref: str, settings: Settings) -> Any | None:
    """The store's Image for ``ref``, or None when the store does not hold it."""
    if not (settings.store_dir / "index.json").exists():
        return None
    try:
        from mlpack.oci.layout import Store
    except ImportError:  # the store stage is not installed in this environment
        return None
    try:
        return Store(settings.store_dir).resolve(ref)
    except ImageNotFound:
        return None


def resolve_image(
    image: Any,
    *,
    settings: Settings,
    push: str | None = None,
    limits: Limits | None = None,
    options: ExportOptions | None = None,
) -> ImageInfo:
    """The front door's job: a reference is looked up in the store (which knows
    its digest, user and port); with ``push`` the image is pushed there first
    and the manifests name the pushed digest. Given ``limits`` and
    ``options``, everything else is checked before anything is pushed."""
    from mlpack.kube import ExportOptions, ImageInfo, check_export

    from mlpack.kube.naming import parse_reference

    source = image
    if isinstance(image, str) and parse_reference(image).digest is None:
        found = _from_store(image.strip(), settings)
        if found is not None:
            source = found
    info = image_info(source)
    if push:
        stored = source if not isinstance(source, (str, ImageInfo)) else None
        if stored is None:
            raise ExportError(
                f"--push needs an image from the local store; {info.reference!r} is not in it",
                hint="build or pull it first (`mlpack images` lists the store)",
            )
        if limits is not None:
            # Fail on names, limits and users before a slow push, not after.
            check_export(replace(info, reference=push), limits, options or ExportOptions())
        from mlpack.oci.registry import push as _push

        pushed = _push(stored, push, settings=settings)
        digest = pushed if isinstance(pushed, str) else getattr(pushed, "digest", None)
        if not digest:
            raise ExportError(f"pushing to {push} returned no digest")
        info = image_info(info, reference=push, digest=digest)
    return info


def export(
    image: Any,
    limits: Limits | None,
    out_dir: Any,
    options: ExportOptions | dict[str, Any] | None = None,
    *,
    settings: Settings,
    push: str | None = None,
    start_seconds: float | None = None,
) -> ExportResult:
    """Resolve (and push) ``image``, then write the manifests: what mlpack.export_k8s
    and ``mlpack export k8s`` both run."""
    from mlpack.kube import ExportOptions, export_k8s

    if isinstance(options, dict):
        options = ExportOptions(**options)
    options = options or ExportOptions()
    limits = limits if limits is not None else Limits()
    info = resolve_image(image, settings=settings, push=push, limits=limits, options=options)
    if start_seconds is not None:
        info = replace(info, start_seconds=start_seconds)
    return export_k8s(info, limits, out_dir, options)


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
    result = export(
        args.image, limits, args.output, options,
        settings=settings, push=args.push, start_seconds=args.start_seconds,
    )
    print(f"image: {result.image}")
    for path in result.files:
        print(f"wrote {path}")
    print(f"apply with: kubectl apply -k {result.out_dir}")
    return 0
