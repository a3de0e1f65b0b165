"""A model image built where no container can run, then run and asked.

The build runs in a child process under a seccomp filter that refuses new
namespaces (``nouserns.py``: unshare/clone with CLONE_NEW* -> EPERM, as a
notebook pod's profile does): crun, runc and unshare all fail there. ``mlpack
build BUNDLE`` finds that out by trying (deps=auto), says so, installs the
lock itself and builds a Dockerfile without RUN; a Dockerfile with RUN fails
saying that RUN cannot run here. The image then runs with crun outside the
filter and answers as the model did at capture.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlpack.endpoint import predict_http, to_payload, wait_ready
from mlpack.oci.layout import Store
from mlpack.settings import Settings
from tests.conftest import require_tool

pytestmark = [pytest.mark.build, pytest.mark.runtime, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3]
NOUSERNS = Path(__file__).with_name("nouserns.py")
TAG = "localhost/mlpack-test/sklearn-runfree:1"
IMPORT_ALL = """
import importlib, pkgutil, sys
sp = [p for p in sys.path if p.endswith("site-packages")][0]
names = sorted({m.name for m in pkgutil.iter_modules([sp]) if not m.name.startswith("_")})
for name in names:
    importlib.import_module(name)
print("imported", len(names), names)
"""


def _denied(argv: list[str], home: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLPACK_HOME": str(home), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, str(NOUSERNS), *argv], capture_output=True, text=True,
                          timeout=timeout, env=env, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def runfree_image(sklearn_bundle, python_base_image, run_settings: Settings):  # type: ignore[no-untyped-def]
    """The sklearn bundle built under the filter with ``mlpack build`` (deps=auto)."""
    if os.uname().machine != "x86_64":
        pytest.skip("the seccomp filter of nouserns.py is written for x86_64")
    probe = _denied(["unshare", "--user", "--mount", "true"], run_settings.home, timeout=30)
    assert probe.returncode != 0 and "Operation not permitted" in probe.stderr, probe  # the denial is real
    out = _denied([sys.executable, "-m", "mlpack", "build", "--no-cache", str(sklearn_bundle.path), "-t", TAG],
                  run_settings.home)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "RUN steps cannot run here" in out.stderr and "deps=context" in out.stderr, out.stderr[-2000:]
    return Store(run_settings.store_dir).resolve(TAG), out.stderr


def test_the_image_has_no_run_step_and_its_deps_fit_the_image(runfree_image) -> None:  # type: ignore[no-untyped-def]
    image, log = runfree_image
    history = [h.get("created_by", "") for h in image.config.history]
    assert not [h for h in history if h.startswith("RUN") or "/bin/sh -c" in h], history
    assert "COPY --from=deps / /opt/venv/" in history
    assert image.config.architecture == "amd64" and image.config.os == "linux"
    assert image.config.user == "10001:10001" and image.config.entrypoint[-2:] == ("-m", "mlpack.server")


def test_a_dockerfile_with_run_says_it_cannot_run_here(run_settings: Settings, python_base_image,  # type: ignore[no-untyped-def]
                                                       tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM localhost/mlpack/python:3.11\nRUN echo hello > /greeting\n")
    out = _denied([sys.executable, "-m", "mlpack", "build", str(tmp_path), "-t", "localhost/mlpack-test/norun:1"],
                  run_settings.home, timeout=300)
    assert out.returncode != 0
    assert "RUN steps cannot run on this machine" in out.stderr and "refused" in out.stderr, out.stderr[-2000:]
    assert "--deps context" in out.stderr
    with pytest.raises(LookupError):
        Store(run_settings.store_dir).resolve("localhost/mlpack-test/norun:1")


def test_the_runfree_image_runs_with_crun_and_answers_as_the_model(runfree_image, sklearn_bundle,  # type: ignore[no-untyped-def]
                                                                   run_settings: Settings) -> None:
    require_tool("crun")
    from dataclasses import replace

    from mlpack.runtime import run

    image, _ = runfree_image
    settings = replace(run_settings, runtime="crun")
    container = run(image.ref or TAG, settings=settings, name=f"runfree-{os.getpid()}")
    try:
        wait_ready(container, timeout=120)
        expected = sklearn_bundle.expected()
        outputs = predict_http(container.url, to_payload(sklearn_bundle.sample()))
        assert len(expected["label"]) >= 30
        np.testing.assert_array_equal(outputs["label"], expected["label"])
        np.testing.assert_allclose(outputs["probabilities"], expected["probabilities"], atol=1e-5)
        # every top-level module of the image's site-packages imports (what deps=run's build step checks)
        check = container.exec(["/opt/venv/bin/python", "-c", IMPORT_ALL], timeout=120)
        assert check.returncode == 0 and "imported" in check.stdout, (check.stdout, check.stderr)
    finally:
        container.remove(force=True)


def test_info_says_which_mode_a_bundle_build_takes(run_settings: Settings) -> None:
    if os.uname().machine != "x86_64":
        pytest.skip("the seccomp filter of nouserns.py is written for x86_64")
    denied = _denied([sys.executable, "-m", "mlpack", "info"], run_settings.home, timeout=120)
    assert denied.returncode == 0, denied.stderr
    assert "run_steps: refused: namespaces are refused here" in denied.stdout
    assert "bundle_deps: context" in denied.stdout
    free = subprocess.run([sys.executable, "-m", "mlpack", "info"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "MLPACK_HOME": str(run_settings.home), "PYTHONPATH": str(REPO)})
    assert "run_steps: ok" in free.stdout and "bundle_deps: run" in free.stdout
