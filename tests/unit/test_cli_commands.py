"""The CLI imports only the module of the command it runs, and that table matches the modules."""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
from pathlib import Path

from mlpack import cli

ROOT = Path(__file__).resolve().parents[2]


def test_every_command_maps_to_the_module_that_registers_it() -> None:
    registered = {}
    for name in cli._COMMAND_MODULES:
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(name).register(sub)
        registered.update(dict.fromkeys(sub.choices, name))
    assert registered == cli._COMMANDS


def test_choosing_the_module() -> None:
    assert cli._command_module(["run", "-d", "img"]) == "mlpack.cli.containers"
    assert cli._command_module(["--debug", "push", "a", "b"]) == "mlpack.cli.images"
    assert cli._command_module(["--help"]) is None and cli._command_module([]) is None
    assert cli._command_module(["nonsense"]) is None


def _modules_after(*argv: str) -> set[str]:
    code = ("import sys, runpy; sys.argv = ['mlpack', *sys.argv[1:]]\n"
            "try:\n    runpy.run_module('mlpack', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print(' '.join(m for m in sys.modules if m.startswith('mlpack')), file=sys.stderr)")
    env = dict(os.environ, PYTHONPATH=str(ROOT), MLPACK_HOME="/nonexistent/mlpack-home")
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env, timeout=60)
    return set(proc.stderr.strip().splitlines()[-1].split())


def test_run_imports_only_the_containers_commands() -> None:
    loaded = _modules_after("run", "--help")
    assert "mlpack.cli.containers" in loaded
    assert not loaded & {"mlpack.cli.export", "mlpack.cli.images", "mlpack.cli.build", "mlpack.cli.capture",
                         "mlpack.cli.render", "mlpack.kube", "mlpack.builder", "mlpack.dockerfile"}, loaded


def test_help_and_unknown_commands_still_list_every_command() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-m", "mlpack", "--help"], capture_output=True, text=True, env=env).stdout
    assert all(c in out for c in ("build", "run", "export", "push"))
    bad = subprocess.run([sys.executable, "-m", "mlpack", "frobnicate"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr and "export" in bad.stderr
