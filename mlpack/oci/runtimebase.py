"""A base image's runtime image: its first layer alone, what a serving image's runtime stage starts from.

``mlpack base bootstrap`` (:mod:`mlpack.oci.base`) stores the offline base in
two layers (the runtime, then what only a builder stage runs) and its first
layer alone as ``runtime_ref(ref)`` (``localhost/mlpack/python:3.11-runtime``).
:func:`runtime_image` is what the builder asks for a ``FROM`` of that name:
it makes the image from the base where the store lacks it or holds another
base's (one moved alone with ``mlpack save``/``load``, or bootstrapped since).
Light on purpose: every build of a rendered context resolves it, and a
model-only rebuild's CLI should load no more than it needs.
"""

from __future__ import annotations

from mlpack.errors import ImageNotFound
from mlpack.oci.image import Image
from mlpack.oci.layout import Store
from mlpack.oci.platforms import host_platform
from mlpack.reference import parse as parse_reference
from mlpack.types import RUNTIME_TAG_SUFFIX

TYPE_CHECKING = False  # typing is the type checker's: a CLI rebuild does not import it
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

__all__ = ["RECIPE_LABEL", "make_runtime_image", "runtime_image", "runtime_ref"]

RECIPE_LABEL = "io.mlpack.base.recipe"  # on every base mlpack bootstraps (mlpack.oci.base.recipe)


def runtime_ref(ref: str) -> str:
    """Where ``bootstrap`` stores the runtime image of the base ``ref``: its tag + ``-runtime``."""
    parsed = parse_reference(ref)
    return str(parsed.with_tag((parsed.tag or "latest") + RUNTIME_TAG_SUFFIX))


def runtime_image(store: Store, ref: str, platform: tuple[str, str] | None = None) -> Image | None:
    """The image ``ref`` names, where ``ref`` may be a base's runtime image (``<base>:<tag>-runtime``):
    made (again) from the base's first layer when the store has that base (one mlpack bootstrapped:
    it has the recipe label) and the stored runtime image is missing or not its first layer. So a
    base moved with ``mlpack save``/``load`` alone serves both stages. None when the store has
    neither ``ref`` nor, for a runtime name, its base."""
    wanted = platform or host_platform()
    try:
        stored = store.resolve(ref, platform=wanted)
    except ImageNotFound:
        stored = None
    parsed = parse_reference(ref)
    if not parsed.tag or not parsed.tag.endswith(RUNTIME_TAG_SUFFIX) or parsed.digest:
        return stored
    try:
        base = store.resolve(str(parsed.with_tag(parsed.tag[:-len(RUNTIME_TAG_SUFFIX)])), platform=wanted)
    except ImageNotFound:
        return stored
    if RECIPE_LABEL not in base.config.labels or (base.config.os, base.config.architecture) != wanted:
        return stored
    if stored is not None and stored.diff_ids == base.diff_ids[:1]:
        return stored
    return make_runtime_image(store, base, ref)


def make_runtime_image(store: Store, base: Image, ref: str) -> Image:
    """Store the base's first layer alone as ``ref`` (for the base's platform; other platforms
    of ``ref`` stay): its config is the base's, with the first layer's history."""
    labels = {**base.config.labels, "org.opencontainers.image.title": "mlpack python runtime base"}
    if len(base.layers) > 1:
        labels["org.opencontainers.image.description"] = (labels.get("org.opencontainers.image.description", "")
                                                          + ", without what only a builder stage runs")
    blob = base.config.blob
    config = {**blob, "config": {**base.config.config_object, "Labels": labels},
              "rootfs": {"type": "layers", "diff_ids": base.diff_ids[:1]},
              "history": _history_of_first_layer(blob.get("history") or [])}
    from mlpack.oci.multiarch import add_platform  # only when one is made

    digest = store.put_image(config, [{**base.layers[0], "diff_id": base.diff_ids[0]}])
    add_platform(store, ref, digest)
    return store.resolve(ref, platform=(base.config.os or "linux", base.config.architecture or "amd64"))


def _history_of_first_layer(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """History entries up to and including the one that made the first layer."""
    for i, entry in enumerate(history):
        if not entry.get("empty_layer"):
            return history[:i + 1]
    return history
