""".dockerignore matching, as moby's patternmatcher does it.

Each non-comment line is a pattern (``filepath.Clean``-ed, leading ``/``
dropped); ``*`` and ``?`` never cross ``/``, ``**`` matches any number of
directories, ``!`` makes an exception; the last pattern that matches a path
or one of its parent directories decides.
"""

from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path

from mlpack.values import dataclass

__all__ = ["IgnoreMatcher", "load_dockerignore"]


def _translate(pattern: str) -> re.Pattern[str]:
    out = ["^"]
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 2
                # "**/" matches zero or more whole directories
                if i < n and pattern[i] == "/":
                    out.append("(?:.*/)?")
                    i += 1
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1:end]
                if body.startswith("!") or body.startswith("^"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end
        elif ch == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    out.append("$")
    return re.compile("".join(out), re.S)


@dataclass(frozen=True)
class _Pattern:
    text: str
    regex: re.Pattern[str]
    exclusion: bool  # a "!" exception


class IgnoreMatcher:
    """Decides whether a context-relative path (``a/b/c``) is ignored."""

    def __init__(self, lines: list[str] | tuple[str, ...] = ()) -> None:
        self.patterns: list[_Pattern] = []
        for raw in lines:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exclusion = line.startswith("!")
            if exclusion:
                line = line[1:].strip()
            line = posixpath.normpath(line).lstrip("/")
            if line in ("", "."):
                continue
            self.patterns.append(_Pattern(line, _translate(line), exclusion))

    def ignored(self, rel: str) -> bool:
        """True when ``rel`` (or a parent directory of it) is excluded."""
        rel = rel.strip("/")
        if not rel or rel == ".":
            return False
        parents = []
        parts = rel.split("/")
        for k in range(1, len(parts)):
            parents.append("/".join(parts[:k]))
        matched = False
        for pattern in self.patterns:
            hit = bool(pattern.regex.match(rel)) or any(pattern.regex.match(p) for p in parents)
            if hit:
                matched = not pattern.exclusion
        return matched

    def may_contain_exceptions(self, rel_dir: str) -> bool:
        """Whether an excluded directory must still be walked because an
        exception pattern could re-include something below it."""
        prefix = rel_dir.strip("/") + "/"
        for pattern in self.patterns:
            if not pattern.exclusion:
                continue
            text = pattern.text
            if text.startswith(prefix):
                return True
            # a wildcard in the first component may match this directory
            first = text.split("/")[0]
            if any(c in first for c in "*?["):
                return True
        return False


def load_dockerignore(context: Path, dockerfile_name: str = "Dockerfile") -> IgnoreMatcher:
    """Reads ``<Dockerfile>.dockerignore`` next to the Dockerfile if present
    (BuildKit's rule), else ``.dockerignore`` at the context root."""
    candidates = [context / f"{os.path.basename(dockerfile_name)}.dockerignore", context / ".dockerignore"]
    for path in candidates:
        if path.is_file():
            return IgnoreMatcher(path.read_text().splitlines())
    return IgnoreMatcher()
