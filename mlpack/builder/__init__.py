"""The embedded, daemonless image builder: Dockerfile -> OCI image in the store.

    image = build("ctx/", tag="localhost/app:1", settings=Settings.from_env())

Front end (:mod:`.parser`, :mod:`.shell`, :mod:`.stages`), cache keys
(:mod:`.cache`), changesets (:mod:`.changeset`, :mod:`.copying`), RUN in the
runtime sandbox (:mod:`.runstep`), config assembly (:mod:`.imageconfig`)
and the stage loop (:mod:`.executor`). Progress is a stream of typed events
(:mod:`.events`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlpack.builder.events import (
    BuildDone, BuildEvent, BuildWarning, LayerSummary, Progress, StageStarted, StepCached, StepDone, StepOutput,
    StepStarted, TextProgress,
)
from mlpack.errors import BuildError
from mlpack.runtime.rootless import delegated_unless_refused
from mlpack.settings import Settings

__all__ = [
    "build", "check_dockerfile", "parse_secrets", "resolve_input", "BuildWarning",
    "BuildEvent", "Progress", "StageStarted", "StepStarted", "StepCached", "StepDone", "StepOutput",
    "BuildDone", "LayerSummary", "TextProgress",
]


def _render_bundle(thing: Any, store: Any, settings: Settings | None = None, deps: str = "run",
                   say: Any = None) -> Any:
    """Render a bundle with the default base, or with the offline base
    (``localhost/mlpack/python``) when only that one is in the store; ``deps``
    as :func:`mlpack.builder.depsmode.render_for_build` takes it."""
    from mlpack.dockerfile import RenderOptions, render

    if isinstance(thing, (str, os.PathLike)):
        from mlpack.bundle import Bundle

        thing = Bundle.load(Path(thing))
    options = RenderOptions()
    if store is not None:
        python = options.python_version(getattr(thing, "python_version", None))
        if not _has_image(store, options.base_image(python)) and \
                _has_image(store, RenderOptions(base="local").base_image(python)):
            options = RenderOptions(base="local")
    if settings is None or store is None or deps == "run":
        return render(thing, options)
    from mlpack.builder.depsmode import render_for_build

    return render_for_build(thing, options, settings, store, deps=deps, say=say)


def _has_image(store: Any, ref: str) -> bool:
    try:
        store.resolve(ref)
    except LookupError:
        return False
    return True


def resolve_input(thing: Any, dockerfile: str | os.PathLike[str] | None, store: Any = None) -> tuple[Path, Path]:
    """(context dir, Dockerfile path) for a Bundle, a BuildContext, a bundle dir or a context dir."""
    ctx, df, _ = _resolve_input(thing, dockerfile, store)
    return ctx, df


def _resolve_input(thing: Any, dockerfile: str | os.PathLike[str] | None, store: Any = None,
                   render_bundle: Any = None) -> tuple[Path, Path, dict[str, Path]]:
    """resolve_input plus the named build contexts a rendered BuildContext brings."""
    if hasattr(thing, "dockerfile") and hasattr(thing, "path"):  # a rendered BuildContext
        ctx, df = _context_paths(thing, dockerfile)
        return ctx, df, dict(getattr(thing, "contexts", None) or {})
    path = Path(getattr(thing, "path", thing))
    looks_like_bundle = (path / "mlpack.yaml").is_file() and not (path / "Dockerfile").is_file()
    if hasattr(thing, "manifest") or (looks_like_bundle and dockerfile is None):
        rendered = (render_bundle or (lambda t: _render_bundle(t, store)))(thing)
        return _resolve_input(rendered, dockerfile)
    if not path.is_dir():
        raise BuildError(f"build context {path} is not a directory",
                         hint="pass a directory with a Dockerfile, a bundle or a rendered BuildContext")
    df = Path(dockerfile) if dockerfile else path / "Dockerfile"
    if not df.is_absolute() and not df.exists():
        df = path / df
    return path, df, {}


def _context_paths(thing: Any, dockerfile: str | os.PathLike[str] | None) -> tuple[Path, Path]:
    ctx = Path(thing.path)
    df = Path(dockerfile) if dockerfile else Path(thing.dockerfile)
    if not df.is_absolute():
        df = ctx / df
    if not df.exists() and isinstance(thing.dockerfile, str) and "FROM" in thing.dockerfile.upper():
        df = ctx / "Dockerfile"
    return ctx, df


def parse_secrets(values: Sequence[str] | Mapping[str, str | os.PathLike[str]] | None) -> dict[str, Path]:
    """``["id=ca-bundle,src=/etc/ssl/x.pem"]`` or ``{"ca-bundle": path}`` -> {id: Path}."""
    if not values:
        return {}
    if isinstance(values, Mapping):
        return {k: Path(v) for k, v in values.items()}
    out: dict[str, Path] = {}
    for text in values:
        fields = dict(part.partition("=")[::2] for part in text.split(",") if part)
        secret_id = fields.get("id")
        src = fields.get("src") or fields.get("source")
        if not secret_id or not src:
            raise BuildError(f"--secret {text!r} needs id=NAME,src=FILE",
                             hint="e.g. --secret id=ca-bundle,src=ca.pem")
        if not Path(src).is_file():
            raise BuildError(f"--secret {secret_id}: {src} is not a file")
        out[secret_id] = Path(src)
    return out


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
    *,
    tag: str | None,
    settings: Settings,
    dockerfile: str | os.PathLike[str] | None = None,
    build_args: Mapping[str, str] | None = None,
    target: str | None = None,
    no_cache: bool = False,
    secrets: Sequence[str] | Mapping[str, str | os.PathLike[str]] | None = None,
    progress: Progress | None = None,
    source_date_epoch: int | None = None,
    network: str = "default",
    limits: Any = None,
    build_contexts: Sequence[str] | Mapping[str, str | os.PathLike[str]] | None = None,
    deps: str = "auto",
) -> Any:
    """Build a Dockerfile into the store at ``settings.store_dir``; returns the stored Image.

    ``source_date_epoch`` (else the SOURCE_DATE_EPOCH build arg, else the
    environment variable) clamps mtimes and dates so that two builds of the
    same context give the same image digest. ``network`` is what RUN steps
    get by default (``default``: a namespace of their own with an uplink;
    ``none``; ``host``) and ``limits`` (a :class:`mlpack.Limits`) the cgroup of
    each RUN step (default :func:`~mlpack.builder.state.default_run_limits`).
    ``build_contexts`` (``["NAME=DIR"]`` or ``{NAME: DIR}``) are the named
    contexts ``COPY --from=NAME`` reads (:mod:`.namedctx`). ``deps`` applies
    to a bundle, which is rendered first: ``run`` (a RUN step installs the
    lock), ``context`` (mlpack installs it, the Dockerfile has no RUN) or
    ``auto`` (``context`` only where RUN steps cannot run, said as a warning).
    """
    from mlpack.builder.namedctx import parse_build_contexts
    from mlpack.builder.state import BuildOptions, default_run_limits
    from mlpack.oci.layout import Store

    if network not in ("default", "none", "host"):
        raise BuildError(f"network {network!r} is not default, none or host")
    args = {k: str(v) for k, v in (build_args or {}).items()}
    secret_files = parse_secrets(secrets)  # bad --secret flags fail before any work
    named = parse_build_contexts(build_contexts)
    if source_date_epoch is None:
        raw = args.get("SOURCE_DATE_EPOCH") or os.environ.get("SOURCE_DATE_EPOCH")
        if raw:
            if not raw.isdigit():
                raise BuildError(f"SOURCE_DATE_EPOCH={raw!r} is not a number of seconds")
            source_date_epoch = int(raw)
    store = Store(settings.store_dir)
    say = (lambda text: progress(BuildWarning(0, text))) if progress is not None else None
    rendered: list[Path] = []  # contexts rendered here from a bundle: removed after the build

    def render_bundle(thing: Any) -> Any:
        context = _render_bundle(thing, store, settings, deps, say)
        rendered.append(Path(context.path))
        return context

    options = BuildOptions(tag=tag, build_args=args, target=target, no_cache=no_cache,
                           secrets=secret_files, source_date_epoch=source_date_epoch, progress=progress,
                           network=network, limits=limits if limits is not None else default_run_limits())
    try:
        return _build_resolved(bundle_or_context_or_dir, dockerfile, store, render_bundle, named, settings, options)
    finally:
        for path in rendered:
            shutil.rmtree(path, ignore_errors=True)


def _build_resolved(thing: Any, dockerfile: Any, store: Any, render_bundle: Any, named: dict[str, Path],
                    settings: Settings, options: Any) -> Any:
    """The build, once its inputs are checked: ``thing`` resolved to a context, then the Executor."""
    from dataclasses import replace

    from mlpack.builder.context import BuildContextDir, HashCache
    from mlpack.builder.executor import Executor
    from mlpack.builder.check import lint
    from mlpack.builder.instructions import instructions
    from mlpack.builder.namedctx import open_named
    from mlpack.runtime.sandboxreap import reap_stale
    from mlpack.builder.parser import parse
    from mlpack.builder.stages import plan

    ctx_dir, df_path, rendered_contexts = _resolve_input(thing, dockerfile, store, render_bundle=render_bundle)
    named = {**rendered_contexts, **named}
    try:
        text = df_path.read_text()
    except OSError as exc:
        raise BuildError(f"cannot read {df_path}: {exc.strerror}",
                         hint="pass -f with the Dockerfile's path, or put a Dockerfile in the context") from None
    parsed = parse(text, file=df_path.name if df_path.parent == ctx_dir else str(df_path))
    commands = instructions(parsed.instructions, escape=parsed.escape)
    if options.progress is not None:
        for finding in lint(parsed, commands):
            options.progress(BuildWarning(finding.line, finding.message))
    planned = plan(parsed, build_args=options.build_args, target=options.target, commands=commands)
    hashes = HashCache(settings.cache_dir / "build" / "hashes.json")
    ctx = BuildContextDir.open(ctx_dir, df_path.name, hashes)
    contexts = open_named(named, hashes)
    store.init()
    reap_stale(settings.home)  # RUN steps of builds that were killed: processes, mounts, cgroups, dirs
    options = replace(options, contexts=contexts)
    return Executor(settings, store, ctx, parsed, planned, options).run()
