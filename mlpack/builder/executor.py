"""Executes the planned stages command by command.

Each typed command (:mod:`mlpack.builder.instructions`) is dispatched on its
type. Filesystem steps (RUN, COPY, ADD, WORKDIR when it creates a directory)
go through the step cache; metadata steps (ENV, LABEL, USER, CMD, ...) are the
functions of :data:`mlpack.builder.metadata.STEPS`: they only change the
config and are replayed on every build, which costs nothing. A base image's
ONBUILD triggers run right after its FROM.
"""

from __future__ import annotations

import copy
import os
import stat
import time
from pathlib import Path

from mlpack.builder import copying
from mlpack.builder.cache import StepCache, StepRecord, chain_key, is_virtual
from mlpack.builder.changeset import from_upperdir
from mlpack.builder.context import BuildContextDir
from mlpack.builder.events import BuildDone, LayerSummary, StageStarted, StepCached, StepDone, StepStarted
from mlpack.builder.imageconfig import ConfigState, rfc3339
from mlpack.builder.layerwrite import write_layer
from mlpack.builder.parser import Dockerfile, Instruction
from mlpack.builder.rootfs import LayerDirs, RootView
from mlpack.builder.shell import ExpansionError
from mlpack.builder.stages import Plan, Stage
from mlpack.builder import metadata
from mlpack.builder.copystep import CopySteps
from mlpack.builder.events import BuildWarning
from mlpack.builder.instructions import AddCommand, AnyCommand, CopyCommand, RunCommand, WorkdirCommand, instructions
from mlpack.builder.parser import parse
from mlpack.builder.runexec import RunSteps
from mlpack.builder.state import BuildOptions, StageState
from mlpack.errors import ImageNotFound, MlpackError
from mlpack.oci.layer import Entry, LayerOptions
from mlpack.oci.layout import Image, Layer, Store
from mlpack.settings import Settings

__all__ = ["BuildOptions", "Executor", "BuildInterrupted"]


class BuildInterrupted(KeyboardInterrupt):
    """Ctrl-C during a build; the message names the step it stopped in."""


class Executor(CopySteps, RunSteps):
    """Runs a :class:`Plan` against a store; ``run()`` returns the tagged Image."""

    def __init__(self, settings: Settings, store: Store, ctx: BuildContextDir, dockerfile: Dockerfile,
                 plan: Plan, options: BuildOptions) -> None:
        self.settings = settings
        self.store = store
        self.ctx = ctx
        self.df = dockerfile
        self.plan = plan
        self.opts = options
        self.dirs = LayerDirs(settings, store)
        self.cache = StepCache(settings.cache_dir / "build" / "steps", store, self.dirs.virtual_root)
        self.scratch = settings.cache_dir / "build" / "tmp"
        self.states: dict[int, StageState] = {}
        self._cleanup: list[Path] = []  # scratch files removed when the build ends
        self.step = 0
        self.total = sum(1 + len(s.commands) for s in plan.stages)
        self.current = ""  # the step running now, for an interrupted build's message
        self.scope = metadata.Scope(escape=dockerfile.escape, build_args=options.build_args,
                                    global_args=plan.global_args)
        epoch = options.source_date_epoch
        self.created = rfc3339(epoch) if epoch is not None else rfc3339(int(time.time()))
        self.layer_options = LayerOptions(source_date_epoch=epoch)

    # -- plumbing ---------------------------------------------------------------------
    def _emit(self, event: object) -> None:
        if self.opts.progress is not None:
            self.opts.progress(event)  # type: ignore[arg-type]

    def _lookup(self, key: str) -> StepRecord | None:
        return None if self.opts.no_cache else self.cache.get(key)

    def _view(self, state: StageState) -> RootView:
        return RootView(state.layers, self.dirs)

    def _add_layer(self, state: StageState, layer: Layer | None, created_by: str, cached: bool) -> None:
        if layer is None:
            state.cfg.add_history(created_by, created=self.created, empty_layer=True)
            return
        state.layers.append(layer)
        state.cached.append(cached)
        state.created_by.append(created_by)
        state.cfg.diff_ids.append(layer.diff_id)
        state.cfg.add_history(created_by, created=self.created, empty_layer=False)

    # -- the build --------------------------------------------------------------------
    def run(self) -> Image:
        try:
            return self._run()
        except KeyboardInterrupt:
            raise BuildInterrupted(f"build interrupted in {self.current or 'its first step'}; "
                                   "no image was tagged and the store's index is unchanged") from None
        finally:
            for path in self._cleanup:
                path.unlink(missing_ok=True)

    def _run(self) -> Image:
        started = time.monotonic()
        self.scratch.mkdir(parents=True, exist_ok=True)
        for stage in self.plan.stages:
            self.states[stage.index] = self._build_stage(stage)
        final = self.states[self.plan.target.index]
        self._materialize(final)
        config = final.cfg.to_blob(created=self.created)
        digest = self.store.put_image(config, final.layers, ref=self.opts.tag)
        image = self.store.resolve(digest)
        if self.opts.tag:
            image = self.store.resolve(self.opts.tag)
        self.ctx.hashes.save()
        self._emit(BuildDone(
            digest=image.digest, tag=self.opts.tag, seconds=time.monotonic() - started,
            layers=tuple(LayerSummary(l.digest, l.size, c, cached) for l, c, cached in
                         zip(final.layers, final.created_by, final.cached)),
            unused_build_args=tuple(sorted(self.plan.unused_build_args)),
        ))
        return image

    def _materialize(self, state: StageState) -> None:
        """Turn the virtual layers that reached the image into real ones."""
        for i, layer in enumerate(state.layers):
            if not is_virtual(layer):
                continue
            upper = self.dirs.get(layer)
            lowers = self.dirs.lowers(state.layers[:i])
            # an empty changeset still becomes a (tiny) layer: the history says there is one
            entries = from_upperdir(upper, list(reversed(lowers)))
            real = write_layer(self.store, entries, self.layer_options)
            self.dirs.save_index(real, entries)
            state.layers[i] = real
            offset = len(state.cfg.diff_ids) - len(state.layers)
            state.cfg.diff_ids[offset + i] = real.diff_id

    def _build_stage(self, stage: Stage) -> StageState:
        self._emit(StageStarted(stage_name=stage.label, base=stage.base, index=stage.index))
        state = self._from(stage)
        for cmd in self._onbuild_triggers(state):
            self.step += 1
            self._dispatch(state, cmd)
        for cmd in stage.commands:
            self.step += 1
            self._dispatch(state, cmd)
        return state

    def _onbuild_triggers(self, state: StageState) -> list[AnyCommand]:
        """The base image's ONBUILD triggers: they run right after FROM and are
        not inherited by this image (BuildKit and docker)."""
        triggers = state.cfg.config.pop("OnBuild", None) or []
        commands: list[AnyCommand] = []
        for text in triggers:
            parsed = parse(str(text), file=f"ONBUILD of {state.stage.base}")
            commands += instructions(parsed.instructions, escape=parsed.escape)
        self.total += len(commands)
        return commands

    def _from(self, stage: Stage) -> StageState:
        """The stage's starting state. SOURCE_DATE_EPOCH is part of every root key:
        a layer clamped to another epoch is another layer."""
        self.step += 1
        instr = stage.from_instruction
        text = f"FROM {stage.base}" + (f" AS {stage.name}" if stage.name else "")
        self._emit(StepStarted(self.step, self.total, text, stage.label))
        if stage.base_stage is not None:
            parent = self.states[stage.base_stage]
            state = StageState(stage=stage, layers=list(parent.layers), cached=list(parent.cached),
                               created_by=list(parent.created_by), cfg=copy.deepcopy(parent.cfg), key=parent.key,
                               shell=list(parent.shell))
        elif stage.base == "scratch":
            state = StageState(stage=stage, layers=[], cached=[], created_by=[], cfg=ConfigState.from_base(None),
                               key=chain_key("", "FROM", "scratch", self.opts.source_date_epoch))
        else:
            image = self._base_image(instr, stage.base)
            layers = [Layer(d["digest"], int(d["size"]), diff, d.get("mediaType", ""))
                      for d, diff in zip(image.layers, image.diff_ids)]
            state = StageState(stage=stage, layers=layers, cached=[True] * len(layers),
                               created_by=[f"FROM {stage.base}"] * len(layers),
                               cfg=ConfigState.from_base(image.config),
                               key=chain_key("", "FROM", image.digest, self.opts.source_date_epoch))
        self._emit(StepDone(self.step, self.total, text, None, 0.0, stage.label))
        return state

    def _base_image(self, instr: Instruction, ref: str) -> Image:
        """An image from the store, else pulled. A ``--from`` name that is no stage
        is said to be one (a typo of a stage name would otherwise look like a pull failure)."""
        try:
            return self.store.resolve(ref)
        except ImageNotFound:
            pass
        not_a_stage = ""
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
            self._emit(BuildWarning(instr.line, f"{not_a_stage}: pulling it from a registry"))
        try:
            pulled = pull(ref, settings=self.settings)
        except MlpackError as exc:
            prefix = f"{not_a_stage}; " if not_a_stage else ""
            raise instr.error(f"{prefix}image {ref!r} is not in the store and pulling it failed: {exc.message}",
                              hint="check the name against the stages above, or pull/load the image first"
                              if not_a_stage else "pull it first (`mlpack pull`) or load it (`mlpack load`)") from exc
        return pulled if isinstance(pulled, Image) else self.store.resolve(ref)

    def _dispatch(self, state: StageState, cmd: AnyCommand) -> None:
        """Run one command: filesystem steps by type, metadata steps from ``metadata.STEPS``."""
        self.current = f"step {self.step}/{self.total} of stage {state.stage.label} (line {cmd.line}: {cmd.original[:80]})"
        try:
            if isinstance(cmd, CopyCommand):
                self._do_copy(state, cmd)
            elif isinstance(cmd, AddCommand):
                self._do_add(state, cmd)
            elif isinstance(cmd, RunCommand):
                self._do_run(state, cmd)
            elif isinstance(cmd, WorkdirCommand):
                self._workdir(state, cmd)
            else:
                self._meta(state, metadata.STEPS[type(cmd)](state, cmd, self.scope))
        except ExpansionError as exc:
            raise cmd.error(exc.message, hint=exc.hint) from None

    def _meta(self, state: StageState, text: str) -> None:
        """A metadata step: no layer, an empty_layer history entry."""
        self._emit(StepStarted(self.step, self.total, text, state.stage.label))
        state.cfg.add_history(text, created=self.created, empty_layer=True)
        self._emit(StepDone(self.step, self.total, text, None, 0.0, state.stage.label))

    # -- filesystem instructions ----------------------------------------------------------
    def _fs_step(self, state: StageState, instr: Instruction, key: str, created_by: str,
                 produce) -> None:  # type: ignore[no-untyped-def]
        """Cache lookup, else ``produce()`` -> Layer|None; then record and chain the key."""
        label = state.stage.label
        hit = self._lookup(key)
        if hit is not None:
            self._emit(StepCached(self.step, self.total, created_by, label,
                                  hit.layer.size if hit.layer else None))
            self._add_layer(state, hit.layer, created_by, cached=True)
            state.key = key
            return
        self._emit(StepStarted(self.step, self.total, created_by, label))
        t0 = time.monotonic()
        layer = produce()
        self.cache.put(key, StepRecord(layer, created_by))
        self._add_layer(state, layer, created_by, cached=False)
        state.key = key
        self._emit(StepDone(self.step, self.total, created_by, layer.size if layer else None,
                            time.monotonic() - t0, label))

    def _write(self, entries: list[Entry]) -> Layer | None:
        if not entries:
            return None
        layer = write_layer(self.store, entries, self.layer_options)
        self.dirs.save_index(layer, entries)
        return layer

    def _with_lower_parents(self, state: StageState, entries: list[Entry],
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
        view = self._view(state)
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

    def _abs(self, state: StageState, path: str) -> str:
        workdir = state.cfg.config.get("WorkingDir") or "/"
        if not path.startswith("/"):
            path = workdir.rstrip("/") + "/" + path
        return path

    def _workdir(self, state: StageState, cmd: WorkdirCommand) -> None:
        instr = cmd.node
        raw = state.expander(self.df.escape).word(cmd.path)
        if not raw:
            raise instr.error("WORKDIR needs a path")
        path = os.path.normpath(self._abs(state, raw))
        state.cfg.config["WorkingDir"] = path
        key = chain_key(state.key, "WORKDIR", path, state.cfg.config.get("User") or "")

        def produce() -> Layer | None:
            view = self._view(state)
            if view.is_dir(path):
                return None
            rel = view.resolve(path) or path.strip("/")
            # BuildKit creates the directory as the stage's USER, so a later RUN may write there
            user = state.cfg.config.get("User") or ""
            # a user name alone takes its primary group (copying.parse_chown)
            owner = copying.parse_chown(instr, user, lambda: view) if user else (0, 0)
            assert owner is not None
            entries = [Entry(rel, "dir", mode=0o755, uid=owner[0], gid=owner[1])]
            return self._write(self._with_lower_parents(state, entries))

        self._fs_step(state, instr, key, instr.original, produce)

