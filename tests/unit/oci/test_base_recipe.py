"""The offline base's recipe label: a store whose base was made by other trims bootstraps it again."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mlpack.oci.base import BASE_REF, RECIPE_LABEL, BaseOptions, current, recipe
from mlpack.oci.layer import LayerOptions, write_dir
from mlpack.oci.layout import Store


def _store_base(tmp_path: Path, labels: dict[str, str] | None) -> Store:
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/python3").write_text("#!/bin/sh\n")
    store = Store(tmp_path / "store")
    store.init()
    layer = write_dir(store, root, LayerOptions(source_date_epoch=0))
    config = {"architecture": "amd64", "os": "linux", "config": {"Labels": labels} if labels is not None else {}}
    store.put_image(config, [layer], ref=BASE_REF)
    return store


def test_the_recipe_follows_what_decides_the_content() -> None:
    base = BaseOptions()
    assert recipe(base) == recipe(BaseOptions()) and recipe(base).startswith("sha256:")
    for change in ({"purge_essential": base.purge_essential[:-1]}, {"purge": ()}, {"slim": False},
                   {"packages": (*base.packages, "curl")}, {"suite": "trixie"}, {"source_date_epoch": 1},
                   {"builder_only": base.builder_only[1:]}):
        assert recipe(dataclasses.replace(base, **change)) != recipe(base), change
    # where the packages come from and what the image is called do not change what it holds
    assert recipe(dataclasses.replace(base, mirrors=("http://deb.debian.org/debian",), ref="x/y:1")) == recipe(base)


def test_current_is_only_a_base_of_this_recipe(tmp_path: Path) -> None:
    assert current(Store(tmp_path / "empty")) is None
    fresh = _store_base(tmp_path / "fresh", {RECIPE_LABEL: recipe()})
    found = current(fresh)
    assert found is not None and found.ref == BASE_REF
    # made before the label existed, or by other trims: stale, so bootstrap runs again
    assert current(_store_base(tmp_path / "unlabelled", None)) is None
    stale = _store_base(tmp_path / "stale", {RECIPE_LABEL: recipe(BaseOptions(slim=False))})
    assert current(stale) is None
    assert current(stale, BaseOptions(slim=False)) is not None


def _two_layer_base(tmp_path: Path, store: Store, marker: str, labels: dict[str, str] | None) -> None:
    layers = []
    for name in ("runtime", "tools"):
        root = tmp_path / f"{name}-{marker}"
        (root / "usr/bin").mkdir(parents=True)
        (root / "usr/bin" / name).write_text(marker)
        layers.append(write_dir(store, root, LayerOptions(source_date_epoch=0)))
    config = {"architecture": "amd64", "os": "linux", "config": {"Labels": labels} if labels else {},
              "history": [{"created_by": "mmdebstrap"}, {"created_by": "builder tools"}]}
    store.put_image(config, layers, ref=BASE_REF)


def test_the_runtime_image_is_made_from_the_bases_first_layer(tmp_path: Path) -> None:
    """A base moved alone (mlpack save/load) or bootstrapped again: its runtime image follows it."""
    from mlpack.oci.base import RUNTIME_REF, runtime_image

    store = Store(tmp_path / "store")
    store.init()
    assert runtime_image(store, RUNTIME_REF) is None  # no base, no runtime image
    _two_layer_base(tmp_path, store, "one", {RECIPE_LABEL: recipe()})
    base = store.resolve(BASE_REF)
    made = runtime_image(store, RUNTIME_REF)
    assert made is not None and made.ref == RUNTIME_REF
    assert made.layers == base.layers[:1] and made.diff_ids == base.diff_ids[:1]
    assert made.config.labels[RECIPE_LABEL] == recipe()
    assert [h.get("created_by") for h in made.config.blob["history"]] == ["mmdebstrap"]
    again = runtime_image(store, RUNTIME_REF)
    assert again is not None and again.digest == made.digest  # stored, not made twice
    # another base under the same name (loaded or bootstrapped since): the runtime image follows
    _two_layer_base(tmp_path, store, "two", {RECIPE_LABEL: recipe()})
    follows = runtime_image(store, RUNTIME_REF)
    assert follows is not None and follows.diff_ids == store.resolve(BASE_REF).diff_ids[:1] != made.diff_ids
    # only mlpack's bootstrapped bases have one; other names are resolved as they are
    other = Store(tmp_path / "other")
    other.init()
    _two_layer_base(tmp_path, other, "three", None)
    assert runtime_image(other, RUNTIME_REF) is None
    assert runtime_image(store, BASE_REF) == store.resolve(BASE_REF)
