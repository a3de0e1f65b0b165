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


def _sub_help(parser: argparse.ArgumentParser, command: str) -> str:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command].format_help()


def test_one_command_parser_is_the_full_parsers_command(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """`mlpack run ...` builds only run's parser: for every command it is the same parser
    (same help, same defaults) as in the parser of every command, and parses the same."""
    monkeypatch.setenv("COLUMNS", "100")
    full = cli.build_parser()
    for command, module in cli._COMMANDS.items():
        one = cli.build_parser((module,), only=command)
        assert list(next(a for a in one._actions if isinstance(a, argparse._SubParsersAction)).choices) == [command]
        assert _sub_help(one, command) == _sub_help(full, command), command
    argv = ["run", "-d", "-p", "8080:80", "--cpus", "0.5", "-e", "A=1", "img", "cmd", "--x"]
    assert vars(cli.build_parser(("mlpack.cli.containers",), only="run").parse_args(argv)) == \
        vars(full.parse_args(argv))


# What `mlpack run` must not load before the runtime runs (each costs a CLI start milliseconds of
# CPU, which a container's start waits for): the machinery of typing and dataclasses (inspect,
# ast, dis, tokenize), subprocess (the forked monitor loads it after it has started the runtime),
# copy, OpenSSL (hashlib: the few small blobs read are hashed by CPython's own sha256), shutil
# with its compressors (argparse asks it for the terminal's width), socket with its enums and
# selectors (the listeners are of its C type), and any third-party or other stage's module.
HEAVY = {"typing", "dataclasses", "inspect", "ast", "dis", "tokenize", "subprocess", "copy", "tempfile",
         "hashlib", "_hashlib", "shutil", "bz2", "lzma", "zlib", "socket", "selectors",
         "datetime", "yaml", "numpy", "starlette", "fastapi", "pydantic", "onnxruntime", "jinja2",
         "mlpack.kube", "mlpack.builder", "mlpack.dockerfile", "mlpack.bundle", "mlpack.server", "mlpack.api",
         "mlpack.oci.unpack", "mlpack.runtime.sandbox", "mlpack.runtime.monitor"}


def test_the_run_path_imports_no_heavy_module(tmp_path: Path) -> None:
    """`mlpack run -d -p ... IMAGE` up to the store lookup (an empty home here: no root needed), plus
    every module it imports later before the runtime's exec, and Container (printed after it)."""
    code = ("import sys\nfrom mlpack.cli import main\n"
            "status = main(['run', '-d', '-p', '8080:80', '--cpus', '0.5', 'localhost/absent/image:1'])\n"
            "import mlpack.runtime.create, mlpack.oci.layercache, mlpack.oci.layout, mlpack.runtime.container\n"
            "print(status, ' '.join(sorted(sys.modules)))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}  # coverage's .pth imports much
    env.update(PYTHONPATH=str(ROOT), MLPACK_HOME=str(tmp_path / "home"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    status, loaded = proc.stdout.split(" ", 1)
    assert status == "1" and "is not in the store" in proc.stderr, proc.stderr
    assert "mlpack.runtime.create" in loaded.split()
    assert not HEAVY & set(loaded.split()), sorted(HEAVY & set(loaded.split()))


def test_one_command_takes_a_command_by_its_alias() -> None:
    parent = argparse.ArgumentParser()
    one = cli._OneCommand(parent.add_subparsers(dest="command"), "ls")
    one.add_parser("list", aliases=["ls"]).add_argument("-a", action="store_true")
    one.add_parser("other").add_argument("--ignored")  # never built
    assert vars(parent.parse_args(["ls", "-a"])) == {"command": "ls", "a": True}
