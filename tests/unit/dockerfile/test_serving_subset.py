"""The serving subset (what `render` copies into every image) is closed: nothing in it
imports a part of mlpack outside it, so the server never meets a missing module in a
container. Checked from the source (every import statement, function-level ones too,
except those under ``if TYPE_CHECKING:``), and by importing the copied subset alone."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import mlpack
from mlpack.dockerfile.context import SERVING_MODULES, serving_files

PACKAGE = Path(mlpack.__file__).resolve().parent


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    out, stack = [], [tree]
    while stack:
        node = stack.pop()
        out.append(node)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))
    return out


def _mlpack_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            if node.module == "mlpack":
                names.update(f"mlpack.{a.name}" for a in node.names)
    return {n.split(".")[1] for n in names if n.startswith("mlpack.")}


def test_nothing_in_the_subset_imports_outside_it() -> None:
    inside = {entry.removesuffix(".py") for entry in SERVING_MODULES if entry != "__init__.py"}
    outside: dict[str, set[str]] = {}
    for path in serving_files(PACKAGE):
        if path.suffix == ".py":
            missing = {m for m in _mlpack_imports(path) if m not in inside}
            # a name the root re-exports lazily (mlpack/__init__.py's __getattr__) is not an import
            if path == PACKAGE / "__init__.py":
                missing = set()
            if missing:
                outside[str(path.relative_to(PACKAGE))] = missing
    assert outside == {}, f"serving code imports modules that are not copied into images: {outside}"


def test_the_copied_subset_serves_on_its_own(tmp_path: Path) -> None:
    """The subset copied alone (as into an image) imports the server and the bundle loader."""
    for path in serving_files(PACKAGE):
        target = tmp_path / "mlpack" / path.relative_to(PACKAGE)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    code = ("import mlpack.server.app, mlpack.server.__main__, mlpack.bundle.bundle, mlpack.bundle.predictor; "
            "import mlpack, sys; assert mlpack.__file__.startswith(sys.argv[1]), mlpack.__file__")
    # an editable install's finder would serve what the copy lacks from the source tree: drop it
    alone = ("import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]; "
             f"sys.path.insert(0, {str(tmp_path)!r}); ")
    done = subprocess.run([sys.executable, "-I", "-c", alone + code,
                           str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
