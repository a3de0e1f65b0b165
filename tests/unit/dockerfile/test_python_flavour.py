"""Render side of the python flavour: nothing a dependency imports is trimmed, the
import check step is in the Dockerfile, and the check itself finds what is broken."""

from __future__ import annotations

import dataclasses

import pickle
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlpack.dockerfile import RenderOptions, render
from mlpack.dockerfile import context as ctxmod
from mlpack.dockerfile import importcheck
from mlpack.dockerfile.templates import templates_dir
from tests.unit.dockerfile.conftest import StubBundle


@dataclass
class PythonStub(StubBundle):
    flavor: str = "python"
    framework: str = "python"

    @property
    def model_path(self) -> Path:
        return self.path / "model.pkl"


def _python_stub(stub_bundle: StubBundle, model: object, hooks: str | None = None) -> PythonStub:
    (stub_bundle.path / "model.pkl").write_bytes(pickle.dumps(model, protocol=5))
    hooks_path = None
    if hooks is not None:
        hooks_path = stub_bundle.path / "hooks.py"
        hooks_path.write_text(hooks)
    return PythonStub(path=stub_bundle.path, hooks_path=hooks_path,
                      requirements=["numpy==2.4.6", "scipy==1.17.1", "setuptools==80.0.0", "PyYAML==6.0.4"])


def test_python_flavour_trims_no_package_file(stub_bundle, tmp_path: Path) -> None:
    from collections import OrderedDict

    bundle = _python_stub(stub_bundle, OrderedDict(a=1))
    ctx = render(bundle, RenderOptions(base="local"), out_dir=tmp_path / "ctx")
    text = ctx.dockerfile_text
    assert "numpy/f2py" not in text and "onnxruntime/" not in text
    # setuptools is in the lock: it (and pkg_resources, which it provides) stays installed.
    assert "for d in pip wheel;" in text and "pkg_resources" not in text
    assert (ctx.path / "importcheck.py").read_text() == Path(importcheck.__file__).read_text()
    assert "importcheck.py" in text and "/tmp/mlpack/requirements.lock /tmp/mlpack/imports.txt" in text
    assert (ctx.path / "imports.txt").read_text() == "collections\n"  # what the pickle references


def test_onnx_flavour_trims_onnxruntime_and_numpy_tooling(stub_bundle, tmp_path: Path) -> None:
    text = render(stub_bundle, RenderOptions(base="local"), out_dir=tmp_path / "ctx").dockerfile_text
    for path in ctxmod.STRIP_PATHS + ctxmod.STRIP_PATHS_CPU:
        assert path.startswith("onnxruntime/") and path in text
    for path in ctxmod.STRIP_PATHS_NUMPY:
        assert path.startswith("numpy/") and path in text
    assert "numpy/testing" not in text and "numpy/random" not in text and "numpy/f2py" not in text
    # Hooks are user code that may import any part of numpy: then numpy keeps every file.
    hooks = tmp_path / "hooks.py"
    hooks.write_text("import numpy.distutils\n\ndef preprocess(x):\n    return x\n")
    hooked = render(dataclasses.replace(stub_bundle, hooks_path=hooks), RenderOptions(base="local"),
                    out_dir=tmp_path / "c3").dockerfile_text
    assert "numpy/distutils" not in hooked and "onnxruntime/transformers" in hooked
    # Extra packages may import anything: with --pip nothing is trimmed.
    extra = render(stub_bundle, RenderOptions(base="local", pip=("scipy",)), out_dir=tmp_path / "c2").dockerfile_text
    assert "onnxruntime/transformers" not in extra


def test_hook_imports_are_checked_at_build(stub_bundle, tmp_path: Path) -> None:
    hooks = "import json\n\ndef postprocess(outputs):\n    from scipy import special\n    return outputs\n"
    bundle = _python_stub(stub_bundle, {"k": 1}, hooks=hooks)
    ctx = render(bundle, RenderOptions(base="local"), out_dir=tmp_path / "ctx")
    assert (ctx.path / "imports.txt").read_text().split() == ["json", "scipy"]


def test_templates_live_inside_the_package_that_renders() -> None:
    # One place only: the package's own directory, never a repo-root copy.
    assert templates_dir() == Path(ctxmod.__file__).resolve().parent / "templates"


# -- the check itself, run with this interpreter ------------------------------------
def _check(tmp_path: Path, lock: str, modules: str = "") -> subprocess.CompletedProcess:
    (tmp_path / "lock").write_text(lock)
    (tmp_path / "mods").write_text(modules)
    return subprocess.run([sys.executable, "-I", importcheck.__file__, str(tmp_path / "lock"), str(tmp_path / "mods")],
                          capture_output=True, text=True, timeout=120)


def test_check_passes_for_installed_pins(tmp_path: Path) -> None:
    from importlib.metadata import version

    lock = f"# comment\nnumpy=={version('numpy')}\nPyYAML=={version('PyYAML')}\n"
    proc = _check(tmp_path, lock, "numpy._core.multiarray\n")
    assert proc.returncode == 0, proc.stderr
    assert "imports" in proc.stdout


def test_check_names_a_missing_distribution_a_wrong_version_and_a_missing_module(tmp_path: Path) -> None:
    from importlib.metadata import version

    lock = f"numpy==0.0.1\nno-such-dist-mlpack==1.0\nPyYAML=={version('PyYAML')}\n"
    proc = _check(tmp_path, lock, "mlpack_no_such_module.sub\n")
    assert proc.returncode == 1
    err = proc.stderr
    assert f"numpy==0.0.1 is in the lock but {version('numpy')} is installed" in err
    assert "no-such-dist-mlpack==1.0 is in the lock but not installed" in err
    assert "module 'mlpack_no_such_module.sub', which the model needs, does not import" in err
    assert "ModuleNotFoundError" in err


def test_a_module_missing_inside_an_installed_package_is_broken_not_optional() -> None:
    provided = {"numpy", "scipy"}
    assert not importcheck._optional(ModuleNotFoundError("x", name="numpy.f2py"), provided)
    assert importcheck._optional(ModuleNotFoundError("x", name="gunicorn"), provided)
    assert not importcheck._optional(ImportError("libgomp.so.1: cannot open shared object file"), provided)
    assert importcheck._optional(RuntimeError("install httpx"), provided)


def test_top_level_modules_of_real_distributions() -> None:
    from importlib.metadata import distribution

    assert importcheck.top_level_modules(distribution("PyYAML")) == ["yaml"]
    assert importcheck.top_level_modules(distribution("numpy")) == ["numpy"]
    assert "sklearn" in importcheck.top_level_modules(distribution("scikit-learn"))
    assert importcheck.lock_pins("a==1\n# x\nB_c[extra]==2.0 ; python_version>'3'\n-e .\n") == [("a", "1"), ("B_c", "2.0")]


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_pickle_modules_match_what_unpickling_loads(protocol: int, tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import numpy as np

    from mlpack.bundle.python_flavor import _RecordingUnpickler, pickle_modules

    x = np.random.default_rng(0).normal(size=(30, 3))
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, (x[:, 0] > 0).astype(int))
    data = pickle.dumps(model, protocol=protocol)
    unpickler = _RecordingUnpickler(data)
    unpickler.load()
    recorded = {module for module, _ in unpickler.globals}
    path = tmp_path / "m.pkl"
    path.write_bytes(data)
    # Read from the opcodes, without unpickling: exactly the modules unpickling loads.
    assert set(pickle_modules(path)) == recorded
    assert {"sklearn.linear_model._logistic", "sklearn.preprocessing._data"} <= recorded
