"""One reference parser: no module but mlpack/reference.py reads references with its own pattern."""

from __future__ import annotations

import ast
from pathlib import Path

import mlpack

PKG = Path(mlpack.__file__).parent
OWNER = PKG / "reference.py"
# Fragments of the distribution spec's grammar: a digest, a tag, a path component.
GRAMMAR = ("sha256:[", "{0,127}", "(?:[._]|__|-+)")


def _string_constants(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def test_no_module_but_the_owner_has_a_reference_pattern() -> None:
    found = [
        f"{path.relative_to(PKG.parent)}:{line}: {text!r}"
        for path in sorted(PKG.rglob("*.py")) if path != OWNER
        for line, text in _string_constants(path) if any(fragment in text for fragment in GRAMMAR)
    ]
    assert not found, "parse references with mlpack.reference.parse:\n" + "\n".join(found)


def test_the_owner_has_them() -> None:
    texts = [text for _, text in _string_constants(OWNER)]
    assert all(any(fragment in text for text in texts) for fragment in GRAMMAR)


def test_only_the_owner_defines_a_reference_type() -> None:
    defined = [
        str(path.relative_to(PKG.parent)) for path in sorted(PKG.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef) and node.name == "Reference"
    ]
    assert defined == ["mlpack/reference.py"]
