"""%%containerize driven through a real IPython shell (the stages that need no root)."""

from __future__ import annotations

import pytest

from mlpack.ipython.display import StageFailure
from mlpack.ipython.magics import hooks_defined


def _failure(result: object) -> StageFailure:
    err = result.error_in_exec  # type: ignore[attr-defined]
    assert isinstance(err, StageFailure), f"expected a StageFailure, got {err!r}"
    return err


def test_extension_registers_line_and_cell_magic(shell) -> None:
    magics = shell.magics_manager.magics
    assert "containerize" in magics["line"] and "containerize" in magics["cell"]
    shell.run_line_magic("unload_ext", "mlpack")
    assert "containerize" not in shell.magics_manager.magics["cell"]
    shell.run_line_magic("load_ext", "mlpack")


def test_bad_line_fails_as_config_without_traceback(shell, capsys: pytest.CaptureFixture[str]) -> None:
    err = _failure(shell.run_cell("%containerize clf --cpus 2"))
    assert err.stage == "config" and "--sample" in str(err)
    out = capsys.readouterr()
    text = out.out + out.err
    assert "stage config failed" in text and "usage:" in text
    assert "Traceback" not in text and "site-packages" not in text


def test_cell_body_runs_in_the_kernel_first(shell) -> None:
    cell = ("%%containerize clf --sample X\n"
            "import math\n"
            "ran_in_kernel = True\n"
            "def postprocess(outputs):\n"
            "    outputs['twice'] = outputs['label'] * 2\n"
            "    return outputs\n")
    err = _failure(shell.run_cell(cell))
    # The hooks ran (and stay usable in the notebook) before the missing model was noticed.
    assert shell.user_ns["ran_in_kernel"] is True
    assert callable(shell.user_ns["postprocess"])
    assert err.stage == "config" and "'clf'" in str(err)


def test_cell_that_raises_is_reported_as_the_hooks_stage(shell, capsys) -> None:
    err = _failure(shell.run_cell("%%containerize clf --sample X\ndef preprocess(x):\n    return x\n1 / 0\n"))
    assert err.stage == "hooks" and "ZeroDivisionError" in str(err)
    assert "1 / 0" in capsys.readouterr().out  # the user's own line is shown


def test_cell_must_be_plain_python(shell) -> None:
    err = _failure(shell.run_cell("%%containerize clf --sample X\n!ls\ndef preprocess(x):\n    return x\n"))
    assert err.stage == "hooks" and "not plain Python" in str(err) and "magics" in err.error.hint


def test_unsupported_model_fails_in_the_capture_stage(shell, capsys) -> None:
    shell.user_ns.update(thing=object(), X=[[1.0, 2.0]])
    err = _failure(shell.run_cell("%containerize thing --sample X"))
    assert err.stage == "capture"
    out = capsys.readouterr().out
    assert "[capture] failed" in out and "stage capture failed" in out


def test_debug_shows_the_real_exception(shell) -> None:
    result = shell.run_cell("%containerize clf --sample X --debug")
    assert not isinstance(result.error_in_exec, StageFailure)
    assert result.error_in_exec.stage == "config"


def test_hooks_defined_reads_top_level_functions_only() -> None:
    assert hooks_defined("def postprocess(o):\n    return o\ndef preprocess(i):\n    return i\n") == [
        "preprocess", "postprocess"]
    assert hooks_defined("def helper():\n    def preprocess(x):\n        return x\n") == []
