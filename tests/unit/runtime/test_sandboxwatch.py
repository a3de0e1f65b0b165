"""The RUN sandbox's watchdog script: what it does when the builder says done, and when it dies."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mlpack.runtime import sandboxwatch

HEAVY = ("subprocess", "ctypes", "json", "shutil", "pathlib", "signal", "sandboxreap")


def _watch(base: Path, say: bytes) -> tuple[int, str]:
    """Run the watchdog as the sandbox does, write ``say`` and close its stdin; (status, imports)."""
    proc = subprocess.Popen([sys.executable, "-S", "-X", "importtime", sandboxwatch.__file__, str(base)],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = proc.communicate(say, timeout=60)
    imported = {line.split("|")[-1].strip() for line in err.decode().splitlines() if line.startswith("import time:")}
    return proc.returncode, " ".join(sorted(imported))


def _sandbox(tmp_path: Path) -> Path:
    base = tmp_path / "sandbox" / "mlpack-sbx-0123456789ab"
    (base / "rootfs").mkdir(parents=True)
    upper = tmp_path / "upper"
    upper.mkdir()
    (upper / "made-by-the-step").write_text("x")
    # a builder that is gone (no such pid), nothing mounted, no cgroup, no runtime state
    (base / "owner.json").write_text(json.dumps({"owner_pid": 2**22 + 7, "owner_start": "1", "cgroups_path": "",
                                                 "delete_argv": None, "upperdir": str(upper), "helpers": []}))
    return base


def test_done_leaves_the_sandbox_to_the_builder_and_imports_no_reaper(tmp_path: Path) -> None:
    base = _sandbox(tmp_path)
    code, imported = _watch(base, b"done")
    assert code == 0 and base.is_dir() and (tmp_path / "upper").is_dir()
    assert not set(imported.split()) & set(HEAVY), imported  # a bare interpreter's start: the common case


def test_end_of_file_without_done_reaps_the_sandbox_and_the_steps_changes(tmp_path: Path) -> None:
    base = _sandbox(tmp_path)
    code, imported = _watch(base, b"")
    assert code == 0 and not base.exists() and not (tmp_path / "upper").exists()
    assert "sandboxreap" in imported.split()
