"""The architecture stays visible: stage packages import only what DESIGN.md allows."""

from __future__ import annotations

import ast
from pathlib import Path

import mlpack

PKG = Path(mlpack.__file__).parent

# stage -> the mlpack modules it may import (besides itself).
ALLOWED = {
    "bundle": {"errors", "types"},
    "dockerfile": {"errors", "types", "reference", "bundle"},
    "oci": {"errors", "types", "reference", "settings"},
    "runtime": {"errors", "types", "reference", "settings", "oci"},
    "builder": {"errors", "types", "reference", "settings", "dockerfile", "oci", "runtime", "bundle"},
    "server": {"errors", "types", "bundle"},
    "kube": {"errors", "types", "reference"},
}
SHARED = {"errors", "types", "reference", "settings"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.add(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {name.split(".")[1] for name in found if name.startswith("mlpack.")}


def test_stage_packages_import_only_what_design_allows() -> None:
    problems = []
    for stage, allowed in ALLOWED.items():
        for path in sorted((PKG / stage).rglob("*.py")):
            extra = _imports(path) - allowed - {stage}
            if extra:
                problems.append(f"{path.relative_to(PKG.parent)} imports {sorted(extra)}")
    assert not problems, "layering broken:\n" + "\n".join(problems)


def test_shared_modules_import_no_stage() -> None:
    for name in SHARED:
        assert _imports(PKG / f"{name}.py") <= SHARED, name


def test_no_stage_package_shadows_a_public_function() -> None:
    packages = {p.name for p in PKG.iterdir() if (p / "__init__.py").exists()}
    assert not packages & set(mlpack.__all__)


def test_public_surface_matches_all() -> None:
    for name in mlpack.__all__:
        assert getattr(mlpack, name) is not None, name


def _imports_cli(path: Path) -> bool:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name == "mlpack.cli" or a.name.startswith("mlpack.cli.")
                                                 for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "mlpack.cli" or node.module.startswith("mlpack.cli."):
                return True
            if node.module == "mlpack" and any(a.name == "cli" for a in node.names):
                return True
    return False


def test_no_library_module_imports_the_cli() -> None:
    """Orchestration lives in the library; the CLI only parses and prints (``python -m mlpack`` excepted)."""
    cli = PKG / "cli"
    offenders = [
        str(path.relative_to(PKG.parent)) for path in sorted(PKG.rglob("*.py"))
        if cli not in path.parents and path != PKG / "__main__.py" and _imports_cli(path)
    ]
    assert not offenders, "library modules importing mlpack.cli: " + ", ".join(offenders)
    assert _imports_cli(PKG / "__main__.py")  # the check sees a real import
