"""A real IPython shell with the mlpack extension loaded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    from IPython.testing.globalipapp import get_ipython

    monkeypatch.setenv("MLPACK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLPACK_PROGRESS", "text")
    ip = get_ipython()
    ip.run_line_magic("load_ext", "mlpack")
    before = set(ip.user_ns)
    yield ip
    for name in set(ip.user_ns) - before:
        ip.user_ns.pop(name, None)
    ip.run_line_magic("unload_ext", "mlpack")
