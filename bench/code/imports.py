"""Which stage package imports which: the import graph of mlpack's packages and front doors, from the AST.

    python bench/code/imports.py [ROOT=mlpack]

One line per importer: ``builder -> dockerfile, oci, runtime``. Top-level
modules (``api``, ``service``, ``settings``...) count as nodes of their own;
imports inside functions count too (they are imports all the same). Nothing
is imported to find out.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path


def node_of(root: Path, path: Path) -> str:
    """``builder`` for mlpack/builder/x.py, ``api`` for mlpack/api.py, ``mlpack`` for __init__.py."""
    parts = path.relative_to(root).with_suffix("").parts
    return "mlpack" if parts == ("__init__",) else parts[0]


def graph(root: Path) -> dict[str, set[str]]:
    """Importer -> imported nodes; ``from mlpack import name`` where ``name`` is no module keeps
    ``name`` (printed ``mlpack(name)``: an import through the package root); ``import mlpack`` is ``mlpack``."""
    edges: dict[str, set[str]] = defaultdict(set)
    for path in sorted(root.rglob("*.py")):
        source = node_of(root, path)
        edges.setdefault(source, set())
        package = path.relative_to(root.parent).with_suffix("").parts[:-1]
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            for target in _targets(node, package):
                if target and target != source:
                    edges[source].add(target)
    return edges


def _targets(node: ast.AST, package: tuple[str, ...]) -> list[str]:
    names: list[str] = []
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
        if node.level:  # relative: resolve against the importing module's package
            base = list(package[: len(package) - node.level + 1])
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        names = [module] if node.module else [f"{module}.{a.name}" for a in node.names]
        if module == "mlpack":  # from mlpack import x: x is a node when it is a module
            names = [f"mlpack.{a.name}" for a in node.names]
    out = []
    for name in names:
        parts = name.split(".")
        if parts[0] == "mlpack":
            out.append(parts[1] if len(parts) > 1 else "mlpack")
    return out


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "mlpack").resolve()
    edges = graph(root)
    modules = {node_of(root, p) for p in root.rglob("*.py")}
    for source in sorted(edges):
        targets = sorted(t if t in modules else f"mlpack({t})" for t in edges[source])
        print(f"{source:>12} -> {', '.join(targets) or '(nothing)'}")


if __name__ == "__main__":
    main()
