"""render stage: a Bundle becomes a Dockerfile and a self-contained build context.

``render(bundle, RenderOptions(...), out_dir=...) -> BuildContext``. The
Dockerfile comes from Jinja templates (``templates_dir()``) rendered in a
sandbox, with every user value quoted for the shell or the Dockerfile.
"""

from __future__ import annotations

from mlpack.dockerfile.context import LABEL_PREFIX, SERVING_MODULES, BuildContext, render, render_dockerfile
from mlpack.dockerfile.depsdir import BaseFacts
from mlpack.dockerfile.options import DEFAULT_BASE, DEFAULT_PORT, DEFAULT_UID, LOCAL_BASE, RenderOptions
from mlpack.dockerfile.quoting import dockerfile_value, shell_quote
from mlpack.dockerfile.templates import templates_dir

__all__ = [
    "render",
    "render_dockerfile",
    "RenderOptions",
    "BuildContext",
    "BaseFacts",
    "templates_dir",
    "shell_quote",
    "dockerfile_value",
    "DEFAULT_BASE",
    "LOCAL_BASE",
    "DEFAULT_PORT",
    "DEFAULT_UID",
    "LABEL_PREFIX",
    "SERVING_MODULES",
]
