"""The hooks contract (mlpack.bundle.hooks): parsing, loading, calling, failures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlpack.bundle.hooks import HookFailed, Hooks, check_source, imported_modules, load_file, load_source
from mlpack.errors import CaptureError, ServeError

SOURCE = """
import numpy as np
from collections import OrderedDict

def preprocess(inputs):
    if "x" not in inputs:
        raise ValueError("x is required")
    return {"x": np.asarray(inputs["x"]) * 2}

def postprocess(outputs):
    import json
    return {"meta": {"version": "1"}, "outputs": outputs}
"""


def test_source_and_file_load_the_same_hooks(tmp_path: Path) -> None:
    (tmp_path / "hooks.py").write_text(SOURCE)
    for hooks in (load_source(SOURCE), load_file(tmp_path / "hooks.py")):
        assert hooks
        out = hooks.after({"y": np.array([1.0])})
        assert out["meta"] == {"version": "1"} and list(out["outputs"]) == ["y"]
        assert hooks.before({"x": np.array([1, 2])})["x"].tolist() == [2, 4]
    assert not load_file(None) and not load_file(tmp_path / "absent.py")


def test_a_rejection_is_the_clients_and_a_crash_keeps_its_traceback() -> None:
    hooks = load_source(SOURCE)
    with pytest.raises(HookFailed) as info:
        hooks.before({})
    assert info.value.rejected and "x is required" in str(info.value)
    broken = load_source("def postprocess(outputs):\n    return outputs['missing']\n")
    with pytest.raises(HookFailed) as info:
        broken.after({"y": 1})
    assert not info.value.rejected
    assert "KeyError" in str(info.value) and "line 2, in postprocess" in info.value.traceback
    wrong = load_source("def preprocess(inputs):\n    return [1]\n")
    with pytest.raises(HookFailed, match="returned list, not a dict") as info:
        wrong.before({})
    assert not info.value.rejected  # a broken contract is the bundle's fault, not the client's


def test_bad_hooks_sources_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="not plain Python"):
        check_source("!pip install x\ndef preprocess(i):\n    return i\n")
    with pytest.raises(ServeError, match="neither preprocess"):
        check_source("x = 1\n", ServeError)
    with pytest.raises(CaptureError, match="python source text"):
        check_source(lambda x: x)
    with pytest.raises(ServeError, match="running hooks.py failed: ZeroDivisionError") as info:
        load_source("1 / 0\ndef preprocess(i):\n    return i\n", ServeError)
    assert "ZeroDivisionError" in info.value.traceback
    (tmp_path / "hooks.py").write_text("import no_such_module_mlpack\ndef preprocess(i):\n    return i\n")
    with pytest.raises(ServeError, match="importing the bundle's hooks.py failed: ModuleNotFoundError"):
        load_file(tmp_path / "hooks.py", ServeError)


def test_imports_anywhere_in_the_hooks_are_found() -> None:
    assert imported_modules(SOURCE) == ["collections", "json", "numpy"]
    assert imported_modules("from . import x\nimport a.b as c\n") == ["a.b"]
    assert Hooks().before({"a": 1}) == {"a": 1}
