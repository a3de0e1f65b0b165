"""Sub-commands of the capture stage (registered by mlpack.cli)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Adds this stage's sub-commands (filled in as the stage lands)."""
