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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlpack",
        description="Take a trained model out of the notebook: capture, build, run, ship.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
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
