"""An image as the plain ImageInfo mlpack.kube takes, resolved in the store and pushed
when asked, then the manifests: what ``mlpack.export_k8s``, ``mlpack export k8s``
and ``mlpack.serve(k8s=...)`` all run.

mlpack.kube never imports the store or the registry client (DESIGN.md): this
module resolves a reference in the store, pushes when asked, and hands over
plain values.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from mlpack.errors import ExportError, ImageNotFound
from mlpack.oci.config import ImageConfig
from mlpack.oci.image import Image
from mlpack.settings import Settings
from mlpack.types import DEFAULT_PORT, Limits

if TYPE_CHECKING:  # mlpack.kube and PyYAML load only when an export runs: `mlpack run` starts faster
    from mlpack.kube import ExportOptions, ExportResult, ImageInfo

__all__ = ["export", "image_info", "image_info_from_config", "resolve_image"]

# Server settings the image may carry as ENV (mlpack.server.config reads
# MLPACK_<FIELD>): the port it listens on and how long it drains.
_ENV_PORT = "MLPACK_PORT"
_ENV_GRPC_PORT = "MLPACK_GRPC_PORT"
_ENV_GRACE = "MLPACK_GRACEFUL_TIMEOUT_S"


def _port(config: ImageConfig, env: dict[str, str]) -> int | None:
    """MLPACK_PORT when set, else the default port when exposed, else the lowest exposed TCP port."""
    if env.get(_ENV_PORT, "").isdigit():
        return int(env[_ENV_PORT])
    ports = config.tcp_ports
    if not ports:
        return None
    return DEFAULT_PORT if DEFAULT_PORT in ports else ports[0]


def _grpc_port(env: dict[str, str]) -> int | None:
    raw = env.get(_ENV_GRPC_PORT, "")
    return int(raw) if raw.isdigit() and 0 < int(raw) < 65536 else None


def _grace(env: dict[str, str]) -> int | None:
    try:
        return int(round(float(env[_ENV_GRACE]))) if _ENV_GRACE in env else None
    except ValueError:
        return None


def image_info_from_config(reference: str, digest: str | None, config: ImageConfig) -> ImageInfo:
    """ImageInfo, plain values for mlpack.kube, from an image's parsed config."""
    from mlpack.kube import ImageInfo

    env = config.env_map
    uid, gid = config.user_ids
    info = ImageInfo(
        reference=reference,
        digest=digest,
        user_uid=uid,
        user_gid=gid,
        labels=dict(config.labels),
        stop_grace_seconds=_grace(env),
        grpc_port=_grpc_port(env),
    )
    port = _port(config, env)
    return replace(info, port=port) if port else info


def image_info(image: ImageInfo | Image | str, *, reference: str | None = None,
               digest: str | None = None) -> ImageInfo:
    """ImageInfo from an ImageInfo, a reference string or a store Image without looking anything up.

    ``reference``/``digest`` override where the cluster pulls from, e.g. after
    a push: ``image_info(image, reference=pushed_ref, digest=pushed_digest)``.
    """
    info = _image_info(image)
    if reference is not None:
        info = replace(info, reference=reference)
    if digest is not None:
        info = replace(info, digest=digest)
    return info


def _image_info(image: ImageInfo | Image | str) -> ImageInfo:
    from mlpack.kube import ImageInfo

    if isinstance(image, ImageInfo):
        return image
    if isinstance(image, str):
        from mlpack.kube.naming import parse_reference

        ref = parse_reference(image)
        return ImageInfo(reference=ref, digest=ref.digest)
    if isinstance(image, Image):
        return image_info_from_config(image.ref or image.digest, image.digest, image.config)
    raise ExportError(
        f"cannot export {type(image).__name__!r} as an image",
        hint="pass a reference such as 'registry.example.com/team/model:tag', a store Image, "
        "or an mlpack.kube.ImageInfo",
    )


def _from_store(ref: str, settings: Settings) -> Image | None:
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
    image: ImageInfo | Image | str,
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
    from mlpack.kube import ExportOptions, check_export
    from mlpack.kube.naming import parse_reference

    source = image
    if isinstance(image, str) and parse_reference(image).digest is None:
        found = _from_store(image.strip(), settings)
        if found is not None:
            source = found
    info = image_info(source)
    if push:
        if not isinstance(source, Image):
            raise ExportError(
                f"--push needs an image from the local store; {info.reference.familiar()!r} is not in it",
                hint="build or pull it first (`mlpack images` lists the store)",
            )
        if limits is not None:
            # Fail on names, limits and users before a slow push, not after.
            check_export(replace(info, reference=push), limits, options or ExportOptions())
        from mlpack.oci.registry import push as _push

        digest = _push(source, push, settings=settings)
        if not digest:
            raise ExportError(f"pushing to {push} returned no digest")
        info = image_info(info, reference=push, digest=digest)
    return info


def export(
    image: ImageInfo | Image | str,
    options: ExportOptions | None = None,
    *,
    out_dir: str | Path,
    settings: Settings,
    limits: Limits | None = None,
    push: str | None = None,
    start_seconds: float | None = None,
) -> ExportResult:
    """Resolve (and with ``push`` push) ``image``, then write the manifests into ``out_dir``."""
    from mlpack.kube import ExportOptions, export_k8s

    options = options or ExportOptions()
    limits = limits if limits is not None else Limits()
    info = resolve_image(image, settings=settings, push=push, limits=limits, options=options)
    if start_seconds is not None:
        info = replace(info, start_seconds=start_seconds)
    return export_k8s(info, limits, Path(out_dir), options)
