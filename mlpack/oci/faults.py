"""Fault-injection points for crash tests of the store.

The store's crash contract (a blob name always matches its content, the
index only names complete images) is proven by killing a real mlpack process
at chosen points, not at random moments: ``MLPACK_FAULT=<point>:<n>`` makes the
process SIGKILL itself the n-th time it reaches ``point`` (n counts from 1).
Points:

``blob.write``          after a chunk of a blob went into its ``.tmp-`` file
``blob.before-rename``  a blob is complete and fsynced, not yet under its name
``blob.after-rename``   a blob has its name, the directory is not yet fsynced
``file.before-rename``  an atomically replaced file (index.json) is written, not renamed

The variable is read when a point is reached (never at import); without it a
point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

__all__ = ["ENV", "POINTS", "point"]

ENV = "MLPACK_FAULT"
POINTS = ("blob.write", "blob.before-rename", "blob.after-rename", "file.before-rename")
_hits: dict[str, int] = {}


def point(name: str) -> None:
    """Reached fault point ``name``: die here if ``MLPACK_FAULT`` asks for this hit."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    want, _, nth = spec.rpartition(":")
    if want != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if str(_hits[name]) == nth:
        os.kill(os.getpid(), signal.SIGKILL)
