"""compilepy: the builder stage's bytecode, byte for byte what ``compileall -j 0`` writes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from mlpack.dockerfile import _compilepy as compilepy
from mlpack.dockerfile import RenderOptions, render


def _tree(root: Path) -> None:
    for k in range(7):  # more files than workers, in nested packages
        pkg = root / f"pkg{k % 3}" / ("sub" if k % 2 else "")
        pkg.mkdir(parents=True, exist_ok=True)
        (pkg / f"m{k}.py").write_text(f"X = {{'k': {k}, 'name': 'm{k}'}}\ndef f(a, *, b={k}):\n    return a + b\n")
    (root / "pkg0" / "data.txt").write_text("not python")
    (root / "pkg0" / "__pycache__").mkdir()
    os.symlink(root / "pkg1", root / "linked")  # a symlinked directory: not walked, as compileall


def _pycs(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.pyc"))}


def test_the_same_bytecode_as_compileall(tmp_path: Path) -> None:
    """Both in the same tree, one after the other (the code objects name their source's path)."""
    _tree(tmp_path)
    assert compilepy.main(str(tmp_path), workers=3) == 0
    ours = _pycs(tmp_path)
    for cache in tmp_path.rglob("__pycache__"):
        shutil.rmtree(cache)
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
                    str(tmp_path)], check=True, capture_output=True)
    theirs = _pycs(tmp_path)
    assert len(theirs) == 7 and ours == theirs


def test_a_file_that_does_not_compile_is_exit_1_and_the_others_compile(tmp_path: Path) -> None:
    _tree(tmp_path)
    (tmp_path / "pkg2" / "broken.py").write_text("def f(:\n")
    assert compilepy.main(str(tmp_path), workers=2) == 1
    assert len(_pycs(tmp_path)) == 7


def test_the_context_carries_it_and_the_strip_step_runs_it(stub_bundle, tmp_path: Path) -> None:
    ctx = render(stub_bundle, RenderOptions(base="local"), out_dir=tmp_path / "ctx")
    assert (ctx.path / "compilepy.py").read_text() == Path(compilepy.__file__).read_text()
    text = ctx.dockerfile_text
    assert "COPY compilepy.py /tmp/mlpack/compilepy.py" in text
    assert '/opt/venv/bin/python -I /tmp/mlpack/compilepy.py "$sp"' in text and "compileall -q -j 0" not in text
