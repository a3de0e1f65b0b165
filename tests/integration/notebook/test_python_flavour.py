"""The python flavour in real containers, tested as hard as ONNX.

Three models that ONNX cannot carry are served with ``mlpack.serve`` (capture,
render, build, run, readiness, container parity): a scikit-learn estimator
skl2onnx has no converter for, a statsmodels OLS result, and CatBoost on
numeric data. Each image is built once per module and shared; the figures
(build seconds, image bytes) are printed for the record (``-s``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlpack.errors import BuildError
from mlpack.settings import Settings
from mlpack.types import Limits

pytestmark = [pytest.mark.runtime, pytest.mark.build, pytest.mark.slow]

statsmodels_api = pytest.importorskip("statsmodels.api")
catboost = pytest.importorskip("catboost")


def _image_bytes(image: Any) -> int:
    return sum(int(layer["size"]) for layer in image.manifest["layers"])


def _report(service: Any) -> None:
    print(f"\n[python flavour] {service.name}: build {service.timings.get('build', 0.0):.1f} s, "
          f"image {_image_bytes(service.image) / 1e6:.1f} MB compressed, "
          f"first prediction {service.first_prediction_s or 0.0:.1f} s after the call")


def _serve(model: Any, sample: Any, name: str, settings: Settings) -> Any:
    import mlpack

    service = mlpack.serve(model, sample, name=name, settings=settings, cpus=1.0, memory="1g", pids=256)
    _report(service)
    return service


@pytest.fixture(scope="module")
def regression_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(300, 3))
    y = x @ np.array([1.5, -2.0, 0.5]) + 3.0 + rng.normal(scale=0.1, size=300)
    return x, y


@pytest.fixture(scope="module")
def selftraining_service(e2e_settings: Settings) -> Any:
    import warnings

    from sklearn.datasets import load_iris
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.semi_supervised import SelfTrainingClassifier

    x, y = load_iris(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SelfTrainingClassifier(HistGradientBoostingClassifier(max_iter=10)).fit(x, y)
    service = _serve(model, x[::5], "pyf-selftraining", e2e_settings)
    yield service, model, x
    service.stop()


@pytest.fixture(scope="module")
def ols_service(e2e_settings: Settings, regression_data) -> Any:
    sm = statsmodels_api
    x, y = regression_data
    result = sm.OLS(y, sm.add_constant(x)).fit()
    service = _serve(result, sm.add_constant(x[:40]), "pyf-ols", e2e_settings)
    yield service, result, sm.add_constant(x)
    service.stop()


@pytest.fixture(scope="module")
def catboost_service(e2e_settings: Settings, regression_data) -> Any:
    x, y = regression_data
    model = catboost.CatBoostRegressor(iterations=30, depth=4, verbose=0, random_seed=0,
                                       allow_writing_files=False, thread_count=1).fit(x, y)
    service = _serve(model, x[:40], "pyf-catboost", e2e_settings)
    yield service, model, x
    service.stop()


def test_sklearn_model_without_an_onnx_converter_serves_with_parity(selftraining_service) -> None:
    service, model, x = selftraining_service
    assert service.bundle.flavor == "python"
    assert "conversion_error" in service.bundle.manifest["model"]
    assert service.parity is not None and service.parity.passed, service.parity
    rows = x[1::7]
    np.testing.assert_array_equal(service.predict(rows).reshape(-1), model.predict(rows))
    assert service.health != "unhealthy"


def test_statsmodels_ols_serves_with_parity(ols_service) -> None:
    service, result, xc = ols_service
    assert service.bundle.flavor == "python"
    lock = (service.bundle.path / "requirements.lock").read_text()
    from importlib.metadata import version

    assert f"statsmodels=={version('statsmodels')}" in lock
    assert "scipy==" in lock  # what statsmodels imports, pinned: the dependency that needs numpy.f2py
    assert service.parity.passed, service.parity
    rows = xc[100:117]
    np.testing.assert_allclose(service.predict(rows).reshape(-1), result.predict(rows), rtol=1e-6, atol=1e-9)


def test_catboost_serves_with_parity(catboost_service) -> None:
    service, model, x = catboost_service
    assert service.bundle.flavor == "python"
    assert f"catboost=={catboost.__version__}" in (service.bundle.path / "requirements.lock").read_text()
    assert service.parity.passed, service.parity
    rows = x[200:231]
    np.testing.assert_allclose(service.predict(rows).reshape(-1), model.predict(rows), rtol=1e-6, atol=1e-9)


def test_every_top_level_module_of_the_image_imports(catboost_service, e2e_settings: Settings) -> None:
    """The trimmed image keeps what its packages import: every module in its site-packages imports."""
    from mlpack import runtime
    from mlpack.dockerfile import importcheck

    service = catboost_service[0]
    source = Path(importcheck.__file__).read_text()
    container = runtime.run(service.image, settings=e2e_settings, name=f"pyf-imports-{os.getpid()}",
                            entrypoint=["/opt/venv/bin/python"], command=["-c", source, "--site-packages"],
                            ports=(), limits=Limits(memory="1g", pids=256))
    try:
        code = container.wait(timeout=300)
        log = container.logs()
    finally:
        container.remove(force=True)
    assert code == 0, log[-4000:]
    imported = log.split("top-level modules:", 1)[1].split()
    for module in ("numpy", "scipy", "pandas", "catboost", "matplotlib", "fastapi", "uvicorn", "yaml"):
        assert module in imported, log[-2000:]


def test_a_stripped_module_fails_the_build_naming_it(ols_service, tmp_path: Path, e2e_settings: Settings) -> None:
    """The old trim (numpy/f2py) comes back through a block override: the build, not the
    container, fails, and says which module of which distribution does not import."""
    from mlpack.builder import build
    from mlpack.dockerfile import RenderOptions, render

    service = ols_service[0]
    strip_f2py = '    rm -rf "$sp/numpy/f2py"; \\\n'
    context = render(service.bundle, RenderOptions(base="local", blocks={"builder_strip_extra": strip_f2py}),
                     out_dir=tmp_path / "ctx")
    with pytest.raises(BuildError) as info:
        build(context, tag="localhost/mlpack-test/pyf-stripped:1", settings=e2e_settings)
    message = str(info.value)
    assert "importcheck.py" in message and "numpy.f2py" in message, message
    assert "of scipy==" in message or "of statsmodels==" in message, message


def test_only_the_model_layer_changes_for_a_new_model_with_the_same_lock(ols_service, regression_data,
                                                                         e2e_settings: Settings) -> None:
    sm = statsmodels_api
    x, y = regression_data
    first = ols_service[0]
    refit = sm.OLS(y[::-1], sm.add_constant(x)).fit()  # same packages, other weights
    second = _serve(refit, sm.add_constant(x[:40]), "pyf-ols-refit", e2e_settings)
    try:
        assert second.parity.passed
        old, new = first.image.manifest["layers"], second.image.manifest["layers"]
        assert len(old) == len(new)
        assert old[:-1] == new[:-1], "the base, dependency and code layers are shared"
        assert old[-1] != new[-1], "the model layer is the one that changed"
        print(f"\n[python flavour] warm rebuild with only the model changed: "
              f"{second.timings.get('build', 0.0):.1f} s")
    finally:
        second.stop()


EDITABLE_SCRIPT = '''
import sys
import numpy as np
import mlpack
from mylocalmodel import Scaled

model = Scaled([1.5, -2.0, 0.25])
x = np.random.default_rng(3).normal(size=(40, 3))
service = mlpack.serve(model, x, name="pyf-editable")
try:
    lock = (service.bundle.path / "requirements.lock").read_text()
    print("LOCK", [line for line in lock.splitlines() if "mylocalmodel" in line])
    print("WHEELS", sorted(p.name for p in service.bundle.path.glob("*.whl")))
    print("PARITY", service.parity.passed)
    print("ANSWER", np.allclose(service.predict(x[:5]).reshape(-1), model.predict(x[:5])))
    print("BUILD", round(service.timings["build"], 1))
finally:
    service.stop()
'''


def test_a_model_from_an_editable_local_package_serves(e2e_settings: Settings, tmp_path: Path) -> None:
    """``pip install -e .`` of a package no index has: capture builds its wheel into the
    bundle and the image installs it from there. Installed editable into a throwaway venv
    layered over the test environment, so the shared environment is left alone."""
    import subprocess
    import sys
    import sysconfig

    project = tmp_path / "proj"
    (project / "mylocalmodel").mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "mylocalmodel"\nversion = "0.3.1"\ndependencies = ["numpy"]\n')
    (project / "mylocalmodel" / "__init__.py").write_text(
        "import numpy as np\n\n\nclass Scaled:\n    def __init__(self, w):\n        self.w = np.asarray(w)\n\n"
        "    def predict(self, x):\n        return np.asarray(x) @ self.w\n")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    shared = sysconfig.get_path("purelib")
    Path(site, "zz_shared_env.pth").write_text(f"import site; site.addsitedir({shared!r})\n")
    pip = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-e", str(project)],
                         capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stderr[-2000:]
    env = dict(os.environ, MLPACK_HOME=str(e2e_settings.home), PYTHONPATH=str(Path(__file__).resolve().parents[3]))
    proc = subprocess.run([str(python), "-c", EDITABLE_SCRIPT], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=900)
    out = proc.stdout
    assert proc.returncode == 0, (out + proc.stderr)[-4000:]
    assert "mylocalmodel==0.3.1  # provides the model's classes" in out, out
    assert "WHEELS ['mylocalmodel-0.3.1-py3-none-any.whl']" in out, out
    assert "PARITY True" in out and "ANSWER True" in out, out
    print("\n[python flavour] editable local package:", out.strip().splitlines()[-1])
