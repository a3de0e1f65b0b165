"""The public surface of mlpack.dockerfile and the front door to it."""

from __future__ import annotations

from pathlib import Path

import mlpack
import mlpack.dockerfile as dockerfile


def test_all_names_exist() -> None:
    for name in dockerfile.__all__:
        assert getattr(dockerfile, name) is not None, name
    public = {n for n in vars(dockerfile) if not n.startswith("_")} - {"annotations", "context", "importcheck", "options",
                                                                      "quoting", "system", "templates", "depsdir",
                                                                      "wheelcache", "wheelinstall"}
    assert public == set(dockerfile.__all__)


def test_mlpack_render_returns_a_build_context(stub_bundle, tmp_path: Path) -> None:
    ctx = mlpack.render(stub_bundle, dockerfile.RenderOptions(base="local"), out_dir=tmp_path / "ctx")
    assert isinstance(ctx, dockerfile.BuildContext)
    assert ctx.base_image == "localhost/mlpack/python:3.11"
    assert ctx.dockerfile == tmp_path / "ctx" / "Dockerfile" and ctx.dockerfile_text.startswith("# Rendered")


def test_render_without_out_dir_makes_a_temporary_context(stub_bundle) -> None:
    import shutil

    ctx = mlpack.render(stub_bundle)
    try:
        assert (ctx.path / "Dockerfile").is_file() and ctx.path.name.startswith("mlpack-context-")
    finally:
        shutil.rmtree(ctx.path)
