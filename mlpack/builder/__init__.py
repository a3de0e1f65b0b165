"""The embedded, daemonless image builder: Dockerfile -> OCI image in the store.

    image = build("ctx/", BuildOptions(tag="localhost/app:1"), settings=Settings.from_env())

Front end (:mod:`.parser`, :mod:`.shell`, :mod:`.stages`), cache keys
(:mod:`.cache`), changesets (:mod:`.changeset`, :mod:`.copying`), RUN in the
runtime sandbox (:mod:`.runstep`), config assembly (:mod:`.imageconfig`)
and the stage loop (:mod:`.executor`). Progress is a stream of typed events
(:mod:`.events`).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from mlpack.builder.options import BuildOptions, parse_secrets
from mlpack.builder.events import (
    BuildDone, BuildEvent, BuildWarning, LayerSummary, Progress, StageStarted, StepCached, StepDone, StepOutput,
    StepStarted, TextProgress,
)
from mlpack.errors import BuildError
from mlpack.runtime.rootless import delegated_unless_refused
from mlpack.settings import Settings
from mlpack.values import replace

TYPE_CHECKING = False  # typing is the type checker's: a CLI rebuild does not import it
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

    from mlpack.oci.image import Image

__all__ = [
    "build", "BuildOptions", "check_dockerfile", "parse_secrets", "resolve_input", "BuildWarning",
    "BuildEvent", "Progress", "StageStarted", "StepStarted", "StepCached", "StepDone", "StepOutput",
    "BuildDone", "LayerSummary", "TextProgress",
]


def _render_bundle(thing: Any, store: Any, settings: Settings | None = None, deps: str = "run",
                   say: Any = None, platform: tuple[str, str] | None = None) -> Any:
    """Render a bundle with the base :func:`~mlpack.dockerfile.options.choose_base` picks for
    this store; ``deps`` as :func:`mlpack.builder.depsmode.render_for_build` takes it. For a
    ``platform`` of another architecture than this machine's, ``deps`` is ``context``."""
    from mlpack.dockerfile import RenderOptions, render
    from mlpack.dockerfile.options import choose_base

    if isinstance(thing, (str, os.PathLike)):
        from mlpack.bundle import Bundle

        thing = Bundle.load(Path(thing))
    if platform is not None:
        from mlpack.builder.depsmode import foreign_deps

        deps = foreign_deps(deps, platform, say)
    present = (lambda ref: store.has(ref, platform=platform)) if store is not None else None
    options = RenderOptions()
    options = RenderOptions(base=choose_base(None, options.python_version(thing.python_version), present))
    if settings is None or store is None:
        return render(thing, options)
    from mlpack.builder.depsmode import render_for_build

    return render_for_build(thing, options, settings, store, deps=deps, say=say, platform=platform)


def _is_bundle(thing: object) -> bool:
    """Whether ``thing`` is a Bundle, without importing the capture stage (numpy) to build a directory:
    a Bundle exists only once its module is loaded."""
    module = sys.modules.get("mlpack.bundle.bundle")
    return module is not None and isinstance(thing, module.Bundle)


def _is_build_context(thing: object) -> bool:
    """Whether ``thing`` is a rendered BuildContext, without importing the render stage (its wheel
    and email modules) to build a directory: a BuildContext exists only once its module is loaded."""
    module = sys.modules.get("mlpack.dockerfile.context")
    return module is not None and isinstance(thing, module.BuildContext)


def resolve_input(thing: Any, dockerfile: str | os.PathLike[str] | None, store: Any = None) -> tuple[Path, Path]:
    """(context dir, Dockerfile path) for a Bundle, a BuildContext, a bundle dir or a context dir."""
    ctx, df, _ = _resolve_input(thing, dockerfile, lambda t: _render_bundle(t, store))
    return ctx, df


def _resolve_input(thing: Any, dockerfile: str | os.PathLike[str] | None,
                   render_bundle: Callable[[Any], Any]) -> tuple[Path, Path, dict[str, Path]]:
    """resolve_input plus the named build contexts a rendered BuildContext brings."""
    if _is_build_context(thing):
        ctx = Path(thing.path)
        df = Path(dockerfile) if dockerfile else Path(thing.dockerfile)
        if not df.is_absolute():
            df = ctx / df
        if not df.exists() and isinstance(thing.dockerfile, str) and "FROM" in thing.dockerfile.upper():
            df = ctx / "Dockerfile"
        return ctx, df, dict(thing.contexts)
    bundle = _is_bundle(thing)
    path = Path(thing.path if bundle else thing)
    looks_like_bundle = (path / "mlpack.yaml").is_file() and not (path / "Dockerfile").is_file()
    if bundle or (looks_like_bundle and dockerfile is None):
        return _resolve_input(render_bundle(thing), dockerfile, render_bundle)
    if not path.is_dir():
        raise BuildError(f"build context {path} is not a directory",
                         hint="pass a directory with a Dockerfile, a bundle or a rendered BuildContext")
    df = Path(dockerfile) if dockerfile else path / "Dockerfile"
    if not df.is_absolute() and not df.exists():
        df = path / df
    return path, df, {}


def check_dockerfile(context: Any, *, dockerfile: str | os.PathLike[str] | None = None,
                     build_args: Mapping[str, str] | None = None, target: str | None = None) -> tuple[str, list[Any]]:
    """``(file name, findings)`` of the Dockerfile of ``context`` (see :mod:`.check`); builds nothing."""
    from mlpack.builder.check import check

    ctx_dir, df_path = resolve_input(context, dockerfile)
    try:
        text = df_path.read_text()
    except OSError as exc:
        raise BuildError(f"cannot read {df_path}: {exc.strerror}",
                         hint="pass -f with the Dockerfile's path, or put a Dockerfile in the context") from None
    name = df_path.name if df_path.parent == ctx_dir else str(df_path)
    args = {k: str(v) for k, v in (build_args or {}).items()}
    return name, check(text, file=name, build_args=args, target=target)


@delegated_unless_refused  # an ordinary user's build runs in its user namespace, where there is one
def build(
    bundle_or_context_or_dir: Any,
    options: BuildOptions | None = None,
    *,
    settings: Settings,
    progress: Progress | None = None,
    **fields: Any,
) -> Image:
    """Build a Dockerfile into the store at ``settings.store_dir``; returns the stored Image.

    ``options`` (a :class:`BuildOptions`), or its fields by keyword (``tag=``,
    ``build_args=``, ...), which override those of ``options``. ``progress``
    receives the build's typed events. A bundle is rendered first, with
    ``options.deps`` (:mod:`.depsmode`); a context rendered here is removed
    after the build.
    """
    from mlpack.oci.layout import Store

    if fields:
        options = replace(options, **fields) if options is not None else BuildOptions(**fields)
    options = (options or BuildOptions()).resolved()
    store = Store(settings.store_dir)
    say = (lambda text: progress(BuildWarning(0, text))) if progress is not None else None
    rendered: list[Path] = []

    def render_bundle(thing: Any) -> Any:
        context = _render_bundle(thing, store, settings, options.deps, say, options.target_platform)
        rendered.append(Path(context.path))
        return context

    try:
        return _build_resolved(bundle_or_context_or_dir, store, render_bundle, settings, options, progress)
    finally:
        for path in rendered:
            shutil.rmtree(path, ignore_errors=True)


def _offline_render(rendered_contexts: Mapping[str, Any], text: str) -> bool:
    """A bundle rendered here with every wheel of its lock in the wheelhouse and nothing to install
    with apt: no RUN step has a reason to reach any network, so none gets one."""
    from mlpack.dockerfile.context import WHEELS_CONTEXT

    return WHEELS_CONTEXT in rendered_contexts and "apt-get" not in text


def _build_resolved(thing: Any, store: Any, render_bundle: Callable[[Any], Any], settings: Settings,
                    options: BuildOptions, progress: Progress | None) -> Image:
    """The build, once its options are checked: ``thing`` resolved to a context, then the Executor."""
    from mlpack.builder.context import BuildContextDir, HashCache
    from mlpack.builder.executor import Executor
    from mlpack.builder.instructions import instructions
    from mlpack.builder.namedctx import open_named
    from mlpack.runtime.sandboxreap import reap_stale
    from mlpack.builder.parser import parse
    from mlpack.builder.stages import plan

    ctx_dir, df_path, rendered_contexts = _resolve_input(thing, options.dockerfile, render_bundle)
    named = {**rendered_contexts, **options.build_contexts}
    try:
        text = df_path.read_text()
    except OSError as exc:
        raise BuildError(f"cannot read {df_path}: {exc.strerror}",
                         hint="pass -f with the Dockerfile's path, or put a Dockerfile in the context") from None
    if options.network == "default" and rendered_contexts and _offline_render(rendered_contexts, text):
        options = replace(options, network="none")
    parsed = parse(text, file=df_path.name if df_path.parent == ctx_dir else str(df_path))
    commands = instructions(parsed.instructions, escape=parsed.escape)
    if progress is not None:
        from mlpack.builder.check import lint

        for finding in lint(parsed, commands):
            progress(BuildWarning(finding.line, finding.message))
    planned = plan(parsed, build_args=dict(options.build_args), target=options.target, commands=commands,
                   platform=options.target_platform)
    hashes = HashCache(settings.cache_dir / "build" / HashCache.FILE)
    ctx = BuildContextDir.open(ctx_dir, df_path.name, hashes)
    contexts = open_named(named, hashes)
    store.init()
    reap_stale(settings.home)  # RUN steps of builds that were killed: processes, mounts, cgroups, dirs
    return Executor(settings, store, ctx, parsed, planned, options, progress, contexts=contexts).run()
