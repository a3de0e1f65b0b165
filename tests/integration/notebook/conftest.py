"""Fixtures for the end-to-end notebook tests: a real IPython shell over the run home.

Everything builds into the run home's store, so the base image (the shared
``base_image`` fixture) and the dependency layers (the builder cache) are
made once per run and every later build only adds the model's layer.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from mlpack.settings import Settings
from tests.conftest import require_root


@pytest.fixture(scope="session")
def e2e_settings(run_settings: Settings, base_image: object) -> Settings:
    """The run settings, once the base image is in the run store."""
    require_root()
    if not (shutil.which("crun") or shutil.which("runc")):
        pytest.skip("neither crun nor runc is installed; tests/run.sh installs them")
    return run_settings


@pytest.fixture
def e2e_shell(e2e_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """A real IPython shell with ``%load_ext mlpack`` over the run home; stops every Service it made."""
    from IPython.testing.globalipapp import get_ipython

    monkeypatch.setenv("MLPACK_HOME", str(e2e_settings.home))
    monkeypatch.setenv("MLPACK_PROGRESS", "text")
    ip = get_ipython()
    ip.run_line_magic("load_ext", "mlpack")
    before = set(ip.user_ns)
    try:
        yield ip
    finally:
        for name in set(ip.user_ns) - before:
            value = ip.user_ns.pop(name, None)
            if name.endswith("_service") and getattr(value, "stop", None):
                try:
                    value.stop()
                except Exception:  # the test's own failure is the one to report
                    pass
        ip.run_line_magic("unload_ext", "mlpack")
