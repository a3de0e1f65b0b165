"""The built-in Dockerfile templates (the ``*.j2`` files beside this module) and the
sandboxed Jinja environment that renders them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlpack.dockerfile.quoting import check_text, dockerfile_value, json_array, shell_quote
from mlpack.errors import RenderError

__all__ = ["templates_dir", "make_environment", "render_template", "template_blocks"]

_MARKER = "base.Dockerfile.j2"


def templates_dir() -> Path:
    """The built-in templates: the ``*.j2`` files of this package."""
    here = Path(__file__).resolve().parent
    if not (here / _MARKER).is_file():
        raise RenderError(
            "mlpack's Dockerfile templates are missing",
            hint="reinstall mlpack (pip install --force-reinstall mlpack) or pass a template_dir "
                 "holding base.Dockerfile.j2",
            searched=[str(here)],
        )
    return here


def make_environment(extra_dir: Path | None = None) -> Any:
    """A sandboxed, StrictUndefined Jinja environment with mlpack's quoting filters.

    ``extra_dir`` is searched before the built-in templates, so a user can
    replace one template or extend ours by name.
    """
    try:
        import jinja2
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:  # pragma: no cover - jinja2 is in the notebook extra
        raise RenderError("rendering needs Jinja2", hint="pip install 'mlpack[notebook]'") from None
    dirs = [str(templates_dir())]
    if extra_dir is not None:
        if not Path(extra_dir).is_dir():
            raise RenderError(f"template directory {extra_dir} does not exist",
                              hint="pass an existing directory with your *.j2 templates")
        dirs.insert(0, str(extra_dir))
    env = ImmutableSandboxedEnvironment(
        loader=jinja2.FileSystemLoader(dirs),
        undefined=jinja2.StrictUndefined,
        # Dockerfiles are not HTML; quoting is done by the explicit filters.
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["sh"] = shell_quote
    env.filters["dv"] = dockerfile_value
    env.filters["exec"] = json_array
    env.filters["line"] = lambda v: check_text(v, "comment text")
    return env


def template_blocks(env: Any, name: str) -> set[str]:
    """Names of the blocks a template and its parents define."""
    found: set[str] = set()
    seen: set[str] = set()
    current: str | None = name
    while current and current not in seen:
        seen.add(current)
        source = env.loader.get_source(env, current)[0]
        tree = env.parse(source)
        import jinja2.nodes as nodes

        found.update(block.name for block in tree.find_all(nodes.Block))
        parent = next(iter(tree.find_all(nodes.Extends)), None)
        current = parent.template.value if parent is not None and isinstance(parent.template, nodes.Const) else None
    return found


def render_template(name: str, context: Mapping[str, Any], *, extra_dir: Path | None = None,
                    blocks: Mapping[str, str] | None = None) -> str:
    """Render template ``name`` with ``context``; ``blocks`` replace named blocks' bodies."""
    import jinja2

    env = make_environment(extra_dir)
    try:
        if blocks:
            known = template_blocks(env, name)
            unknown = sorted(set(blocks) - known)
            if unknown:
                raise RenderError(
                    f"template {name} has no block(s) {', '.join(unknown)}",
                    hint=f"blocks you can override: {', '.join(sorted(known))}",
                )
            # The override is the user's own Dockerfile text, rendered in the
            # same sandbox (so it can use {{ venv }}, |sh, ...).
            child = "{% extends " + repr(name) + " %}\n" + "".join(
                "{% block " + block + " %}" + body + "{% endblock %}\n" for block, body in blocks.items()
            )
            template = env.from_string(child)
        else:
            template = env.get_template(name)
        return template.render(**context)
    except RenderError:
        raise
    except jinja2.TemplateNotFound as exc:
        raise RenderError(f"template {exc.name} not found",
                          hint="use cpu.Dockerfile.j2, gpu.Dockerfile.j2 or a file in your template_dir") from None
    except jinja2.UndefinedError as exc:
        raise RenderError(f"template {name}: {exc.message}",
                          hint="a custom template used a value render() does not provide") from None
    except jinja2.TemplateSyntaxError as exc:
        raise RenderError(f"template {exc.name or name}:{exc.lineno}: {exc.message}",
                          hint="fix the Jinja syntax of the template") from None
    except jinja2.exceptions.SecurityError as exc:
        raise RenderError(f"template {name} tried an unsafe operation: {exc}",
                          hint="templates run sandboxed; use the provided values and filters") from None
