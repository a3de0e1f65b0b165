"""Named build contexts: ``--build-context NAME=DIR``, read by ``COPY --from=NAME``.

As with ``docker buildx build --build-context`` and ``buildah bud
--build-context``, a named context is a second directory the Dockerfile
copies from; a ``--from`` name that is a named context means that directory
(before any stage or image of that name). It is resolved like the main
context (paths stay inside its root: ``..`` stops at its top, a symlink's
target is taken inside it), but no ``.dockerignore`` applies. Only local
directories are accepted (no ``docker-image://``, URL or ``oci-layout://``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from mlpack.builder.context import BuildContextDir, HashCache
from mlpack.builder.ignore import IgnoreMatcher
from mlpack.errors import BuildError

__all__ = ["parse_build_contexts", "open_named"]

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-")


def _good_name(name: str) -> bool:
    """A context name as BuildKit's: lowercase letters, digits, ``._-``, starting alphanumeric, <= 128."""
    return 0 < len(name) <= 128 and name[0].isascii() and name[0].isalnum() and set(name) <= _NAME_CHARS
_HINT = "give --build-context NAME=DIR with a lowercase NAME and a local directory"


def parse_build_contexts(values: Sequence[str] | Mapping[str, str | os.PathLike[str]] | None) -> dict[str, Path]:
    """``["deps=ctx/deps"]`` or ``{"deps": path}`` -> {name: absolute directory}; bad values raise BuildError."""
    if not values:
        return {}
    pairs: list[tuple[str, str]] = []
    if isinstance(values, Mapping):
        pairs = [(str(k), os.fspath(v)) for k, v in values.items()]
    else:
        for text in values:
            name, eq, value = str(text).partition("=")
            if not eq or not name or not value:
                raise BuildError(f"--build-context {text!r} is not NAME=DIR", hint=_HINT)
            pairs.append((name, value))
    out: dict[str, Path] = {}
    for name, value in pairs:
        if not _good_name(name):
            raise BuildError(f"build context name {name!r} is not a lowercase name", hint=_HINT)
        if name in out:
            raise BuildError(f"build context {name!r} is given twice", hint=_HINT)
        if "://" in value:
            raise BuildError(f"build context {name}={value}: only local directories are supported",
                             hint="mlpack reads images with FROM/COPY --from=IMAGE; pass a directory here")
        path = Path(value)
        if not path.is_dir():
            raise BuildError(f"build context {name}={value} is not a directory", hint=_HINT)
        out[name] = path.resolve()
    return out


def open_named(contexts: Mapping[str, Path], hashes: HashCache) -> dict[str, BuildContextDir]:
    """A BuildContextDir for each named context: its own root, no .dockerignore."""
    return {name: BuildContextDir(root=Path(path).resolve(), ignore=IgnoreMatcher(), hashes=hashes)
            for name, path in contexts.items()}
