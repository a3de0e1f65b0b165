"""What every build step receives besides its stage and its command.

:class:`BuildEnv` is the build-wide context, passed explicitly to each step
function (:mod:`mlpack.builder.steps`): the store, settings, layer
directories, step cache, options, context directory, scratch directory and
progress. Its methods are the plumbing the filesystem steps share: the
cache lookup around a step (:meth:`BuildEnv.fs_step`), writing a layer,
the parents a layer must carry, and the layers of a ``--from`` source.
The env itself is frozen; what a build accumulates (the built stages, the
scratch files to remove, the step counter) lives in its mutable fields.
"""

from __future__ import annotations

import stat
import time
from collections.abc import Callable
from pathlib import Path

from mlpack.builder.cache import StepCache, StepRecord
from mlpack.builder.context import BuildContextDir
from mlpack.builder.events import BuildWarning, StepCached, StepDone, StepStarted
from mlpack.builder.imageconfig import rfc3339
from mlpack.builder.metadata import Scope
from mlpack.builder.parser import Instruction
from mlpack.builder.rootfs import LayerDirs, RootView
from mlpack.builder.stages import Plan
from mlpack.builder.events import Progress
from mlpack.builder.options import BuildOptions
from mlpack.builder.state import StageState
from mlpack.errors import MlpackError
from mlpack.oci.layer import Entry, LayerOptions, write_entries
from mlpack.oci.image import Image, Layer
from mlpack.oci.layout import Store
from mlpack.settings import Settings
from mlpack.values import dataclass, field

__all__ = ["BuildEnv", "Position", "abs_path"]


@dataclass(slots=True)
class Position:
    """Where the build is: step ``step`` of ``total``; ``current`` names it for an interrupt."""

    step: int = 0
    total: int = 0
    current: str = ""


@dataclass(frozen=True, slots=True)
class BuildEnv:
    """The build-wide context of the step functions."""

    settings: Settings
    store: Store
    ctx: BuildContextDir
    plan: Plan
    opts: BuildOptions
    dirs: LayerDirs
    cache: StepCache
    scratch: Path  # per-step upper dirs and joined CA bundles
    escape: str  # the Dockerfile's escape character
    scope: Scope  # what metadata steps read
    created: str  # the history's timestamp
    layer_options: LayerOptions
    states: dict[int, StageState] = field(default_factory=dict)  # the stages built so far
    cleanup: list[Path] = field(default_factory=list)  # scratch files removed when the build ends
    position: Position = field(default_factory=Position)
    progress: Progress | None = None
    contexts: dict[str, BuildContextDir] = field(default_factory=dict)  # named build contexts by name

    @classmethod
    def create(cls, settings: Settings, store: Store, ctx: BuildContextDir, escape: str, plan: Plan,
               options: BuildOptions, progress: Progress | None = None, *,
               contexts: dict[str, BuildContextDir] | None = None) -> BuildEnv:
        """The env of a build of ``plan``: its directories under ``settings.cache_dir``."""
        dirs = LayerDirs(settings, store)
        epoch = options.source_date_epoch
        return cls(
            settings=settings, store=store, ctx=ctx, plan=plan, opts=options, dirs=dirs,
            cache=StepCache(settings.cache_dir / "build" / "steps", store, dirs.virtual_root),
            scratch=settings.cache_dir / "build" / "tmp", escape=escape,
            scope=Scope(escape=escape, build_args=dict(options.build_args), global_args=plan.global_args,
                        platform_args=plan.platform_args),
            created=rfc3339(epoch) if epoch is not None else rfc3339(int(time.time())),
            layer_options=LayerOptions(source_date_epoch=epoch),
            position=Position(total=sum(1 + len(s.commands) for s in plan.stages)),
            progress=progress,
            contexts=dict(contexts or {}),
        )

    def emit(self, event: object) -> None:
        if self.progress is not None:
            self.progress(event)  # type: ignore[arg-type]

    def view(self, state: StageState) -> RootView:
        return RootView(state.layers, self.dirs)

    def add_layer(self, state: StageState, layer: Layer | None, created_by: str, cached: bool) -> None:
        if layer is None:
            state.cfg.add_history(created_by, created=self.created, empty_layer=True)
            return
        state.layers.append(layer)
        state.cached.append(cached)
        state.created_by.append(created_by)
        state.cfg.diff_ids.append(layer.diff_id)
        state.cfg.add_history(created_by, created=self.created, empty_layer=False)

    def fs_step(self, state: StageState, key: str, created_by: str,
                produce: Callable[[], Layer | None]) -> None:
        """Cache lookup, else ``produce()`` -> Layer|None; then record and chain the key."""
        label = state.stage.label
        pos = self.position
        hit = None if self.opts.no_cache else self.cache.get(key)
        if hit is not None:
            self.emit(StepCached(pos.step, pos.total, created_by, label,
                                 hit.layer.size if hit.layer else None))
            self.add_layer(state, hit.layer, created_by, cached=True)
            state.key = key
            return
        self.emit(StepStarted(pos.step, pos.total, created_by, label))
        t0 = time.monotonic()
        layer = produce()
        self.cache.put(key, StepRecord(layer, created_by))
        self.add_layer(state, layer, created_by, cached=False)
        state.key = key
        self.emit(StepDone(pos.step, pos.total, created_by, layer.size if layer else None,
                           time.monotonic() - t0, label))

    def write(self, entries: list[Entry]) -> Layer | None:
        if not entries:
            return None
        layer = write_entries(self.store, entries, self.layer_options, fast=True)
        self.dirs.save_index(layer, entries)
        return layer

    def with_lower_parents(self, state: StageState, entries: list[Entry],
                           owner: tuple[int, int] | None = None) -> list[Entry]:
        """Parents that exist below keep their mode and owner in the new layer; the
        ones the step creates are 0755 and owned by ``owner`` (COPY --chown, as
        BuildKit creates the destination path), else by root."""
        have = {e.path.strip("/") for e in entries}
        parents: set[str] = set()
        for e in entries:
            parts = e.path.strip("/").split("/")[:-1]
            for k in range(1, len(parts) + 1):
                parents.add("/".join(parts[:k]))
        missing = sorted(parents - have)
        if not missing:
            return entries
        view = self.view(state)
        extra = []
        uid, gid = owner or (0, 0)
        mtime = self.opts.source_date_epoch or 0
        for rel in missing:
            st = view.lstat(rel)
            if st is not None and stat.S_ISDIR(st.st_mode):
                extra.append(Entry(rel, "dir", mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid,
                                   mtime=int(st.st_mtime)))
            elif st is None and owner is not None:
                extra.append(Entry(rel, "dir", mode=0o755, uid=uid, gid=gid, mtime=mtime))
        return extra + entries

    def base_image(self, instr: Instruction, ref: str, platform: str | None = None) -> Image:
        """An image for ``platform`` (``linux/arm64``; None: the build's) from the store, else pulled.
        A ``--from`` name that is no stage is said to be one (a typo of a stage name would otherwise
        look like a pull failure)."""
        from mlpack.oci.platforms import host_platform, parse_platform, platform_text

        wanted = parse_platform(platform) if platform else self.opts.target_platform
        from mlpack.oci.runtimebase import runtime_image

        # the store's image; a base's runtime image (`<base>:<tag>-runtime`) is made from the base
        # where the store lacks it or has another base's (a base loaded or bootstrapped since)
        image = runtime_image(self.store, ref, wanted)
        if image is not None:
            have = (image.config.os or "linux", image.config.architecture or "amd64")
            if have == wanted:
                return image
            raise instr.error(
                f"base image {ref!r} in the store is for {platform_text(have)}, and this build is for "
                f"{platform_text(wanted)}",
                hint=f"`mlpack base bootstrap --platform {platform_text(wanted)}` adds that platform to "
                     "localhost/mlpack/python; other images: load or pull one built for it")
        if wanted != host_platform():
            raise instr.error(
                f"base image {ref!r} has no {platform_text(wanted)} image in the store",
                hint=f"`mlpack base bootstrap --platform {platform_text(wanted)}` for localhost/mlpack/python; "
                     f"other images: `mlpack load` one built for {platform_text(wanted)}")
        not_a_stage = ""
        if instr.cmd != "FROM" and "/" not in ref and ":" not in ref and (self.ctx.root / ref).is_dir():
            # a rendered deps="context" directory built without its flag: say so instead of pulling
            raise instr.error(
                f"--from={ref} is no stage and no named build context; the build context has a directory "
                f"{ref}/ (is it the named context the Dockerfile means?)",
                hint=f"pass --build-context {ref}={self.ctx.root / ref} (build_contexts={{'{ref}': ...}})")
        if instr.cmd != "FROM":
            not_a_stage = (f"{ref!r} is not a stage of this Dockerfile (stages: {self.plan.stage_names()}), "
                           "so it is taken as an image")
        try:
            from mlpack.oci import registry
        except ImportError:
            registry = None  # type: ignore[assignment]
        pull = getattr(registry, "pull", None) if registry is not None else None
        if pull is None or ref.startswith("localhost/"):
            raise instr.error(
                f"{not_a_stage + ', and ' if not_a_stage else ''}base image {ref!r} is not in the store",
                hint="run `mlpack base bootstrap` for localhost/mlpack/python, or `mlpack pull " + ref + "`",
            )
        if not_a_stage:
            self.emit(BuildWarning(instr.line, f"{not_a_stage}: pulling it from a registry"))
        try:
            pulled = pull(ref, settings=self.settings)
        except MlpackError as exc:
            prefix = f"{not_a_stage}; " if not_a_stage else ""
            raise instr.error(f"{prefix}image {ref!r} is not in the store and pulling it failed: {exc.message}",
                              hint="check the name against the stages above, or pull/load the image first"
                              if not_a_stage else "pull it first (`mlpack pull`) or load it (`mlpack load`)") from exc
        return pulled if isinstance(pulled, Image) else self.store.resolve(ref)

    def from_source(self, instr: Instruction, ref: str) -> tuple[list[Layer], str]:
        """Layers and key of ``--from=<stage|index|image>``."""
        for stage in self.plan.all_stages:
            if (stage.name and stage.name == ref.lower()) or (ref.isdigit() and stage.index == int(ref)):
                state = self.states.get(stage.index)
                if state is None:
                    raise instr.error(f"stage {ref!r} is not built before this step",
                                      hint="a stage can only copy from stages above it")
                return list(state.layers), state.key
        image = self.base_image(instr, ref)
        layers = [Layer(d["digest"], int(d["size"]), diff, d.get("mediaType", ""))
                  for d, diff in zip(image.layers, image.diff_ids)]
        return layers, image.digest


def abs_path(state: StageState, path: str) -> str:
    """``path`` made absolute against the stage's WORKDIR."""
    workdir = state.cfg.working_dir
    if not path.startswith("/"):
        path = workdir.rstrip("/") + "/" + path
    return path
