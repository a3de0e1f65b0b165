"""Filters that put untrusted values into a Dockerfile without changing its meaning.

Two places can be attacked: a shell command (``RUN``), where ``$(...)``,
backticks or ``;`` would run code, and the Dockerfile itself, where a newline
starts a new instruction and ``$`` is expanded by the builder. Every value
that comes from a user or a bundle goes through one of these filters; a value
with a control character is refused outright, because no quoting can keep a
newline inside one Dockerfile line (BuildKit has no escape for it).
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

from mlpack.errors import RenderError

__all__ = ["shell_quote", "dockerfile_value", "json_array", "check_text"]

# C0 controls and DEL, plus the Unicode line separators some editors honour.
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]")


def check_text(value: Any, what: str = "value") -> str:
    """``value`` as a string, refused when it holds a newline or another control character."""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise RenderError(
            f"{what} must be a string, not {type(value).__name__}: {value!r}",
            hint="pass plain text values",
        )
    text = str(value)
    match = _CONTROL.search(text)
    if match:
        raise RenderError(
            f"{what} {text!r} contains a control character ({match.group()!r}) "
            "that would break the Dockerfile's lines",
            hint="remove newlines, tabs and other control characters from the value",
            value=text,
        )
    return text


def shell_quote(value: Any) -> str:
    """One POSIX-shell word that ``sh`` reads back as exactly ``value`` (no expansion)."""
    return shlex.quote(check_text(value, "shell argument"))


def dockerfile_value(value: Any) -> str:
    """A double-quoted Dockerfile word for ENV/LABEL that the builder reads back verbatim.

    Inside double quotes BuildKit, buildah and mlpack's builder take ``\\"``,
    ``\\\\`` and ``\\$`` as escapes; everything else is literal. The escape
    character is the default backslash (the templates set no ``escape=``
    directive).
    """
    text = check_text(value, "Dockerfile value")
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def json_array(values: Any) -> str:
    """An exec-form JSON array (``["a", "b"]``) on one line, for ENTRYPOINT/CMD/HEALTHCHECK."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise RenderError(f"exec form needs a list of strings, got {values!r}")
    items = [check_text(v, "exec-form argument") for v in values]
    # ensure_ascii keeps the line pure ASCII; json never emits a raw newline.
    return json.dumps(items)
