"""remove_mountpoints drops the empty mount points a RUN left in its upper dir, and never
follows a symlink the step planted in their place (it once deleted host files that way)."""

from __future__ import annotations

import os
from pathlib import Path

from mlpack.builder.runstep import remove_mountpoints


def test_empty_mountpoints_go_and_written_ones_stay(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "m" / "cache").mkdir(parents=True)
    (upper / "run" / "secrets").mkdir(parents=True)
    (upper / "run" / "secrets" / "token").write_text("")
    (upper / "w" / "data").mkdir(parents=True)
    (upper / "w" / "data" / "kept.txt").write_text("written by the step")
    remove_mountpoints(upper, ["/m/cache", "/run/secrets/token", "/w/data"], lambda rel: False)
    assert not (upper / "m").exists() and not (upper / "run").exists()
    assert (upper / "w" / "data" / "kept.txt").exists()


def test_a_planted_symlink_stops_the_cleanup(tmp_path: Path) -> None:
    victim = tmp_path / "host"
    (victim / "x" / "y").mkdir(parents=True)
    (victim / "x" / "f").write_text("")
    upper = tmp_path / "upper"
    upper.mkdir()
    os.symlink(str(victim), upper / "m")
    os.symlink(str(victim / "x" / "f"), upper / "f")
    remove_mountpoints(upper, ["/m/x/y", "/m/x/f", "/f", "/m/../m/x/y"], lambda rel: False)
    assert (victim / "x" / "y").is_dir() and (victim / "x" / "f").is_file()
    assert os.path.islink(upper / "m") and os.path.islink(upper / "f")
