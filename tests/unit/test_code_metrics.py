"""bench/code's measuring scripts count what they say on trees whose answer is known."""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[2] / "bench" / "code"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_code_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root / "mlpack"


def test_sizes_counts_classes_methods_and_functions_by_their_lines(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"mlpack/a.py": '''
        class Big:
            def one(self):
                x = 1
                return x

            def two(self):
                return 2


        def small():
            return 0
        '''})
    rows = {name.split()[0]: (lines, kind) for lines, kind, name in _load("sizes").sizes(root)}
    assert rows == {"Big": (7, "class"), "Big.one": (3, "def"), "Big.two": (2, "def"), "small": (2, "def")}


def test_import_graph_sees_absolute_relative_lazy_and_root_imports(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "mlpack/__init__.py": "from mlpack.api import go\n__version__ = '1'\n",
        "mlpack/api.py": "def go():\n    from mlpack.builder import build\n",
        "mlpack/errors.py": "",
        "mlpack/builder/__init__.py": "from .steps import x\nfrom mlpack import errors\n",
        "mlpack/builder/steps.py": "from mlpack.oci.layout import Store\nfrom ..oci import media\nx = 1\n",
        "mlpack/oci/__init__.py": "",
        "mlpack/oci/layout.py": "from mlpack import __version__\n",
        "mlpack/oci/media.py": "import json\n",
    })
    graph = _load("imports").graph(root)
    assert graph == {"mlpack": {"api"}, "api": {"builder"}, "errors": set(), "builder": {"errors", "oci"},
                     "oci": {"__version__"}}
