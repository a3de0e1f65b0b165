"""The ``mlpack`` command, named after docker's verbs where docker has one.

Each module in this package registers the sub-commands of one stage with
``register(subparsers)``; each sub-command's handler gets the parsed args and
the Settings and returns an exit status. Errors from the tree rooted at
MlpackError are printed as one message plus its hint, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from mlpack.errors import MlpackError
from mlpack.settings import Settings

TYPE_CHECKING = False  # typing is the type checker's: a CLI start (mlpack run) does not import it
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

__all__ = ["main", "build_parser"]

# One module per stage; each defines register(subparsers).
_COMMAND_MODULES = (
    "mlpack.cli.general",   # version, info
    "mlpack.cli.capture",   # capture, inspect (bundles)
    "mlpack.cli.render",    # render
    "mlpack.cli.build",     # build
    "mlpack.cli.images",    # images, pull, push, tag, rmi, save, load, base, system
    "mlpack.cli.containers",  # run, ps, logs, stop, kill, rm, exec, stats
    "mlpack.cli.export",    # export k8s
)

# Which module registers each command, so that ``mlpack run ...`` imports only the
# module of ``run`` (a CLI start is part of a container's start); checked against
# what the modules register by tests/unit/test_cli_commands.py.
_COMMANDS = {
    "version": "mlpack.cli.general", "info": "mlpack.cli.general",
    "capture": "mlpack.cli.capture", "inspect": "mlpack.cli.capture",
    "render": "mlpack.cli.render",
    "build": "mlpack.cli.build",
    **dict.fromkeys(("images", "pull", "push", "tag", "rmi", "save", "load", "base", "system"), "mlpack.cli.images"),
    **dict.fromkeys(("run", "ps", "logs", "stop", "kill", "rm", "exec", "stats"), "mlpack.cli.containers"),
    "export": "mlpack.cli.export",
}


def build_parser(modules: Sequence[str] = _COMMAND_MODULES, only: str | None = None) -> argparse.ArgumentParser:
    """The parser with the commands of ``modules`` (all of them by default); with ``only``, the
    parser of that one command (what ``mlpack <only> ...`` parses), the others left out."""
    parser = _Parser(
        prog="mlpack",
        description="Take a trained model out of the notebook: capture, build, run, ship.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in modules:
        importlib.import_module(name).register(sub if only is None else _OneCommand(sub, only))
    return parser


class _Parser(argparse.ArgumentParser):
    """argparse's parser (its sub-parsers are of its class), reading the terminal's width as
    shutil.get_terminal_size does without importing shutil (and bz2, lzma and zlib with it):
    argparse makes a formatter at every add_argument, and its formatter imports shutil."""

    def _get_formatter(self) -> argparse.HelpFormatter:
        try:
            columns = int(os.environ["COLUMNS"])
        except (KeyError, ValueError):
            columns = 0
        if columns <= 0:
            try:
                columns = os.get_terminal_size(sys.__stdout__.fileno()).columns or 80
            except (AttributeError, ValueError, OSError):
                columns = 80
        return self.formatter_class(prog=self.prog, width=columns - 2)


class _OneCommand:
    """The sub-parsers of ``mlpack``, taking only the parser of one command: a module registers
    all of its commands, and `mlpack run` need not build the arguments of ps, logs, stop, ..."""

    def __init__(self, sub: argparse._SubParsersAction, name: str) -> None:
        self.sub, self.name = sub, name

    def add_parser(self, name: str, **kwargs: Any) -> object:
        wanted = name == self.name or self.name in kwargs.get("aliases", ())
        return self.sub.add_parser(name, **kwargs) if wanted else _Unused()


class _Unused:
    """A command's parser that is never parsed: every attribute is itself and every call
    (add_argument, set_defaults, add_subparsers().add_parser, ...) a no-op returning itself."""

    def __getattr__(self, name: str) -> _Unused:
        return self

    def __call__(self, *args: object, **kwargs: object) -> _Unused:
        return self


def _command(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names (its first word that is not an option), if it is one."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in _COMMANDS else None
        if word in ("-h", "--help"):
            return None
    return None


def _command_module(argv: Sequence[str]) -> str | None:
    """The module of the command ``argv`` names, if known."""
    command = _command(argv)
    return _COMMANDS[command] if command else None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command(argv)
    parser = build_parser((_COMMANDS[command],), only=command) if command else build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(handler(args, Settings.from_env()) or 0)
    except MlpackError as exc:
        if args.debug:
            raise
        print(f"mlpack {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
