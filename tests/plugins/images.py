"""Session fixtures for the images side of the suite.

``serving_image``: the rendered Dockerfile of the captured scikit-learn model
(``sklearn_bundle``) built ONCE per run by mlpack's builder into the run
store; every test that needs a real serving image shares it.
"""

from __future__ import annotations

import os

import pytest

from mlpack.settings import Settings

SERVING_TAG = "localhost/mlpack-test/sklearn-serving:1"


@pytest.fixture(scope="session")
def serving_context(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """The rendered build context (mlpack.dockerfile.BuildContext) of the sklearn bundle,
    FROM the offline base image (which ``python_base_image`` puts in the run store)."""
    if os.geteuid() != 0:
        pytest.skip("building a serving image needs root (RUN steps run in a sandbox)")
    bundle = request.getfixturevalue("sklearn_bundle")
    request.getfixturevalue("python_base_image")
    from mlpack.dockerfile import RenderOptions, render

    out = tmp_path_factory.mktemp("serving-context") / "ctx"
    return render(bundle, RenderOptions(base="local"), out_dir=out)


@pytest.fixture(scope="session")
def serving_image(serving_context, run_settings: Settings):  # type: ignore[no-untyped-def]
    """The sklearn serving image, built once per run by mlpack's builder into the run store
    (an mlpack.oci.image.Image tagged ``SERVING_TAG``)."""
    from mlpack.builder import build

    return build(serving_context, tag=SERVING_TAG, settings=run_settings)
