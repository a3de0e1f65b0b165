"""One image config type: only mlpack/oci/config.py reads a config blob's keys (and the builder's
writer, which starts from an ImageConfig, writes them); everything else reads ImageConfig's fields."""

from __future__ import annotations

import ast
from pathlib import Path

import mlpack

PKG = Path(mlpack.__file__).parent
OWNERS = {PKG / "oci" / "config.py", PKG / "builder" / "imageconfig.py"}
KEYS = {"User", "Env", "Entrypoint", "Cmd", "WorkingDir", "ExposedPorts", "Labels", "Healthcheck", "StopSignal",
        "OnBuild", "Volumes", "Shell", "diff_ids", "rootfs"}


def _key_reads(path: Path) -> list[str]:
    """``x["User"]``, ``x.get("User")``, ``x.pop("User")`` and ``x["config"]["User"]`` in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        key = None
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            key = node.slice.value
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in ("get", "pop", "setdefault") and node.args
              and isinstance(node.args[0], ast.Constant)):
            key = node.args[0].value
        if key in KEYS:
            found.append(f"{path.relative_to(PKG.parent)}:{node.lineno}: {key!r}")
    return found


def test_no_module_but_the_owners_reads_image_config_keys() -> None:
    found = [hit for path in sorted(PKG.rglob("*.py")) if path not in OWNERS for hit in _key_reads(path)]
    assert not found, "read mlpack.oci.config.ImageConfig's fields instead:\n" + "\n".join(found)


def test_the_check_sees_the_owners() -> None:
    assert _key_reads(PKG / "oci" / "config.py") and _key_reads(PKG / "builder" / "imageconfig.py")


def test_only_one_image_config_type() -> None:
    defined = [
        str(path.relative_to(PKG.parent)) for path in sorted(PKG.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef) and node.name in ("ImageConfig", "ConfigFile")
    ]
    assert defined == ["mlpack/oci/config.py"]
