"""A second build of the same lock asks no index: the RUN step installs from mlpack's wheel cache.

The first build of a bundle (``deps=run``) fills ``<home>/cache/wheels`` with the lock's wheels
for the image's platform and hands them to the RUN step as the named build context ``wheels``
(``pip install --no-index --find-links``). The second build, from scratch (no step cache),
runs with the host's index pointing at a closed port and RUN steps without any network: it
still builds, and its import check (a RUN step) passes in the new image.
"""

from __future__ import annotations

import pytest

from mlpack.builder import BuildOptions, StepDone, build
from mlpack.settings import Settings

pytestmark = [pytest.mark.build, pytest.mark.runtime, pytest.mark.slow]

CLOSED_INDEX = "http://127.0.0.1:9/simple"  # discard port: nothing answers


def _install_steps(events: list[object]) -> list[str]:
    return [e.instruction for e in events if isinstance(e, StepDone) and "requirements.lock" in e.instruction
            and "install" in e.instruction]


def test_a_second_build_of_the_same_lock_needs_no_index(sklearn_bundle, python_base_image, run_settings: Settings,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    build(sklearn_bundle.path, BuildOptions(tag="localhost/mlpack-test/offline:1", deps="run"),
                  settings=run_settings)
    cache = run_settings.cache_dir / "wheels"
    cached = sorted(p.name for p in cache.glob("*.whl"))
    assert any(name.startswith("onnxruntime-") for name in cached) and any(n.startswith("numpy-") for n in cached)

    monkeypatch.setenv("PIP_INDEX_URL", CLOSED_INDEX)  # a host-side download would fail now
    events: list[object] = []
    build(sklearn_bundle.path, BuildOptions(tag="localhost/mlpack-test/offline:2", deps="run", no_cache=True,
                                            network="none"), settings=run_settings, progress=events.append)
    install = _install_steps(events)  # ran (not cached), with the wheels and no index
    assert len(install) == 1 and "--no-index" in install[0] and "from=wheels" in install[0], install
    assert sorted(p.name for p in cache.glob("*.whl")) == cached  # nothing was downloaded
