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
from typing import TYPE_CHECKING, Any

from mlpack.errors import ExportError, ImageNotFound
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
    return DEFAULT_PORT if DEFAULT_PORT in ports else ports[0]


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
