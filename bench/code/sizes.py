"""The biggest classes and functions of a source tree, by lines (``def``/``class`` to its last line).

    python bench/code/sizes.py [ROOT=mlpack] [--top N]

Methods are counted on their own too (``Store.resolve``), so a class and its
biggest method may both appear. Read from the AST: nothing is imported.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path


def sizes(root: Path) -> list[tuple[int, str, str]]:
    """(lines, kind, qualified name at path:line) for every class and function under ``root``."""
    out: list[tuple[int, str, str]] = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        _walk(tree, [], path.relative_to(root.parent), out)
    return sorted(out, key=lambda row: (-row[0], row[2]))


def _walk(node: ast.AST, outer: list[str], path: Path, out: list[tuple[int, str, str]]) -> None:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            name = ".".join([*outer, child.name])
            kind = "class" if isinstance(child, ast.ClassDef) else "def"
            lines = (child.end_lineno or child.lineno) - child.lineno + 1
            out.append((lines, kind, f"{name}  ({path}:{child.lineno})"))
            _walk(child, [*outer, child.name], path, out)
        else:
            _walk(child, outer, path, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default="mlpack")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    rows = sizes(Path(args.root).resolve())
    for kind in ("class", "def"):
        print(f"top {args.top} {'classes' if kind == 'class' else 'functions and methods'} by lines:")
        for lines, _, name in [r for r in rows if r[1] == kind][: args.top]:
            print(f"  {lines:5d}  {name}")


if __name__ == "__main__":
    main()
