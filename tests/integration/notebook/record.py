"""Re-record a notebook's stored outputs by executing it for real (maintainers' tool).

    MLPACK_HOME=/var/tmp/some-home python tests/integration/notebook/record.py notebooks/quickstart_sklearn.ipynb

nbval then compares every later run with these outputs (after sanitize.cfg).
Run it after changing a notebook; review the diff before committing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def record(path: Path, timeout: int = 1800) -> None:
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    for cell in nb.cells:  # keep the files small and free of run-specific noise
        cell.get("metadata", {}).pop("execution", None)
    nbformat.write(nb, path)


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        record(Path(arg))
        print(f"recorded {arg}")
