"""The architecture stays visible: stage packages import only what DESIGN.md allows."""

from __future__ import annotations

import ast
from pathlib import Path

import mlpack

PKG = Path(mlpack.__file__).parent

# stage -> the mlpack modules it may import (besides itself and LEAVES).
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
LEAVES = {"_version", "values"}  # import nothing; any module may import them
# Top-level helpers of the front doors (not stages): they may import stages, never a front door.
HELPERS = {"progress", "endpoint", "parity", "pipeline"}
# DESIGN.md: "front doors: api.py, cli/, ipython/: thin layers over the stages" (may import the
# stages, settings, errors); the package root and service.py (the serve pipeline) are front doors too.
FRONT_DOORS = {"__init__", "__main__", "api", "service", "cli", "ipython"}
ROOT = "<mlpack>"  # `import mlpack` or `from mlpack import <something that is not a module>`


def _module_names() -> set[str]:
    return {p.stem for p in PKG.glob("*.py")} | {p.name for p in PKG.iterdir() if (p / "__init__.py").exists()}


def _imports(path: Path) -> set[str]:
    """The top-level mlpack modules ``path`` imports (at any depth, lazily or not); ROOT for the package."""
    tree = ast.parse(path.read_text(), filename=str(path))
    modules = _module_names()
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "mlpack":  # from mlpack import runtime | __version__ | capture
                found.update(f"mlpack.{a.name}" if a.name in modules else "mlpack" for a in node.names)
            else:
                found.add(node.module)
    return {name.split(".")[1] if "." in name else ROOT for name in found
            if name == "mlpack" or name.startswith("mlpack.")}


def _files(name: str) -> list[Path]:
    return sorted((PKG / name).rglob("*.py")) if (PKG / name).is_dir() else [PKG / f"{name}.py"]


def test_every_module_has_a_place_in_the_table() -> None:
    placed = set(ALLOWED) | SHARED | LEAVES | HELPERS | FRONT_DOORS
    assert _module_names() - placed == set(), "add new top-level modules to DESIGN.md's table and here"


def test_stage_packages_import_only_what_design_allows() -> None:
    problems = []
    for stage, allowed in ALLOWED.items():
        for path in _files(stage):
            extra = _imports(path) - allowed - LEAVES - {stage}
            if extra:
                problems.append(f"{path.relative_to(PKG.parent)} imports {sorted(extra)}")
    assert not problems, "layering broken:\n" + "\n".join(problems)


def test_shared_modules_import_no_stage() -> None:
    for name in SHARED:
        assert _imports(PKG / f"{name}.py") <= SHARED | LEAVES, name
    for name in LEAVES:
        assert _imports(PKG / f"{name}.py") == set(), name


def test_helpers_import_no_front_door() -> None:
    for name in HELPERS:
        for path in _files(name):
            extra = _imports(path) - set(ALLOWED) - SHARED - LEAVES - HELPERS
            assert not extra, f"{path.relative_to(PKG.parent)} imports {sorted(extra)}"


def test_front_doors_import_the_stages_not_the_package_root() -> None:
    """The front doors import stages, shared modules and each other by module, never through the root
    (``from mlpack import capture`` inside mlpack would import the lazy root and loop back)."""
    known = set(ALLOWED) | SHARED | LEAVES | HELPERS | FRONT_DOORS
    problems = []
    for name in FRONT_DOORS - {"cli", "__main__"}:
        for path in _files(name):
            extra = _imports(path) - known
            if extra:
                problems.append(f"{path.relative_to(PKG.parent)} imports {sorted(extra)}")
    assert not problems, "\n".join(problems)


def test_no_module_outside_the_cli_imports_the_cli() -> None:
    """Orchestration lives in the library (mlpack.pipeline); the CLI only parses and prints."""
    outside = [p for p in sorted(PKG.rglob("*.py"))
               if "cli" not in p.relative_to(PKG).parts[:1] and p.name != "__main__.py"]  # `python -m mlpack`
    importers = [str(p.relative_to(PKG.parent)) for p in outside if "cli" in _imports(p)]
    assert importers == [], f"library modules import the CLI: {importers}"


def test_no_stage_package_shadows_a_public_function() -> None:
    packages = {p.name for p in PKG.iterdir() if (p / "__init__.py").exists()}
    assert not packages & set(mlpack.__all__)


def test_public_surface_matches_all() -> None:
    for name in mlpack.__all__:
        assert getattr(mlpack, name) is not None, name

