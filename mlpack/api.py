"""The Python front door: thin functions over the pipeline stages.

Each function builds its Settings once (from the environment unless given)
and hands typed options to one stage package. No logic lives here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlpack.settings import Settings
from mlpack.types import Limits

if TYPE_CHECKING:  # pragma: no cover
    from mlpack.builder import BuildOptions, Progress
    from mlpack.bundle import Bundle
    from mlpack.dockerfile import BuildContext, RenderOptions
    from mlpack.kube import ExportOptions, ExportResult, ImageInfo
    from mlpack.oci.image import Image
    from mlpack.runtime import Container, ImageSource

__all__ = ["capture", "render", "build", "run", "serve", "push", "pull", "export_k8s"]


def capture(
    model: Any,
    sample: Any,
    *,
    name: str | None = None,
    path: str | Path | None = None,
    flavor: str = "auto",
    **options: Any,
) -> "Bundle":
    """Save ``model`` with its environment as a Bundle, ONNX where it converts."""
    from mlpack.bundle import capture as _capture

    return _capture(model, sample, name=name, path=path, flavor=flavor, **options)


def render(bundle: "Bundle | str | Path", options: "RenderOptions | None" = None, *,
           out_dir: str | Path | None = None) -> "BuildContext":
    """Render a Bundle into a build context (Dockerfile, .dockerignore, files)."""
    from mlpack.dockerfile import render as _render

    return _render(bundle, options, out_dir=out_dir)


def build(bundle_or_context: "Bundle | BuildContext | str | Path", options: "BuildOptions | None" = None, *,
          tag: str | None = None, settings: Settings | None = None, progress: "Progress | None" = None,
          **fields: Any) -> "Image":
    """Build an image into the local store from a Bundle, a BuildContext or a directory.

    ``options``: an mlpack.builder.BuildOptions; ``tag`` and its other fields may be given by keyword.
    """
    from mlpack.builder import build as _build

    if tag is not None:
        fields["tag"] = tag
    return _build(bundle_or_context, options, settings=settings or Settings.from_env(), progress=progress, **fields)


def run(
    image: "Image | ImageSource | str",
    *,
    cpus: float | None = None,
    memory: int | str | None = None,
    pids: int | None = None,
    gpus: int | str | None = None,
    ports: Any = None,
    name: str | None = None,
    command: list[str] | None = None,
    detach: bool = True,
    settings: Settings | None = None,
    **options: Any,
) -> "Container":
    """Run an image from the store as a container with enforced limits."""
    from mlpack.runtime import run as _run

    limits = Limits(cpus=cpus, memory=memory, pids=pids, gpus=gpus)
    return _run(
        image,
        limits=limits,
        ports=ports,
        name=name,
        command=command,
        detach=detach,
        settings=settings or Settings.from_env(),
        **options,
    )


def serve(model: Any, sample: Any, **options: Any) -> Any:
    """Capture, render, build and run ``model``; returns a Service."""
    from mlpack.service import serve as _serve

    return _serve(model, sample, **options)


def push(image: "Image | str", ref: str, *, settings: Settings | None = None, **options: Any) -> str:
    """Push an image from the store to a registry; returns the manifest digest."""
    from mlpack.oci.registry import push as _push

    return _push(image, ref, settings=settings or Settings.from_env(), **options)


def pull(ref: str, *, settings: Settings | None = None, **options: Any) -> "Image":
    """Pull an image from a registry into the store."""
    from mlpack.oci.registry import pull as _pull

    return _pull(ref, settings=settings or Settings.from_env(), **options)


def export_k8s(
    image: "ImageInfo | Image | str",
    limits: Limits | None = None,
    out_dir: str | Path = "k8s",
    options: "ExportOptions | dict[str, Any] | None" = None,
    *,
    push: str | None = None,
    settings: Settings | None = None,
) -> "ExportResult":
    """Write Kubernetes manifests (a kustomize directory) for an image.

    ``image``: a reference (looked up in the store for its digest, user and
    port), a store Image or an mlpack.kube.ImageInfo; ``options``: an
    mlpack.kube.ExportOptions or a dict of its fields; ``push``: push the
    image to this reference first so the manifests pin a digest that exists.
    """
    from mlpack.kube import ExportOptions
    from mlpack.pipeline.export import export

    if isinstance(options, dict):
        options = ExportOptions(**options)
    return export(image, options, out_dir=out_dir, limits=limits, push=push,
                  settings=settings or Settings.from_env())
