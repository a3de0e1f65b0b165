"""``python -m mlpack.runtime.delegate FD``: one call of an ordinary user's, run in its user namespace.

Started by :func:`mlpack.runtime.rootless.call_in_userns` under ``unshare``
(so it is root over the user's ids here). Reads the pickled call on stdin,
writes callbacks and the outcome to file descriptor FD. Kept free of
imports beyond the runtime, so it starts fast.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = os.fdopen(int(args[0]), "wb")
    from mlpack.runtime.rootless import cover_unified, serve_call

    cover_unified()
    with out:
        return serve_call(sys.stdin.buffer, out)


if __name__ == "__main__":
    sys.exit(main())
