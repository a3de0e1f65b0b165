"""The ``mlpack`` command, named after docker's verbs where docker has one.

Each module in this package registers the sub-commands of one stage with
``register(subparsers)``; each sub-command's handler gets the parsed args and
the Settings and returns an exit status. Errors from the tree rooted at
MlpackError are printed as one message plus its hint, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from mlpack.errors import MlpackError
from mlpack.settings import Settings

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


def build_parser(modules: Sequence[str] = _COMMAND_MODULES) -> argparse.ArgumentParser:
    """The parser with the commands of ``modules`` (all of them by default)."""
    parser = argparse.ArgumentParser(
        prog="mlpack",
        description="Take a trained model out of the notebook: capture, build, run, ship.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


def _command_module(argv: Sequence[str]) -> str | None:
    """The module of the command ``argv`` names (its first word that is not an option), if known."""
    for word in argv:
        if not word.startswith("-"):
            return _COMMANDS.get(word)
        if word in ("-h", "--help"):
            return None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    module = _command_module(argv)
    parser = build_parser((module,) if module else _COMMAND_MODULES)
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
